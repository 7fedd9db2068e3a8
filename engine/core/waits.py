"""Wait states: a durable timer, a signal, or whichever of the two comes first.

A Wait with ``Signal`` consumes the oldest signal of that name, one that came before the
Wait was entered included; its result is ``{signal, payload}``, or null when its timer fired.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from cairn.core import dataflow, events, limits, model
from cairn.core import state as st
from cairn.core.expressions import DataError
from cairn.core.scopes import Scopes
from cairn.jsontypes import JSON


class Waits(Scopes):
    """Entering a Wait, and the signals that end one."""

    def begin_wait(self, scope: str, frame: st.Frame, spec: model.Wait) -> None:
        if spec.signal is not None:
            pending = next((s for s in self.state.signals if s.name == spec.signal), None)
            if pending is not None:
                self.consume_signal(scope, pending)
                return
        ctx = self.context(frame)
        data = dataflow.select_input(spec, frame.input, ctx)
        due = _wait_until(spec, data, ctx, self.now)
        if due is not None:
            self.start_timer(scope, spec.name, due, "wait")

    def deliver_signals(self) -> None:
        for scope, frame in list(self.state.frames.items()):
            spec = self.definition.states[frame.state]
            if isinstance(spec, model.Wait) and spec.signal is not None:
                pending = next((s for s in self.state.signals if s.name == spec.signal), None)
                if pending is not None:
                    self.consume_signal(scope, pending)

    def consume_signal(self, scope: str, signal: st.PendingSignal) -> None:
        frame, spec = self.spec(scope)
        self.emit(events.SignalConsumed(signal=signal.seq, name=signal.name), scope, spec.name)
        if frame.timer is not None:
            self.emit(events.TimerCancelled(timer_id=frame.timer), scope, spec.name)
        self.complete_state(scope, {"signal": signal.name, "payload": signal.payload})


def _wait_until(spec: model.Wait, data: JSON, ctx: Mapping[str, JSON], now: float) -> float | None:
    if spec.seconds is not None:
        # Validation bounds Seconds; a definition deployed before it did may still hold more.
        return now + _seconds(spec.seconds, f"Seconds of {spec.name!r}")
    if spec.timestamp is not None:
        return _parse_time(spec.timestamp, spec.name)
    if spec.seconds_path is not None:
        seconds = spec.seconds_path.evaluate(data, ctx)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise DataError(
                f"SecondsPath {spec.seconds_path.source!r} of {spec.name!r} gave {seconds!r}, "
                "not a number of seconds"
            )
        return now + _seconds(seconds, f"SecondsPath {spec.seconds_path.source!r} of {spec.name!r}")
    if spec.timestamp_path is not None:
        value = spec.timestamp_path.evaluate(data, ctx)
        if not isinstance(value, str):
            raise DataError(
                f"TimestampPath {spec.timestamp_path.source!r} of {spec.name!r} gave {value!r}, "
                "not a timestamp"
            )
        return _parse_time(value, spec.name)
    return None


def _seconds(seconds: float, what: str) -> float:
    """A wait's length, refused past the longest wait a definition may state."""
    if not seconds <= limits.MAX_SECONDS:
        raise DataError(
            f"{what} is {seconds:.6g} seconds, longer than the longest wait "
            f"({limits.MAX_SECONDS:,} seconds); wait in steps, or until a Timestamp"
        )
    return seconds


def _parse_time(text: str, name: str) -> float:
    try:
        # RFC 3339 allows a lower-case "t" and "z"; fromisoformat accepts neither "z" nor "Z"
        # before Python 3.11.
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataError(f"Wait {name!r}: {text!r} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
