"""Control flow in a code workflow: ``with`` blocks become Choice states; nested scopes;
catch handlers.

``with flow.if_(c):``, ``elif_``, ``else_`` and ``while_`` run their block once, at deploy,
while the builder records the block's steps as one branch of a Choice state. The paths
leaving the blocks of an if/elif/else chain join at the next step; a while block loops
back to its condition. The branch functions of ``flow.parallel`` and the item function of
``flow.map`` also run once, each inside a scope of its own that no path may leave. A catch
handler is a function that adds the steps run when a step fails; it is built once per
scope, and every catch that names it again jumps to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn import errors
from cairn.codeflow import builder, jmespath_tree, sites, symbolic
from cairn.codeflow.builder import Exit, Facts, Scope
from cairn.codeflow.jmespath_tree import Origin
from cairn.codeflow.options import Catch, error_name
from cairn.codeflow.sites import Site, refuse
from cairn.jsontypes import JSON


@dataclass(slots=True)
class Chain:
    """An if / elif / else chain: its Choice state and the paths leaving its blocks."""

    choice: dict[str, Any]
    name: str
    facts: Facts
    default: Exit | None
    joins: list[Exit] = field(default_factory=list)


class Block:
    """What ``flow.if_`` / ``elif_`` / ``else_`` / ``while_`` return: use it with ``with``."""

    def __init__(
        self,
        begin: Callable[[], builder.Graph],
        kind: str,
        condition: object,
        name: str | None,
        comment: str | None,
        site: Site,
    ) -> None:
        self.begin = begin
        self.kind = kind
        self.condition = condition
        self.name = name
        self.comment = comment
        self.site = site
        self.entered = False
        self.chain: Chain | None = None

    def __enter__(self) -> None:
        graph = self.begin()
        frame = sites.user_frame()
        escape = sites.escaping_statement(frame, f"{self.kind}(...)") if frame else None
        if escape is not None:
            raise errors.DefinitionError([escape])
        self.entered = True
        scope = graph.scope
        if self.kind in ("if_", "while_"):
            name, facts = graph.start_state(self.name, "If" if self.kind == "if_" else "While")
            body: dict[str, Any] = {"Type": "Choice"}
            if self.comment is not None:
                body["Comment"] = self.comment
            body["Choices"] = [{"Condition": graph.expression(self.condition, facts)}]
            graph.add(name, body, facts, None)
            self.chain = Chain(body, name, facts, Exit(body, "Default", facts))
            scope.exits = [Exit(body, ("Choices", 0), facts)]
            return
        chain = scope.chain
        if not isinstance(chain, Chain) or chain.default is None:
            refuse(f"`with flow.{self.kind}()` must come right after an if_ or elif_ block")
        self.chain, scope.chain = chain, None
        if self.kind == "elif_":
            rules = chain.choice["Choices"]
            rules.append({"Condition": graph.expression(self.condition, chain.facts)})
            scope.exits = [Exit(chain.choice, ("Choices", len(rules) - 1), chain.facts)]
        else:
            scope.exits, chain.default = [chain.default], None

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is not None:
            return
        graph = self.begin()
        scope, chain = graph.scope, self.chain
        assert chain is not None
        if self.kind == "while_":
            graph.link(scope.exits, chain.name)
            assert chain.default is not None
            scope.exits, scope.chain = [chain.default], None
            return
        chain.joins += scope.exits
        scope.exits = chain.joins + ([chain.default] if chain.default is not None else [])
        scope.chain = chain if chain.default is not None else None


def branches(
    graph: builder.Graph, name: str, facts: Facts, functions: Sequence[Callable[[], object]]
) -> list[JSON]:
    """The Branches of Parallel state ``name``: each function built in a scope of its own."""
    path = graph.state_path(name)
    return [
        graph.inside(
            Scope(
                kind="branch",
                path=(*path, "Branches", index),
                parent=graph.scope,
                exits=[Exit(None, "StartAt", dict(facts))],
                label=f"branch {index} of {name!r}",
                outer=facts,
            ),
            function,
            (),
        )
        for index, function in enumerate(functions)
    ]


def item_processor(
    graph: builder.Graph,
    name: str,
    facts: Facts,
    function: Callable[..., object],
    arguments: Sequence[str],
) -> tuple[dict[str, JSON], dict[str, Any]]:
    """The ItemSelector and ItemProcessor of Map state ``name``, from ``function``.

    ``arguments`` are the names of its parameters: the item, and optionally its index.
    """
    scope = Scope(
        kind="item",
        path=(*graph.state_path(name), "ItemProcessor"),
        parent=graph.scope,
        exits=[Exit(None, "StartAt", {})],
        label=f"an item of {name!r}",
        outer=facts,
    )
    values = []
    for key, what in zip(arguments, ("Value", "Index"), strict=False):
        origin = Origin(
            kind="item", key=key, label=f"the {what.lower()} of {scope.label}",
            site=graph.site, scope=scope, owner=graph,
        )  # fmt: skip
        scope.captured[key] = origin
        scope.selector[f"{key}.$"] = f"$$.Map.Item.{what}"
        values.append(symbolic.root(origin))
    processor = graph.inside(scope, function, tuple(values))
    return scope.selector, processor


@dataclass(frozen=True, slots=True)
class Handler:
    """A catch handler as first built in a scope, for the catches that name it again."""

    start: str | None
    falls_through: bool
    key: str | None
    origin: Origin
    reads: list[jmespath_tree.Path]
    site: Site


def catch(
    graph: builder.Graph, name: str, body: dict[str, Any], rules: list[Catch], facts: Facts
) -> None:
    """Add the Catch rules of the state just added (``facts`` held on its way in),
    building each handler once per scope.

    A handler that does not end its path continues after the state, as code after a
    ``try``/``except`` would: its open paths join the state's own.
    """
    if not rules:
        return
    scope, site = graph.scope, graph.site
    own = scope.exits
    body["Catch"] = []
    continuing: list[Exit] = []
    for index, rule in enumerate(rules):
        entry: dict[str, JSON] = {"ErrorEquals": [error_name(e) for e in rule.errors]}
        entry["ResultPath"] = rule.result
        body["Catch"].append(entry)
        known = scope.handlers.get(rule.handler)
        if isinstance(known, Handler):
            _reuse(graph, known, rule, entry, facts)
        else:
            continuing += _build(graph, name, body, index, rule, facts)
    graph.site = site
    scope.exits, scope.chain = own + continuing, None


def _build(
    graph: builder.Graph,
    name: str,
    body: dict[str, Any],
    index: int,
    rule: Catch,
    facts: Facts,
) -> list[Exit]:
    """Build a handler after ``Catch[index]``; returns the paths that continue after it."""
    scope, site = graph.scope, graph.site
    origin = Origin(
        kind="error", key=rule.result, label=f"the error caught from {name!r}", site=site,
        scope=scope, owner=graph, discarded=rule.result is None,
    )  # fmt: skip
    entered = dict(facts)
    if rule.result is not None:
        entered[rule.result] = origin
    kept_ended, outer_reads = scope.ended, scope.reads
    scope.exits, scope.chain, scope.ended = [Exit(body, ("Catch", index), entered)], None, None
    scope.reads = []
    try:
        rule.handler(*((symbolic.root(origin),) if sites.parameters(rule.handler) else ()))
    finally:
        reads, scope.reads, scope.ended = scope.reads, outer_reads, kept_ended
        if outer_reads is not None:
            outer_reads.extend(reads)
    start = body["Catch"][index].get("Next")
    scope.handlers[rule.handler] = Handler(
        start=start if isinstance(start, str) else None,
        falls_through=bool(scope.exits),
        key=rule.result,
        origin=origin,
        reads=reads,
        site=site,
    )
    return scope.exits


def _reuse(
    graph: builder.Graph, known: Handler, rule: Catch, entry: dict[str, JSON], facts: Facts
) -> None:
    if known.start is not None:
        entry["Next"] = known.start
    if known.falls_through or known.start is None:
        graph.problem(
            f"this handler is already used by the catch at {known.site} and continues "
            "after the step that failed there, so it cannot continue here too; end it "
            "(flow.fail, flow.end, flow.succeed) or give this catch its own handler"
        )
        return
    if known.key != rule.result:
        graph.problem(
            f"this handler is already used with result={known.key!r} (at {known.site}); "
            "use the same result= here"
        )
        return
    entered = dict(facts)
    if known.key is not None:
        entered[known.key] = known.origin
    for path in known.reads:
        message = graph.available(graph.scope, entered, path)
        if message is not None:
            graph.problem(f"the handler (at {known.site}) reads {message}")


sites.internal(__file__)
