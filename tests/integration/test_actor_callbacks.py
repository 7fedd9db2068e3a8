"""Callback tasks: the activity hands its token to the outside world, which completes the task
later, at most once; TimeoutSeconds and HeartbeatSeconds run as durable timers meanwhile."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from click.testing import CliRunner

from cairn import errors
from cairn.cli.main import main
from cairn.client import Client
from cairn.core import events, step
from cairn.runtime import invoke, tables
from cairn.runtime.dispatcher import Dispatcher
from cairn.runtime.writer import Writer
from tests.integration import support
from tests.integration.support import FakeClock, Recorder

APPROVAL = """
Name: approval
Version: 1
StartAt: Ask
Queries:
  answer: answer
States:
  Ask:
    Type: Task
    Activity: Ask
    Callback: true
    Parameters: {question.$: question}
    TimeoutSeconds: 600
    HeartbeatSeconds: 60
    ResultPath: answer
    Catch:
      - ErrorEquals: [Rejected]
        ResultPath: error
        Next: Refused
    Next: Approved
  Approved:
    Type: Succeed
  Refused:
    Type: Fail
    ErrorPath: error.Error
    CausePath: error.Cause
"""


@pytest.fixture
def tokens(recorder: Recorder) -> list[str]:
    """The tokens the Ask activity was handed, as it would mail them to an approver."""
    handed: list[str] = []

    def ask(params: Any, ctx: invoke.Context) -> dict[str, Any]:
        handed.append(ctx.task_token)
        return {"sent": params["question"]}

    recorder.add("Ask", ask)
    return handed


@pytest.fixture
def approval(client: Client) -> Client:
    support.deploy(client, APPROVAL)
    return client


def asked(
    dispatcher: Dispatcher, client: Client, recorder: Recorder, tokens: list[str], execution_id: str
) -> str:
    """Start an approval and run its activity; returns the token it handed out."""
    client.start("approval", {"question": "ship it?"}, execution_id=execution_id)
    support.work_one(dispatcher, recorder.registry)
    return tokens[-1]


def callback_timers(client: Client, execution_id: str) -> dict[str, str | None]:
    return {t["purpose"]: t["due"] for t in client.inspect(execution_id)["timers"]}


def test_a_token_completes_its_task_once(
    dispatcher: Dispatcher,
    approval: Client,
    recorder: Recorder,
    tokens: list[str],
    clock: FakeClock,
) -> None:
    token = asked(dispatcher, approval, recorder, tokens, "cb-ok")
    view = approval.inspect("cb-ok")
    assert view["status"] == "RUNNING"
    assert [(t["state"], t["worker"]) for t in view["tasks"]] == [("Ask", None)]
    assert callback_timers(approval, "cb-ok") == {
        "callback_timeout": step.iso(clock.now + 600),
        "callback_heartbeat": step.iso(clock.now + 60),
    }
    # Waiting for the token is not work for a worker.
    assert dispatcher.claim(support.offer(recorder.registry)) == []

    approval.complete(token, {"approved": True, "by": "ann"})
    view = approval.describe("cb-ok")
    assert view["status"] == "SUCCEEDED"
    assert view["output"]["answer"] == {"approved": True, "by": "ann"}
    assert approval.query("cb-ok", "answer") == {"approved": True, "by": "ann"}
    assert support.count_rows(approval, tables.timers) == 0
    assert recorder.count("Ask") == 1

    seq = len(approval.history("cb-ok"))
    with pytest.raises(errors.UnknownTaskToken, match="is not waiting"):
        approval.complete(token, {"approved": False})
    with pytest.raises(errors.UnknownTaskToken, match="is not waiting"):
        approval.complete(token, error="Rejected")
    with pytest.raises(errors.UnknownTaskToken):
        approval.heartbeat(token)
    for bogus in ("nonsense", "cb-ok:1:999", "nobody:1:3"):
        with pytest.raises(errors.UnknownTaskToken, match=r"unknown task token|is not waiting"):
            approval.complete(bogus, {})
    assert len(approval.history("cb-ok")) == seq
    support.assert_replays(approval)


def race(db: Any, clock: FakeClock, token: str, answers: tuple[str, ...]) -> dict[str, str]:
    """Complete ``token`` with each answer at once, each from a client of its own (as from
    another process); how each completion went."""
    barrier = threading.Barrier(len(answers))
    outcomes: dict[str, str] = {}

    def complete(answer: str) -> None:
        racer = Client(Writer(db, clock=clock))
        barrier.wait()
        try:
            racer.complete(token, answer)
            outcomes[answer] = "completed"
        except errors.UnknownTaskToken:
            outcomes[answer] = "refused"

    racers = [threading.Thread(target=complete, args=(a,)) for a in answers]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(support.DEADLINE)
    return outcomes


def test_of_two_racing_completions_of_a_token_one_wins_and_one_is_refused(
    dispatcher: Dispatcher,
    approval: Client,
    recorder: Recorder,
    tokens: list[str],
    clock: FakeClock,
) -> None:
    for n in range(8):
        token = asked(dispatcher, approval, recorder, tokens, f"cb-race-{n}")
        outcomes = race(approval.writer.db, clock, token, ("yes", "no"))
        assert sorted(outcomes.values()) == ["completed", "refused"], outcomes
        (winner,) = [a for a, o in outcomes.items() if o == "completed"]
        assert approval.describe(f"cb-race-{n}")["output"]["answer"] == winner
        assert len(support.history(approval, f"cb-race-{n}", events.TASK_SUCCEEDED)) == 1
    support.assert_replays(approval)


def test_a_token_completed_with_an_error_is_caught(
    dispatcher: Dispatcher, approval: Client, recorder: Recorder, tokens: list[str]
) -> None:
    token = asked(dispatcher, approval, recorder, tokens, "cb-no")
    approval.complete(token, error="Rejected", cause="too risky")
    view = approval.describe("cb-no")
    assert (view["status"], view["error"], view["cause"]) == ("FAILED", "Rejected", "too risky")
    (failed,) = support.history(approval, "cb-no", events.TASK_FAILED)
    assert failed.details["task_id"] == token
    support.assert_replays(approval)


def test_the_outside_world_may_answer_before_the_activity_returns(
    dispatcher: Dispatcher, approval: Client, recorder: Recorder, tokens: list[str]
) -> None:
    approval.start("approval", {"question": "quick?"}, execution_id="cb-fast")
    (claim,) = dispatcher.claim(support.offer(recorder.registry))
    outcome = support.run_claim(claim, recorder.registry)
    approval.complete(tokens[-1], "yes")
    # The activity's own return comes after the task closed: it is not recorded.
    assert dispatcher.finish(claim, "hand", outcome) is None
    view = approval.describe("cb-fast")
    assert (view["status"], view["output"]["answer"]) == ("SUCCEEDED", "yes")
    assert events.CALLBACK_AWAITED not in support.types_of(approval, "cb-fast")
    support.assert_replays(approval)


def test_heartbeats_hold_off_the_heartbeat_timeout_until_they_stop(
    dispatcher: Dispatcher,
    approval: Client,
    recorder: Recorder,
    tokens: list[str],
    clock: FakeClock,
) -> None:
    token = asked(dispatcher, approval, recorder, tokens, "cb-beat")
    for _ in range(3):
        clock.advance(50)
        approval.heartbeat(token)
        assert callback_timers(approval, "cb-beat")["callback_heartbeat"] == step.iso(
            clock.now + 60
        )
        assert dispatcher.fire_due_timers() == 0
    assert len(support.history(approval, "cb-beat", events.CALLBACK_HEARTBEAT)) == 3

    clock.advance(59)
    assert dispatcher.fire_due_timers() == 0
    clock.advance(1)
    assert dispatcher.fire_due_timers() == 1
    view = approval.describe("cb-beat")
    assert (view["status"], view["error"], view["cause"]) == (
        "FAILED",
        "States.HeartbeatTimeout",
        "no heartbeat for the token in 60s",
    )
    (timed_out,) = support.history(approval, "cb-beat", events.TASK_TIMED_OUT)
    assert timed_out.details["task_id"] == token
    assert support.count_rows(approval, tables.timers) == 0
    with pytest.raises(errors.UnknownTaskToken):
        approval.complete(token, "too late")
    support.assert_replays(approval)


def test_the_task_timeout_ends_the_wait_for_the_token_despite_heartbeats(
    dispatcher: Dispatcher,
    approval: Client,
    recorder: Recorder,
    tokens: list[str],
    clock: FakeClock,
) -> None:
    token = asked(dispatcher, approval, recorder, tokens, "cb-slow")
    for _ in range(11):
        clock.advance(50)
        approval.heartbeat(token)
    assert dispatcher.fire_due_timers() == 0
    clock.advance(50)  # 600 s since the task began waiting
    assert dispatcher.fire_due_timers() == 1
    view = approval.describe("cb-slow")
    assert (view["status"], view["error"]) == ("FAILED", "States.Timeout")
    assert view["cause"] == "the token was not completed within 600s"
    with pytest.raises(errors.UnknownTaskToken):
        approval.heartbeat(token)
    support.assert_replays(approval)


def test_complete_and_heartbeat_from_the_command_line(
    dispatcher: Dispatcher, approval: Client, recorder: Recorder, tokens: list[str], db_url: str
) -> None:
    token = asked(dispatcher, approval, recorder, tokens, "cb-cli")
    runner = CliRunner()

    def cairn(*args: str) -> Any:
        return runner.invoke(main, ["--db", db_url, *args])

    beat = cairn("heartbeat", token)
    assert (beat.exit_code, beat.stdout.strip()) == (0, "recorded")
    usage = cairn("complete", token)
    assert usage.exit_code == 2
    done = cairn("complete", token, "--output", json.dumps({"approved": True}))
    assert (done.exit_code, done.stdout.strip()) == (0, "completed"), done.output
    view = approval.describe("cb-cli")
    assert (view["status"], view["output"]["answer"]) == ("SUCCEEDED", {"approved": True})
    twice = cairn("complete", token, "--error", "Rejected")
    assert twice.exit_code == 1
    assert "is not waiting" in twice.stderr and "Traceback" not in twice.output
    unknown = cairn("heartbeat", "nonsense")
    assert unknown.exit_code == 1
    assert "unknown task token 'nonsense'" in unknown.stderr
    support.assert_replays(approval)
