"""How the options of ``flow.task`` and ``flow.child`` become the fields of their Task state.

``Flow`` says what a step is; this module says what a Task's options are in the definition:
the input (``Parameters``, or ``InputPath`` for a Value given whole), ``select=``
(``ResultSelector``), ``result=`` (``ResultPath``), time limits, ``Callback``, ``Retry``,
``Catch`` and ``compensate=`` (the undo a Compensate state runs). The ``select=`` and
``compensate=`` lambdas run once, here, on a Value of their own origin (the raw result; the
task's input and result), through the flow that refuses steps added inside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from cairn.codeflow import builder, control, jmespath_tree, sites, symbolic
from cairn.codeflow.builder import Facts
from cairn.codeflow.jmespath_tree import Origin
from cairn.codeflow.options import (
    CatchSpec,
    Duration,
    Retry,
    Undo,
    activity_name,
    catches,
    duration_seconds,
    retries,
)
from cairn.codeflow.sites import refuse
from cairn.codeflow.symbolic import Value
from cairn.jsontypes import JSON

Select: TypeAlias = "Callable[[Value], Mapping[str, object]]"
"""``select=``: the raw result in, the ResultSelector's fields out."""
Compensation: TypeAlias = "Undo | Callable[[Value], Undo]"
"""``compensate=``: an Undo, or a lambda of the completed task (``done.input``, ``.result``)."""
RunLambda: TypeAlias = "Callable[[str, Callable[[Value], object], Origin], object]"
"""Calls an option's lambda on a Value of ``origin``; no step may be added meanwhile."""


def payload(
    graph: builder.Graph, payload: object, params: Mapping[str, object], facts: Facts
) -> dict[str, JSON]:
    """The Task's input: keyword parameters and a dict of them, or one Value given whole."""
    if isinstance(payload, Value):
        if params:
            refuse("give either a Value as the whole input or parameters, not both")
        return {"InputPath": graph.expression(payload, facts)}
    if payload is not None and not isinstance(payload, Mapping):
        refuse("the second argument is a dict of parameters or a Value")
    return {"Parameters": graph.template({**(payload or {}), **params}, facts)}


def add(
    graph: builder.Graph,
    name: str,
    body: dict[str, Any],
    facts: Facts,
    run: RunLambda,
    *,
    select: Select | None,
    result: str | Value | None,
    retry: Retry | Sequence[Retry],
    catch: CatchSpec | None,
    compensate: Compensation | None,
    timeout: Duration | None,
    heartbeat: Duration | None,
    callback: bool,
) -> Value:
    """Complete the Task ``body`` from its options, add it, and return a Value for its result."""
    if select is not None:
        body["ResultSelector"] = _result_selector(graph, select, run)
    origin, value = graph.result(name, result)
    body["ResultPath"] = None if origin.discarded else origin.key
    if timeout is not None:
        body["TimeoutSeconds"] = duration_seconds(timeout)
    if heartbeat is not None:
        body["HeartbeatSeconds"] = duration_seconds(heartbeat)
    if callback:
        body["Callback"] = True
    if retry:
        body["Retry"] = retries(retry)
    graph.add(name, body, facts, origin)
    control.catch(graph, name, body, catches(catch), facts)
    if compensate is not None:
        body["Compensate"] = _undo(graph, compensate, run)
    return value


def _result_selector(graph: builder.Graph, select: Select, run: RunLambda) -> dict[str, JSON]:
    origin = Origin(kind="relative", label="the raw result (the select= argument)")
    shaped = run("select=", select, origin)
    if not isinstance(shaped, Mapping):
        refuse("select= returns a dict (a ResultSelector), like {'score': result.score}")
    return graph.template(shaped, {}, origin)


def _undo(graph: builder.Graph, compensate: Compensation, run: RunLambda) -> dict[str, JSON]:
    origin = Origin(kind="relative", label="the task's input and result (done.input, done.result)")
    undo = compensate if isinstance(compensate, Undo) else run("compensate=", compensate, origin)
    if not isinstance(undo, Undo):
        refuse("compensate= takes Undo(...) or a lambda returning one")
    out: dict[str, JSON] = {"Activity": activity_name(undo.activity)}
    if undo.queue is not None:
        out["TaskQueue"] = undo.queue
    given = undo.payload
    if isinstance(given, Value):
        tree = symbolic.node(given)
        if not (isinstance(tree, jmespath_tree.Path) and tree.origin is origin and not tree.steps):
            refuse("an Undo's input is a dict of parameters, or the lambda's whole argument")
    elif given is None or isinstance(given, Mapping):
        out["Parameters"] = graph.template({**(given or {}), **undo.params}, {}, origin)
    else:
        refuse("an Undo's input is a dict of parameters, or the lambda's whole argument")
    if undo.retry:
        out["Retry"] = retries(undo.retry)
    if undo.timeout is not None:
        out["TimeoutSeconds"] = duration_seconds(undo.timeout)
    if undo.comment is not None:
        out["Comment"] = undo.comment
    return out


sites.internal(__file__)
