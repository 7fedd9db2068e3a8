"""How output moves on: to the next state, out of a scope, into a Parallel or Map's result.

A scope is the top level of the execution or one branch of a Parallel (one item of a Map).
A state that ends its scope hands its output up: the execution succeeds, or the branch's
result is recorded and the Parallel or Map completes once every branch has its result (a
Map starting further items as earlier ones end, as MaxConcurrency allows).
"""

from __future__ import annotations

from cairn.core import dataflow, events, model, names
from cairn.core import state as st
from cairn.core.expressions import DataError
from cairn.core.failures import Failures
from cairn.jsontypes import JSON


class Scopes(Failures):
    """Leaving states, ending scopes, and the branches of Parallel and Map states."""

    def leave(self, scope: str, spec: model.State, output: JSON, target: str | None) -> None:
        self.emit(events.StateExited(output=output), scope, spec.name)
        if target is None:
            self.end_scope(scope, output)
        else:
            self.goto(scope, target, output)

    def complete_state(self, scope: str, result: JSON) -> None:
        """A Task, Wait, Parallel or Map has its result: apply the data flow and move on."""
        frame, spec = self.spec(scope)
        try:
            output = dataflow.state_output(spec, frame.input, result, self.context(frame))
        except DataError as exc:
            self.fail_state(scope, names.RUNTIME, str(exc))
            return
        self.leave(scope, spec, output, spec.next)

    def end_scope(self, scope: str, output: JSON) -> None:
        """A scope reached its end: the execution succeeds, or a branch hands on its output."""
        if not scope:
            if self.state.cancelling is not None:
                reason = self.state.cancelling
                self.emit(
                    events.ExecutionCancelled(error=names.CANCELLED, reason=reason, output=output)
                )
            else:
                self.emit(events.ExecutionSucceeded(output=output))
            return
        parent_scope, index = st.parent_of(scope)
        parent, spec = self.spec(parent_scope)
        self.emit(events.BranchSucceeded(index=index, output=output), parent_scope, parent.state)
        if isinstance(spec, model.Map):
            self.fill_map(parent_scope, spec, self.map_items(parent_scope, parent, spec))
        self.complete_if_done(parent_scope)

    def start_branches(self, scope: str, frame: st.Frame, spec: model.Parallel | model.Map) -> None:
        """Start the branches (or items) that have no result yet; redrive relies on that."""
        if isinstance(spec, model.Parallel):
            data = dataflow.effective_input(spec, frame.input, self.context(frame))
            for index, branch in enumerate(spec.branches):
                if str(index) not in frame.results:
                    self.emit(events.BranchStarted(index=index), scope, spec.name)
                    self.goto(st.child_scope(scope, spec.name, index), branch.start_at, data)
            self.complete_if_done(scope)
            return
        items = self.map_items(scope, frame, spec)
        # Every item's input is made now, so a bad item fails the Map as it is entered: an
        # item started later (MaxConcurrency) is made again from the same values, and cannot
        # fail once a branch has ended and nothing is there to take the error.
        for index in range(len(items)):
            self.item_input(frame, spec, index, items)
        self.fill_map(scope, spec, items)
        self.complete_if_done(scope)

    def fill_map(self, scope: str, spec: model.Map, items: list[JSON]) -> None:
        """Start items, lowest index first, until MaxConcurrency of them are running."""
        frame = self.state.frames[scope]
        limit = spec.max_concurrency or len(items)
        running = sum(1 for i in frame.started if str(i) not in frame.results)
        begun = set(frame.started)
        for index in range(len(items)):
            if running >= limit:
                return
            if index not in begun:
                self.start_item(scope, spec, index, self.item_input(frame, spec, index, items))
                running += 1

    def complete_if_done(self, scope: str) -> None:
        """A Parallel or Map whose every branch has its result completes with the list."""
        frame, spec = self.spec(scope)
        if isinstance(spec, model.Map):
            total = len(self.map_items(scope, frame, spec))
        else:
            assert isinstance(spec, model.Parallel)
            total = len(spec.branches)
        if len(frame.results) == total:
            self.complete_state(scope, [frame.results[str(i)] for i in range(total)])

    def map_items(self, scope: str, frame: st.Frame, spec: model.Map) -> list[JSON]:
        ctx = self.context(frame)
        data = dataflow.select_input(spec, frame.input, ctx)
        items = spec.items_path.evaluate(data, ctx) if spec.items_path is not None else data
        if not isinstance(items, list):
            source = spec.items_path.source if spec.items_path else "@"
            raise DataError(f"ItemsPath {source!r} of {spec.name!r} is not an array")
        return items

    def item_input(self, frame: st.Frame, spec: model.Map, index: int, items: list[JSON]) -> JSON:
        """The input of item ``index``: the item itself, or what ItemSelector makes of it."""
        value = items[index]
        if spec.item_selector is None:
            return value
        ctx = self.context(frame, item=(index, value))
        data = dataflow.select_input(spec, frame.input, ctx)
        return spec.item_selector.evaluate(data, ctx)

    def start_item(self, scope: str, spec: model.Map, index: int, value: JSON) -> None:
        self.emit(events.BranchStarted(index=index), scope, spec.name)
        self.goto(st.child_scope(scope, spec.name, index), spec.processor.start_at, value)
