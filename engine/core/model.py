"""The definition as typed, frozen values: one class per state type, built once at load time.

The interpreter reads these, never the raw document, so field defaults, expression parsing
and the ASL quirks of each field live here once.  The document is assumed valid
(``definitions.loader`` has checked it); building the model does no validation of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from cairn.core.expressions import CONTEXT_PREFIX, Expression, Template
from cairn.jsontypes import JSON

DEFAULT_QUEUE = "default"

ResultPath: TypeAlias = tuple[str, ...] | None
"""Where a result goes: ``()`` replaces the input (``@``), ``None`` discards the result."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrier:
    """One Retry rule; ``max_attempts`` counts retries after the first try, as in ASL."""

    errors: tuple[str, ...]
    interval: float = 1.0
    backoff_rate: float = 2.0
    max_attempts: int = 3
    max_delay: float | None = None
    full_jitter: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Catcher:
    """One Catch rule: matching errors continue at ``next`` with the error output placed."""

    errors: tuple[str, ...]
    next: str
    result_path: ResultPath = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensation:
    """The undo step of a Task, run by a Compensate state; sees the task's input and result."""

    activity: str
    parameters: Template | None
    retry: tuple[Retrier, ...]
    queue: str
    timeout: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """The fields every state type shares; absent paths mean the identity."""

    name: str
    next: str | None = None
    end: bool = False
    input_path: Expression | None = None
    output_path: Expression | None = None
    input_null: bool = False
    output_null: bool = False
    parameters: Template | None = None
    result_selector: Template | None = None
    result_path: ResultPath = ()
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    uses_context: bool = True
    """Whether an expression of the state reads the context object (``$$.``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Task(State):
    activity: str | None = None
    workflow: str | None = None
    timeout: int | None = None
    heartbeat: int | None = None
    queue: str = DEFAULT_QUEUE
    callback: bool = False
    compensate: Compensation | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pass(State):
    result: JSON = None
    has_result: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait(State):
    seconds: int | None = None
    seconds_path: Expression | None = None
    timestamp: str | None = None
    timestamp_path: Expression | None = None
    signal: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice(State):
    choices: tuple[tuple[Expression, str], ...] = ()
    default: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Parallel(State):
    branches: tuple[Machine, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Map(State):
    processor: Machine
    items_path: Expression | None = None
    item_selector: Template | None = None
    max_concurrency: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Succeed(State):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail(State):
    error: str | None = None
    cause: str | None = None
    error_path: Expression | None = None
    cause_path: Expression | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensate(State):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinueAsNew(State):
    version: Literal["same", "latest"] = "same"


@dataclass(frozen=True, slots=True, kw_only=True)
class Machine:
    """A scope: the top level, one Parallel branch, or a Map's item processor."""

    start_at: str
    states: Mapping[str, State]


@dataclass(frozen=True, slots=True, kw_only=True)
class Definition:
    """A deployed workflow version, ready to interpret."""

    name: str
    version: int
    machine: Machine
    timeout: int | None = None
    on_cancel: str | None = None
    """The top-level state a cancelled execution goes on at (e.g. to compensate)."""
    input_schema: Mapping[str, JSON] | None = None
    queries: Mapping[str, Expression] = field(default_factory=dict)
    body: Mapping[str, JSON] = field(default_factory=dict)
    states: Mapping[str, State] = field(default_factory=dict, repr=False)
    """Every state of every scope by name (names are unique across a definition)."""


def _collect(machine: Machine, found: dict[str, State]) -> None:
    for name, state in machine.states.items():
        found[name] = state
        if isinstance(state, Parallel):
            for branch in state.branches:
                _collect(branch, found)
        elif isinstance(state, Map):
            _collect(state.processor, found)


def build(body: Mapping[str, Any]) -> Definition:
    """Build the model of a valid definition document."""
    queries = {k: Expression.compile(v) for k, v in body.get("Queries", {}).items()}
    machine = _machine(body)
    every: dict[str, State] = {}
    _collect(machine, every)
    return Definition(
        name=body["Name"],
        version=body["Version"],
        machine=machine,
        states=every,
        timeout=body.get("TimeoutSeconds"),
        on_cancel=body.get("OnCancel"),
        input_schema=body.get("InputSchema"),
        queries=queries,
        body=body,
    )


def _machine(body: Mapping[str, Any]) -> Machine:
    states = {name: _state(name, s) for name, s in body["States"].items()}
    return Machine(start_at=body["StartAt"], states=states)


def _expr(body: Mapping[str, Any], key: str) -> Expression | None:
    value = body.get(key)
    return Expression.compile(value) if isinstance(value, str) else None


def _template(body: Mapping[str, Any], key: str) -> Template | None:
    value = body.get(key)
    return Template.compile(value) if isinstance(value, dict) else None


def _result_path(body: Mapping[str, Any], key: str, default: ResultPath) -> ResultPath:
    if key not in body:
        return default
    value = body[key]
    if value is None:
        return None
    return () if value == "@" else tuple(value.split("."))


def _retriers(rules: list[Mapping[str, Any]]) -> tuple[Retrier, ...]:
    return tuple(
        Retrier(
            errors=tuple(r["ErrorEquals"]),
            interval=float(r.get("IntervalSeconds", 1.0)),
            backoff_rate=float(r.get("BackoffRate", 2.0)),
            max_attempts=int(r.get("MaxAttempts", 3)),
            max_delay=r.get("MaxDelaySeconds"),
            full_jitter=r.get("JitterStrategy", "NONE") == "FULL",
        )
        for r in rules
    )


def _mentions_context(value: Any) -> bool:
    """Whether any string in ``value`` is a context expression; may over-report, never under."""
    if isinstance(value, str):
        return value.startswith(CONTEXT_PREFIX)
    if isinstance(value, dict):
        return any(_mentions_context(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_context(v) for v in value)
    return False


def _common(name: str, body: Mapping[str, Any], result_default: ResultPath) -> dict[str, Any]:
    return {
        "name": name,
        # A Compensate state evaluates other states' undo parameters: always build it.
        "uses_context": body["Type"] == "Compensate" or _mentions_context(body),
        "next": body.get("Next"),
        "end": bool(body.get("End", False)),
        "input_path": _expr(body, "InputPath"),
        "output_path": _expr(body, "OutputPath"),
        "input_null": "InputPath" in body and body["InputPath"] is None,
        "output_null": "OutputPath" in body and body["OutputPath"] is None,
        "parameters": _template(body, "Parameters"),
        "result_selector": _template(body, "ResultSelector"),
        "result_path": _result_path(body, "ResultPath", result_default),
        "retry": _retriers(body.get("Retry", [])),
        "catch": tuple(
            Catcher(
                errors=tuple(c["ErrorEquals"]),
                next=c["Next"],
                result_path=_result_path(c, "ResultPath", ()),
            )
            for c in body.get("Catch", [])
        ),
    }


def _state(name: str, body: Mapping[str, Any]) -> State:
    kind = body["Type"]
    if kind == "Wait":
        return Wait(
            **_common(name, body, None),
            seconds=body.get("Seconds"),
            seconds_path=_expr(body, "SecondsPath"),
            timestamp=body.get("Timestamp"),
            timestamp_path=_expr(body, "TimestampPath"),
            signal=body.get("Signal"),
        )
    common = _common(name, body, ())
    match kind:
        case "Task":
            return Task(
                **common,
                activity=body.get("Activity"),
                workflow=body.get("Workflow"),
                timeout=body.get("TimeoutSeconds"),
                heartbeat=body.get("HeartbeatSeconds"),
                queue=body.get("TaskQueue", DEFAULT_QUEUE),
                callback=bool(body.get("Callback", False)),
                compensate=_compensation(body.get("Compensate")),
            )
        case "Pass":
            return Pass(**common, result=body.get("Result"), has_result="Result" in body)
        case "Choice":
            choices = tuple(
                (Expression.compile(c["Condition"]), c["Next"]) for c in body["Choices"]
            )
            return Choice(**common, choices=choices, default=body.get("Default"))
        case "Parallel":
            return Parallel(**common, branches=tuple(_machine(b) for b in body["Branches"]))
        case "Map":
            return Map(
                **common,
                processor=_machine(body["ItemProcessor"]),
                items_path=_expr(body, "ItemsPath"),
                item_selector=_template(body, "ItemSelector"),
                max_concurrency=body.get("MaxConcurrency", 0),
            )
        case "Succeed":
            return Succeed(**common)
        case "Fail":
            return Fail(
                **common,
                error=body.get("Error"),
                cause=body.get("Cause"),
                error_path=_expr(body, "ErrorPath"),
                cause_path=_expr(body, "CausePath"),
            )
        case "Compensate":
            return Compensate(**common)
        case "ContinueAsNew":
            return ContinueAsNew(**common, version=body.get("Version", "same"))
    raise ValueError(f"unknown state type {kind!r}")


def _compensation(body: Mapping[str, Any] | None) -> Compensation | None:
    if body is None:
        return None
    return Compensation(
        activity=body["Activity"],
        parameters=_template(body, "Parameters"),
        retry=_retriers(body.get("Retry", [])),
        queue=body.get("TaskQueue", DEFAULT_QUEUE),
        timeout=body.get("TimeoutSeconds"),
    )


def activities_of(definition: Definition) -> dict[str, str]:
    """Every activity the definition can run (compensations included), with its task queue."""
    found: dict[str, str] = {}
    for state in definition.states.values():
        if isinstance(state, Task):
            if state.activity is not None:
                found[state.activity] = state.queue
            if state.compensate is not None:
                found[state.compensate.activity] = state.compensate.queue
    return found
