"""How data moves through a state: InputPath, Parameters, ResultSelector, ResultPath, OutputPath.

Applied in the Amazon States Language order; every function is pure and raises
``DataError`` (which the interpreter turns into ``States.Runtime``) when the data does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping

from cairn.core import model
from cairn.core.expressions import DataError, kind
from cairn.jsontypes import JSON


def select_input(state: model.State, raw: JSON, context: Mapping[str, JSON]) -> JSON:
    """Apply InputPath: the part of the state's input the state works on."""
    if state.input_null:
        return {}
    if state.input_path is None:
        return raw
    return state.input_path.evaluate(raw, context)


def effective_input(state: model.State, raw: JSON, context: Mapping[str, JSON]) -> JSON:
    """Apply InputPath then Parameters: what a Task's activity or a Pass state receives."""
    data = select_input(state, raw, context)
    if state.parameters is not None:
        return state.parameters.evaluate(data, context)
    return data


def state_output(state: model.State, raw: JSON, result: JSON, context: Mapping[str, JSON]) -> JSON:
    """Apply ResultSelector, ResultPath (into the raw input) and OutputPath to a result."""
    if state.result_selector is not None:
        result = state.result_selector.evaluate(result, context)
    return filter_output(state, place(raw, state.result_path, result), context)


def filter_output(state: model.State, data: JSON, context: Mapping[str, JSON]) -> JSON:
    """Apply OutputPath: the part of the data passed on to the next state."""
    if state.output_null:
        return {}
    if state.output_path is None:
        return data
    return state.output_path.evaluate(data, context)


def place(data: JSON, path: model.ResultPath, value: JSON) -> JSON:
    """Put ``value`` at a ResultPath of ``data`` without changing ``data`` itself."""
    if path is None:
        return data
    if not path:
        return value
    if not isinstance(data, dict):
        raise DataError(f"ResultPath {'.'.join(path)!r} needs an object input, got {kind(data)}")
    out = dict(data)
    node = out
    for i, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            where = ".".join(path[: i + 1])
            raise DataError(f"ResultPath {'.'.join(path)!r}: {where!r} is {kind(child)}")
        else:
            child = dict(child)
        node[key] = child
        node = child
    node[path[-1]] = value
    return out
