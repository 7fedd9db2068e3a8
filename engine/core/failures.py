"""Failure, retry and catch: what becomes of a state that failed.

A failed state is retried by the first Retry rule that matches its error (after a back-off
timer), else caught by the first matching Catch (the run goes on at its ``Next``), else its
scope fails: a branch failure fails the Parallel or Map around it, which goes through the
same rules, and at the top the execution fails.
"""

from __future__ import annotations

import hashlib

from cairn.core import dataflow, events, model, names
from cairn.core import state as st
from cairn.core.expressions import DataError
from cairn.core.step import Step

MAX_RETRY_DELAY = 366 * 86400.0
"""The longest retry back-off: past it a timer's due time would stop being a date."""

COMPENSATION_RETRY = model.Retrier(
    errors=(names.ALL,), interval=1.0, backoff_rate=2.0, max_attempts=10, max_delay=300.0
)
"""Undo steps retry with back-off by default: an undo that gives up early leaves a mess."""


def backoff(retrier: model.Retrier, retry: int, seed: str) -> float:
    """Delay before retry number ``retry`` (from 0): interval * rate^retry, capped, jittered."""
    try:
        delay = retrier.interval * retrier.backoff_rate**retry
    except OverflowError:
        # "MaxAttempts: 100000, MaxDelaySeconds: 60" (retry for ever, a minute apart) passes
        # 2.0**1024 on the way; the cap is what counts.
        delay = MAX_RETRY_DELAY
    cap = MAX_RETRY_DELAY if retrier.max_delay is None else float(retrier.max_delay)
    delay = min(delay, cap, MAX_RETRY_DELAY)
    if retrier.full_jitter:
        digest = hashlib.sha256(f"{seed}:{retry}".encode()).digest()
        delay *= int.from_bytes(digest[:8], "big") / 2**64
    return delay


def matches(equals: tuple[str, ...], error: str) -> bool:
    """Whether an ErrorEquals list covers ``error``; States.Runtime is never covered."""
    if error == names.RUNTIME:
        return False
    if error in equals or names.ALL in equals:
        return True
    # A missed heartbeat is a kind of timeout: Step Functions reported it as States.Timeout
    # before States.HeartbeatTimeout existed, and a `States.Timeout` rule still covers it.
    if error == names.HEARTBEAT_TIMEOUT and names.TIMEOUT in equals:
        return True
    return names.TASK_FAILED in equals and error not in (names.TIMEOUT, names.HEARTBEAT_TIMEOUT)


class Failures(Step):
    """Retrying, catching and passing on the failure of a state."""

    def fail_state(self, scope: str, error: str, cause: str, *, retryable: bool = True) -> None:
        """A state failed: retry it, catch the error, or fail its scope."""
        frame, spec = self.spec(scope)
        if retryable and self.try_retry(scope, frame, spec, error, cause):
            return
        for catcher in spec.catch:
            if matches(catcher.errors, error):
                try:
                    output = dataflow.place(
                        frame.input, catcher.result_path, {"Error": error, "Cause": cause}
                    )
                except DataError as exc:
                    error, cause = names.RUNTIME, str(exc)
                    break
                self.emit(events.StateExited(output=output, error=error), scope, spec.name)
                self.goto(scope, catcher.next, output)
                return
        self.fail_scope(scope, error, cause)

    def try_retry(
        self, scope: str, frame: st.Frame, spec: model.State, error: str, cause: str
    ) -> bool:
        rules: tuple[model.Retrier, ...] = spec.retry
        prefix = ""
        if isinstance(spec, model.Compensate):
            step = self.pending_compensations(scope)[0]
            compensation = self.compensation_of(step)
            rules = compensation.retry or (COMPENSATION_RETRY,)
            prefix = f"{step.seq}."
        for index, rule in enumerate(rules):
            if not matches(rule.errors, error):
                continue
            retries = frame.retries.get(f"{prefix}{index}", 0)
            if retries >= rule.max_attempts:
                return False
            delay = backoff(rule, retries, self.task_key(scope, frame))
            self.emit(
                events.RetryScheduled(
                    retrier=f"{prefix}{index}",
                    retry=retries + 1,
                    delay=delay,
                    error=error,
                    cause=cause,
                ),
                scope,
                spec.name,
            )
            self.start_timer(scope, spec.name, self.now + delay, "retry")
            return True
        return False

    def fail_scope(self, scope: str, error: str, cause: str) -> None:
        """Nothing in this scope handles the error: it fails the enclosing state or the run."""
        if not scope:
            self.emit(events.ExecutionFailed(error=error, cause=cause))
            return
        parent_scope, index = st.parent_of(scope)
        parent = self.state.frames[parent_scope]
        self.emit(
            events.BranchFailed(index=index, error=error, cause=cause), parent_scope, parent.state
        )
        self.emit(events.BranchesCancelled(), parent_scope, parent.state)
        self.cancelled.append((st.branch_prefix(parent_scope, parent.state), self.state.seq))
        self.fail_state(parent_scope, error, cause, retryable=error != names.RUNTIME)
