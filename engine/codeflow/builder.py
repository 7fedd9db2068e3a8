"""The state machine a code workflow builds: scopes, open paths, and what data holds where.

``Flow`` (``codeflow.flow``) turns each call of the user's function into a state; this module
keeps the graph those states form. Every scope (the top level, a Parallel branch, a Map's
item processor) has a list of open paths, the exits of its last states whose target is
whatever comes next. Each exit carries the facts that hold along it: which origin each
top-level field of the data holds. Reading a Value is checked against the facts of the
step that reads it, so a result read before it exists, outside the branch that made it,
after it was discarded or replaced, is reported with the user's file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from cairn import errors
from cairn.codeflow import jmespath_tree, options, sites, symbolic
from cairn.codeflow.jmespath_tree import Origin
from cairn.codeflow.sites import Site, refuse
from cairn.codeflow.symbolic import Value
from cairn.core import names
from cairn.definitions.source import Path, dotted
from cairn.jsontypes import JSON

AMBIGUOUS = Origin(kind="ambiguous", label="different results on different paths")
"""Held by a key that different paths to a step fill with different results."""
PARTIAL = Origin(kind="partial", label="a result on some paths only")
"""Held by a key that some paths to a step never fill."""

Facts: TypeAlias = "dict[str, Origin]"
"""The origin each top-level data field holds on every path to a point of the flow."""
Slot: TypeAlias = "str | tuple[str, int]"

_STATE_NAME = re.compile(r"^[^/\[\]]{1,80}$")
_OUTPUT_TYPES = frozenset({"Task", "Pass", "Wait", "Parallel", "Map"})


@dataclass(slots=True)
class Exit:
    """A way out of a state (or into a scope) whose target is the next state added."""

    state: dict[str, Any] | None  # None: the start of a scope
    slot: Slot  # "Next", "Default", ("Choices", i), ("Catch", i); "StartAt" or "OnCancel"
    facts: Facts


@dataclass(eq=False, slots=True)
class Scope:
    """One state machine: the top level, a Parallel branch, or a Map's item processor."""

    kind: Literal["top", "branch", "item"]
    path: Path
    parent: Scope | None
    exits: list[Exit]
    label: str = ""
    outer: Facts = field(default_factory=dict)
    """The parent's facts where this scope was entered."""
    captured: Facts = field(default_factory=dict)
    """Keys an item processor holds from the start (the item, and what ItemSelector brings)."""
    selector: dict[str, JSON] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    start: str | None = None
    chain: object = None
    """The if/elif chain whose block just closed, for a following elif_ or else_."""
    handlers: dict[Any, object] = field(default_factory=dict)
    ended: Site | None = None
    reads: list[jmespath_tree.Path] | None = None
    """While a catch handler is built: the paths it reads, to check again where reused."""

    def within(self, other: Scope) -> bool:
        scope: Scope | None = self
        while scope is not None and scope is not other:
            scope = scope.parent
        return scope is other

    def body(self) -> dict[str, Any]:
        return {"StartAt": self.start, "States": self.states}


def merge(exits: Sequence[Exit]) -> Facts:
    """The facts that hold on every one of these paths."""
    merged: Facts = {}
    for key in dict.fromkeys(k for e in exits for k in e.facts):
        held = {id(e.facts.get(key)): e.facts.get(key) for e in exits}
        only = next(iter(held.values()))
        if len(held) == 1 and only is not None:
            merged[key] = only
        else:
            merged[key] = PARTIAL if None in held.values() else AMBIGUOUS
    return merged


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    """What running a workflow function produced: the body, where each part came from,
    and the problems found on the way (the schema and semantic checks come after)."""

    body: dict[str, Any]
    sites: dict[Path, Site]
    problems: list[errors.Problem]
    site: Site

    def locate(self, problem: errors.Problem) -> errors.Problem:
        """A validation problem, moved to the user's line that made the part it names."""
        best: tuple[int, Site] | None = None
        for path, site in self.sites.items():
            text = dotted(path)
            fits = problem.path == text or problem.path.startswith((text + ".", text + "["))
            if fits and (best is None or len(text) > best[0]):
                best = (len(text), site)
        site = best[1] if best is not None else self.site
        return site.problem(problem.message, problem.path)


class Graph:
    """The definition being built, the scope being filled, and the problems found."""

    def __init__(self, *, input_fields: Sequence[str], site: Site) -> None:
        self.input = Origin(kind="input", label="the input", owner=self)
        self.context = Origin(kind="context", label="the context object", owner=self)
        self.top = Scope(kind="top", path=(), parent=None, exits=[Exit(None, "StartAt", {})])
        self.scope = self.top
        self.site = site
        self.names: dict[str, Site] = {}
        self.keys: set[str] = set(input_fields)
        self.input_fields = frozenset(input_fields)
        self.sites: dict[Path, Site] = {}
        self.problems: list[errors.Problem] = []
        self.queries: dict[str, JSON] = {}
        self.on_cancel: str | None = None

    # -- problems ------------------------------------------------------------------------
    def problem(self, message: str, path: Path | None = None) -> None:
        self.problems.append(self.site.problem(message, dotted(path) if path else ""))

    # -- states --------------------------------------------------------------------------
    def state_path(self, name: str) -> Path:
        return (*self.scope.path, "States", name)

    def name(self, explicit: str | None, hint: str) -> str:
        """A state name: the one asked for, or the hint made unique (``Wait``, ``Wait-2``)."""
        if explicit is not None:
            if not isinstance(explicit, str) or not _STATE_NAME.match(explicit):
                refuse(
                    f"state name {explicit!r} must be 1 to 80 characters without '/', '[' or ']'"
                )
            if explicit in self.names:
                refuse(
                    f"state name {explicit!r} is already used (at {self.names[explicit]}); "
                    "state names are unique across the whole workflow"
                )
            name = explicit
        else:
            name, n = hint, 1
            while name in self.names:
                n += 1
                name = f"{hint}-{n}"
        self.names[name] = self.site
        return name

    def start_state(self, explicit: str | None, hint: str) -> tuple[str, Facts]:
        """Name the next state of the scope and return the facts on the way into it."""
        scope = self.scope
        if not scope.exits:
            where = f" (at {scope.ended})" if scope.ended else ""
            refuse(f"this step can never run: every path before it has ended{where}")
        return self.name(explicit, hint), merge(scope.exits)

    def add(self, name: str, body: dict[str, Any], facts: Facts, origin: Origin | None) -> None:
        """Make ``body`` the target of every open path; its own exit becomes the open path."""
        scope = self.scope
        self.link(scope.exits, name)
        scope.states[name] = body
        scope.chain = None
        self.sites[self.state_path(name)] = self.site
        after = dict(facts)
        if origin is not None and not origin.discarded and origin.key is not None:
            after[origin.key] = origin
        scope.exits = [Exit(body, "Next", after)] if body["Type"] in names.CONTINUING else []

    def link(self, exits: Sequence[Exit], target: str) -> None:
        for exit_ in exits:
            if exit_.slot == "OnCancel":
                self.on_cancel = target
            elif exit_.state is None:
                self.scope.start = target
            elif isinstance(exit_.slot, tuple):
                exit_.state[exit_.slot[0]][exit_.slot[1]]["Next"] = target
            else:
                exit_.state[exit_.slot] = target

    def end_path(self) -> None:
        self.scope.exits = []
        self.scope.ended = self.site

    def result(self, name: str, result: object) -> tuple[Origin, Value]:
        """Where a state keeps its result (``result=`` of the user), and a Value for it."""
        label = f"the result of {name!r}"
        if result is None:
            origin = Origin(
                kind="result", label=label, discarded=True, site=self.site, scope=self.scope,
                owner=self,
            )  # fmt: skip
            return origin, symbolic.root(origin)
        if isinstance(result, Value):
            tree = symbolic.node(result)
            if not (
                isinstance(tree, jmespath_tree.Path)
                and not tree.steps
                and tree.origin.kind == "result"
                and tree.origin.owner is self
                and not tree.origin.discarded
            ):
                refuse("result= takes a key name, None, or the whole result of an earlier step")
            return tree.origin, result
        if result is options.DEFAULT:
            base = key = options.snake(name)
            n = 1
            while key in self.keys:
                n += 1
                key = f"{base}_{n}"
        elif isinstance(result, str) and result.isidentifier() and result.isascii():
            key = result
            if key in self.input_fields:
                self.problem(f"result key {key!r} would hide the input field of the same name")
        else:
            refuse(f"result= is a key name (letters, digits, _), None, or a Value; not {result!r}")
        self.keys.add(key)
        origin = Origin(
            kind="result", key=key, label=label, site=self.site, scope=self.scope, owner=self
        )
        return origin, symbolic.root(origin)

    # -- reading data --------------------------------------------------------------------
    def expression(self, value: object, facts: Facts, relative: Origin | None = None) -> str:
        """The JMESPath of a value read where ``facts`` hold; problems are recorded."""
        tree = symbolic.node_of(value)
        for path in jmespath_tree.paths(tree) if relative is None else ():
            self.check(path, facts)
        try:
            return jmespath_tree.render(tree, relative)
        except jmespath_tree.RenderError as exc:
            self.problem(str(exc))
            return "@"

    def template(
        self, params: Mapping[str, object], facts: Facts, relative: Origin | None = None
    ) -> dict[str, JSON]:
        """A payload template (``key.$: expression`` for Values, literals as they are)."""
        out: dict[str, JSON] = {}
        for key, value in params.items():
            if not isinstance(key, str) or key.endswith(".$"):
                refuse(f"the parameter name {key!r} must be a string not ending in .$")
            if isinstance(value, Value):
                out[f"{key}.$"] = self.expression(value, facts, relative)
            elif isinstance(value, Mapping):
                out[key] = self.template(value, facts, relative)
            elif isinstance(value, (list, tuple)) and symbolic.contains_value(value):
                if all(isinstance(v, Mapping) or not symbolic.contains_value(v) for v in value):
                    # A template's arrays hold templates in their objects, as the format says.
                    out[key] = [
                        self.template(v, facts, relative)
                        if isinstance(v, Mapping)
                        else symbolic.plain(v)
                        for v in value
                    ]
                else:
                    out[f"{key}.$"] = self.expression(value, facts, relative)
            else:
                out[key] = symbolic.plain(value)
        return out

    def shape(self, value: object, facts: Facts) -> dict[str, JSON]:
        """The fields that make a Pass (or ContinueAsNew) state produce ``value``."""
        if isinstance(value, Mapping) and symbolic.contains_value(value):
            return {"Parameters": self.template(value, facts)}
        if symbolic.contains_value(value):
            return {"InputPath": self.expression(value, facts)}
        return {"Result": symbolic.plain(value)}

    def output(self, value: object, facts: Facts) -> str:
        """An OutputPath producing ``value``."""
        if symbolic.contains_value(value):
            return self.expression(value, facts)
        return jmespath_tree.literal(symbolic.plain(value))

    def check(self, path: jmespath_tree.Path, facts: Facts) -> None:
        """Record a problem when ``path`` reads data that does not hold on every path here."""
        origin = path.origin
        if origin.kind in ("context", "relative") or jmespath_tree.whole_input(path):
            return
        if origin.owner is not self:
            what = "this input" if origin.kind == "input" else origin.label
            self.problem(f"{what} belongs to another workflow's function; it cannot be read here")
            return
        if self.scope.reads is not None:
            self.scope.reads.append(path)
        message = self.available(self.scope, facts, path)
        if message is not None:
            self.problem(message)

    def available(
        self, scope: Scope, facts: Facts, path: jmespath_tree.Path, asking: Scope | None = None
    ) -> str | None:
        """None when ``path`` reads data that holds on every path here, else why not.

        A nested scope starts from its parent's facts at the Parallel or Map; what it does
        not hold itself is looked up there, and a Map's item processor brings the key in
        through its ItemSelector.
        """
        origin = path.origin
        asking = asking or scope
        if origin.discarded:
            return f"{origin.label} is discarded (result=None), so it cannot be read"
        key = origin.key if origin.kind != "input" else str(path.steps[0])
        assert key is not None
        held = facts.get(key) or scope.captured.get(key)
        if held is origin:
            return None
        if held is None:
            if scope.parent is None or origin.scope is scope:
                if origin.kind == "input" and scope.parent is None:
                    return None
                return self.absent(origin, asking)
            message = self.available(scope.parent, scope.outer, path, asking)
            if message is None and scope.kind == "item":
                scope.captured[key] = origin
                scope.selector[f"{key}.$"] = jmespath_tree.identifier(key)
            return message
        if held is PARTIAL and origin.kind != "input":
            return self.absent(origin, asking)
        what = f"the input field {key!r}" if origin.kind == "input" else origin.label
        if held in (AMBIGUOUS, PARTIAL):
            return (
                f"{what} is not the same on every path to here: a step on some path "
                f"stores another result under the key {key!r}"
            )
        return (
            f"{what} is no longer there: {held.label} (at {held.site}) is stored under the "
            f"same key {key!r}; give one of them another result= key"
        )

    def absent(self, origin: Origin, scope: Scope) -> str:
        made = f" (at {origin.site})" if origin.site else ""
        home = origin.scope
        if isinstance(home, Scope) and not scope.within(home):
            return (
                f"{origin.label}{made} exists only inside {home.label}; "
                "return it from there to use it outside"
            )
        if origin.kind == "error":
            return f"{origin.label}{made} exists only in its catch handler"
        return (
            f"{origin.label}{made} does not exist on every path to here: some path reaches "
            "this step without it (a branch that skips that step, or a catch handler that "
            "continues after it failed)"
        )

    # -- scopes --------------------------------------------------------------------------
    def inside(
        self, scope: Scope, function: Callable[..., object], arguments: tuple[Value, ...]
    ) -> dict[str, Any]:
        """Build a nested scope by calling ``function``; returns its ``{StartAt, States}``."""
        outer, site = self.scope, self.site
        self.scope = scope
        try:
            output, returned = sites.call(function, arguments)
            self.site = returned or site
            self.finish(output, None)
        finally:
            self.scope, self.site = outer, site
        return scope.body()

    def finish(self, output: object, name: str | None) -> None:
        """End every open path of the scope with ``output`` (None: the data as it is)."""
        scope = self.scope
        exits = scope.exits
        if not exits:
            if output is not None or name is not None:
                where = f" (at {scope.ended})" if scope.ended else ""
                refuse(f"this output is never reached: every path has ended{where}")
            return
        if output is None and name is None:
            if all(e.slot == "Next" for e in exits):
                for exit_ in exits:
                    assert exit_.state is not None
                    exit_.state["End"] = True
                scope.exits = []
                return
            # A Choice rule or a Catch cannot end a scope itself: they end at a Succeed.
            done, facts = self.start_state(None, "Done")
            self.add(done, {"Type": "Succeed"}, facts, None)
            self.end_path()
            return
        if (
            name is None
            and symbolic.contains_value(output)
            and all(_takes_output(e) for e in exits)
        ):
            for exit_ in exits:
                assert exit_.state is not None
                exit_.state["OutputPath"] = self.expression(output, exit_.facts)
                exit_.state["End"] = True
            self.end_path()
            return
        state, facts = self.start_state(name, "Return")
        body: dict[str, Any] = {"Type": "Pass"}
        if output is not None:
            body.update(self.shape(output, facts))
        body["End"] = True
        self.add(state, body, facts, None)
        self.end_path()

    def built(self, body: dict[str, Any], site: Site) -> Built:
        return Built(body=body, sites=self.sites, problems=self.problems, site=site)


def _takes_output(exit_: Exit) -> bool:
    state = exit_.state
    return (
        exit_.slot == "Next"
        and state is not None
        and state["Type"] in _OUTPUT_TYPES
        and "OutputPath" not in state
    )


sites.internal(__file__)
