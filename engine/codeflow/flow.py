"""Write a workflow as Python; the Python runs once, at deploy, to build its state machine.

The function receives a ``Flow`` and the execution input as a ``Value``. Each
``flow.task``, ``flow.wait``, ``flow.map``... adds a state after the one before and returns
a Value for its result; ``with flow.if_(condition):`` / ``elif_`` / ``else_`` / ``while_``
become Choice states; the function's return value is the output. What comes out is the
definition a YAML author would write, checked by the same schema and rules, and it is all
that runs later: the function is never called at run time, so durability never depends on
it behaving the same way twice.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from cairn.codeflow import builder, control, jmespath_tree, sites, symbolic, task_fields
from cairn.codeflow.builder import Exit
from cairn.codeflow.jmespath_tree import Origin
from cairn.codeflow.options import (
    DEFAULT,
    CatchSpec,
    Duration,
    ErrorName,
    Retry,
    activity_name,
    catches,
    duration_seconds,
    error_name,
    retries,
    workflow_target,
)
from cairn.codeflow.sites import Site, refuse
from cairn.codeflow.symbolic import Value
from cairn.codeflow.task_fields import Compensation, Select


class Flow:
    """What a workflow function receives: each method adds a state after the last.

    Methods that produce data return a ``Value`` for it, kept under ``result`` (by default
    a key named after the state, e.g. ``charge_card``): ``result="charge"`` names it,
    ``result=None`` discards it. ``name=`` names the state (by default the activity, or
    the kind of step). Names and keys are chosen deterministically, so the same function
    always builds the same definition, with the same content hash.
    """

    def __init__(self, graph: builder.Graph) -> None:
        self._graph = graph
        self._blocks: list[control.Block] = []
        self._inside: str | None = None
        self._closed = False
        self._cancel_path = False

    # -- data the function reads ---------------------------------------------------------
    @property
    def input(self) -> Value:
        """The execution input (also the function's second argument)."""
        return symbolic.root(self._graph.input)

    @property
    def context(self) -> Value:
        """The context object: ``flow.context.Execution.Id``, ``.Task.IdempotencyKey``..."""
        return symbolic.root(self._graph.context)

    def jmespath(self, expression: str) -> Value:
        """A JMESPath expression over the state data, written out (and not checked)."""
        return Value(jmespath_tree.Raw(expression))

    # -- steps that do work --------------------------------------------------------------
    def task(
        self,
        activity: str | Callable[..., Any],
        payload: object = None,
        /,
        *,
        name: str | None = None,
        result: str | Value | None = DEFAULT,
        select: Select | None = None,
        queue: str | None = None,
        timeout: Duration | None = None,
        heartbeat: Duration | None = None,
        callback: bool = False,
        retry: Retry | Sequence[Retry] = (),
        catch: CatchSpec | None = None,
        compensate: Compensation | None = None,
        comment: str | None = None,
        **params: object,
    ) -> Value:
        """Run an activity (its registered name, or its handler) with ``params``.

        Parameters are keyword arguments (``card=order.card``), or a dict as the second
        argument for names that clash with the options here; a Value there instead hands
        the activity that value whole. Returns a Value for the activity's result.
        """
        graph = self._begin()
        activity = activity_name(activity)
        name, facts = graph.start_state(name, activity)
        body = _new("Task", comment)
        body["Activity"] = activity
        if queue is not None:
            body["TaskQueue"] = queue
        body.update(task_fields.payload(graph, payload, params, facts))
        return task_fields.add(
            graph, name, body, facts, self._lambda, select=select, result=result, retry=retry,
            catch=catch, compensate=compensate, timeout=timeout, heartbeat=heartbeat,
            callback=callback,
        )  # fmt: skip

    def child(
        self,
        workflow: object,
        payload: object = None,
        /,
        *,
        version: int | None = None,
        name: str | None = None,
        result: str | Value | None = DEFAULT,
        select: Select | None = None,
        retry: Retry | Sequence[Retry] = (),
        catch: CatchSpec | None = None,
        comment: str | None = None,
        **params: object,
    ) -> Value:
        """Run a child execution of a workflow and wait for its output.

        ``workflow`` is a name (``"invoice"``, ``"invoice@3"``) or a code workflow (whose
        version it pins). The child's input is built like a task's parameters.
        """
        graph = self._begin()
        target = workflow_target(workflow, version)
        name, facts = graph.start_state(name, target.partition("@")[0])
        body = _new("Task", comment)
        body["Workflow"] = target
        body.update(task_fields.payload(graph, payload, params, facts))
        return task_fields.add(
            graph, name, body, facts, self._lambda, select=select, result=result, retry=retry,
            catch=catch, compensate=None, timeout=None, heartbeat=None, callback=False,
        )  # fmt: skip

    def wait(
        self,
        seconds: Duration | Value | None = None,
        *,
        until: datetime.datetime | str | Value | None = None,
        signal: str | None = None,
        name: str | None = None,
        result: str | Value | None = DEFAULT,
        comment: str | None = None,
    ) -> Value:
        """Wait ``seconds`` (a number, a timedelta or a Value), ``until`` a moment, and/or
        for ``signal``. Its result, kept when a signal is given, is
        ``{"signal": ..., "payload": ...}`` when the signal ended the wait, else null."""
        graph = self._begin()
        name, facts = graph.start_state(name, "Wait")
        body = _new("Wait", comment)
        if isinstance(seconds, Value):
            body["SecondsPath"] = graph.expression(seconds, facts)
        elif seconds is not None:
            body["Seconds"] = duration_seconds(seconds)
        if isinstance(until, Value):
            body["TimestampPath"] = graph.expression(until, facts)
        elif isinstance(until, datetime.datetime):
            if until.tzinfo is None:
                refuse("until= needs a timezone-aware datetime (or an RFC 3339 string)")
            stamp = until.astimezone(datetime.timezone.utc).isoformat()
            body["Timestamp"] = stamp.replace("+00:00", "Z")
        elif until is not None:
            body["Timestamp"] = until
        if signal is not None:
            body["Signal"] = signal
        origin, value = graph.result(name, None if result is DEFAULT and signal is None else result)
        if not origin.discarded:
            body["ResultPath"] = origin.key
        graph.add(name, body, facts, origin)
        return value

    def compute(
        self,
        value: object,
        *,
        name: str | None = None,
        result: str | Value | None = DEFAULT,
        comment: str | None = None,
    ) -> Value:
        """Shape data without running anything (a Pass state): a dict of Values and
        literals, a Value, or a literal; kept under ``result``."""
        graph = self._begin()
        name, facts = graph.start_state(name, "Compute")
        body = _new("Pass", comment)
        body.update(graph.shape(value, facts))
        origin, out = graph.result(name, result)
        body["ResultPath"] = None if origin.discarded else origin.key
        graph.add(name, body, facts, origin)
        return out

    # -- steps that end a path -----------------------------------------------------------
    def fail(
        self,
        error: ErrorName | Value | None = None,
        cause: str | Value | None = None,
        *,
        name: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Fail the flow (or the branch) with an error name and a cause (or Values)."""
        graph = self._begin()
        hint = error_name(error) if isinstance(error, (str, type)) else "Fail"
        name, facts = graph.start_state(name, hint)
        body = _new("Fail", comment)
        if isinstance(error, Value):
            body["ErrorPath"] = graph.expression(error, facts)
        elif error is not None:
            body["Error"] = error_name(error)
        if isinstance(cause, Value):
            body["CausePath"] = graph.expression(cause, facts)
        elif cause is not None:
            body["Cause"] = cause
        graph.add(name, body, facts, None)
        graph.end_path()

    def succeed(
        self, output: object = None, *, name: str | None = None, comment: str | None = None
    ) -> None:
        """End the flow (or the branch) successfully, with ``output`` (default: the data)."""
        graph = self._begin()
        name, facts = graph.start_state(name, "Succeed")
        body = _new("Succeed", comment)
        if output is not None:
            body["OutputPath"] = graph.output(output, facts)
        graph.add(name, body, facts, None)
        graph.end_path()

    def end(self, output: object = None, *, name: str | None = None) -> None:
        """End this path with ``output``, as ``return output`` ends the function.

        Without ``name`` the output is set on the step(s) just before when they allow it;
        with it (or when they do not), a Pass state of that name produces the output.
        """
        self._begin().finish(output, name)

    def continue_as_new(
        self,
        input: object = None,
        *,
        version: Literal["same", "latest"] | None = None,
        name: str | None = None,
        comment: str | None = None,
    ) -> None:
        """End this run and go on in a fresh history with ``input`` (default: the data)."""
        graph = self._begin()
        name, facts = graph.start_state(name, "ContinueAsNew")
        body = _new("ContinueAsNew", comment)
        if input is not None:
            shaped = graph.shape(input, facts)
            if "Result" in shaped:
                refuse("the input of the new run is a dict or a Value")
            body.update(shaped)
        if version is not None:
            body["Version"] = version
        graph.add(name, body, facts, None)
        graph.end_path()

    def compensate(self, *, name: str | None = None, comment: str | None = None) -> None:
        """Undo the completed tasks of this scope, newest first (their ``compensate=``)."""
        graph = self._begin()
        name, facts = graph.start_state(name, "Compensate")
        graph.add(name, _new("Compensate", comment), facts, None)

    # -- branching -----------------------------------------------------------------------
    def if_(
        self, condition: object, *, name: str | None = None, comment: str | None = None
    ) -> control.Block:
        """``with flow.if_(condition):`` runs the block's steps when the condition holds."""
        return self._block("if_", condition, name, comment)

    def elif_(self, condition: object) -> control.Block:
        """``with flow.elif_(condition):``, right after an if_ block: the next rule."""
        return self._block("elif_", condition, None, None)

    def else_(self) -> control.Block:
        """``with flow.else_():``, right after an if_ or elif_ block: when no rule held."""
        return self._block("else_", None, None, None)

    def while_(
        self, condition: object, *, name: str | None = None, comment: str | None = None
    ) -> control.Block:
        """``with flow.while_(condition):`` repeats the block while the condition holds."""
        return self._block("while_", condition, name, comment)

    def parallel(
        self,
        *branches: Callable[[], object],
        name: str | None = None,
        result: str | Value | None = DEFAULT,
        retry: Retry | Sequence[Retry] = (),
        catch: CatchSpec | None = None,
        comment: str | None = None,
    ) -> tuple[Value, ...]:
        """Run the branch functions at once; one Value per branch, for what it returns."""
        graph = self._begin()
        if not branches:
            refuse("flow.parallel needs at least one branch function")
        name, facts = graph.start_state(name, "Parallel")
        body = _new("Parallel", comment)
        body["Branches"] = control.branches(graph, name, facts, branches)
        origin, _ = graph.result(name, result)
        body["ResultPath"] = None if origin.discarded else origin.key
        if retry:
            body["Retry"] = retries(retry)
        graph.add(name, body, facts, origin)
        control.catch(graph, name, body, catches(catch), facts)
        return tuple(Value(jmespath_tree.Path(origin, (i,))) for i in range(len(branches)))

    def map(
        self,
        items: object,
        function: Callable[..., object],
        *,
        name: str | None = None,
        result: str | Value | None = DEFAULT,
        max_concurrency: int | None = None,
        retry: Retry | Sequence[Retry] = (),
        catch: CatchSpec | None = None,
        comment: str | None = None,
    ) -> Value:
        """Run ``function(item)`` (or ``function(item, index)``) for each element of
        ``items``; returns a Value for the list of what it returned."""
        graph = self._begin()
        names = sites.parameters(function)
        if not 1 <= len(names) <= 2:
            refuse("the function of flow.map takes the item, and optionally its index")
        name, facts = graph.start_state(name, "Map")
        body = _new("Map", comment)
        body["ItemsPath"] = (
            graph.expression(items, facts)
            if symbolic.contains_value(items)
            else jmespath_tree.literal(symbolic.plain(items))
        )
        selector, processor = control.item_processor(graph, name, facts, function, names)
        body["ItemSelector"] = selector
        if max_concurrency is not None:
            body["MaxConcurrency"] = max_concurrency
        body["ItemProcessor"] = processor
        origin, value = graph.result(name, result)
        body["ResultPath"] = None if origin.discarded else origin.key
        if retry:
            body["Retry"] = retries(retry)
        graph.add(name, body, facts, origin)
        control.catch(graph, name, body, catches(catch), facts)
        return value

    def query(self, name: str, value: Value) -> None:
        """A named query over the data (``cairn query ID NAME``), answered at any time."""
        graph = self._begin()
        if name in graph.queries:
            refuse(f"query {name!r} is defined twice")
        if not isinstance(value, Value):
            refuse("a query reads the data: give it a Value, like shipment.status")
        graph.sites[("Queries", name)] = graph.site
        try:
            graph.queries[name] = jmespath_tree.render(symbolic.node(value))
        except jmespath_tree.RenderError as exc:
            graph.problem(str(exc))

    def on_cancel(self, function: Callable[[], object]) -> Callable[[], object]:
        """Where a cancelled execution goes on (``OnCancel``): ``function`` adds the steps.

        Usable as a decorator inside the workflow function. Instead of stopping at once, a
        cancelled execution drops its work in flight and runs these steps (typically
        ``flow.compensate()``) from wherever it stood, so they read only the input; when
        they end, the execution ends as CANCELLED.
        """
        graph = self._begin()
        scope = graph.scope
        if scope is not graph.top or graph.on_cancel is not None or self._cancel_path:
            refuse("flow.on_cancel is given once, at the top level of the workflow function")
        self._cancel_path = True
        kept = scope.exits, scope.chain, scope.ended
        scope.exits, scope.chain, scope.ended = [Exit(None, "OnCancel", {})], None, None
        function()
        graph.finish(None, None)
        scope.exits, scope.chain, scope.ended = kept
        return function

    # -- helpers -------------------------------------------------------------------------
    def _begin(self) -> builder.Graph:
        if self._closed:
            refuse("this flow is already built; steps are added while the function runs")
        if self._inside is not None:
            refuse(f"a step cannot be added inside {self._inside}")
        self._graph.site = sites.user_site()
        return self._graph

    def _lambda(self, what: str, function: Callable[[Value], object], origin: Origin) -> object:
        self._inside = what
        try:
            return function(symbolic.root(origin))
        finally:
            self._inside = None

    def _block(
        self, kind: str, condition: object, name: str | None, comment: str | None
    ) -> control.Block:
        graph = self._begin()
        block = control.Block(self._begin, kind, condition, name, comment, graph.site)
        self._blocks.append(block)
        return block

    def _close(self, output: object) -> None:
        self._graph.finish(output, None)
        self._closed = True
        for block in self._blocks:
            if not block.entered:
                self._graph.site = block.site
                self._graph.problem(
                    f"flow.{block.kind}(...) does nothing outside a `with` statement: "
                    f"write `with flow.{block.kind}(...):`"
                )


def _new(kind: str, comment: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": kind}
    if comment is not None:
        body["Comment"] = comment
    return body


def build(
    function: Callable[..., object],
    *,
    name: str,
    version: int,
    site: Site,
    comment: str | None = None,
    timeout: Duration | None = None,
    input_schema: Mapping[str, Any] | None = None,
) -> builder.Built:
    """Run a workflow function once and return the definition it describes."""
    properties = (input_schema or {}).get("properties")
    fields = list(properties) if isinstance(properties, Mapping) else []
    graph = builder.Graph(input_fields=fields, site=site)
    flow = Flow(graph)
    output, returned = sites.call(function, (flow, flow.input))
    graph.site = returned or site
    flow._close(output)
    body: dict[str, Any] = {"Name": name, "Version": version}
    if comment:
        body["Comment"] = comment
    body["StartAt"] = graph.top.start
    if graph.on_cancel is not None:
        body["OnCancel"] = graph.on_cancel
    if timeout is not None:
        body["TimeoutSeconds"] = duration_seconds(timeout)
    if input_schema is not None:
        body["InputSchema"] = symbolic.plain(input_schema)
    if graph.queries:
        body["Queries"] = graph.queries
    body["States"] = graph.top.states
    return graph.built(body, site)


sites.internal(__file__)
