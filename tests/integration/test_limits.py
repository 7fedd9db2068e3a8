"""One set of limits at the door, the same on SQLite and PostgreSQL.

Execution ids and signal names, inputs, signal payloads and callback outputs are checked by
the client before anything is recorded: what one database would take and the other refuse
(a long id, a NUL character) is refused on both, what JSON cannot hold (NaN, Infinity, an
integer past 64 bits, nesting thousands deep) is refused instead of stored as something
else, and a payload past the limit (256 KiB, or ``CAIRN_PAYLOAD_LIMIT_KIB``) is refused with
its size.  Each refusal is one line naming what and the limit, and leaves nothing behind.
An activity's result meets the same limits, and past them fails its task.
"""

from __future__ import annotations

from typing import Any

import pytest

from cairn import errors
from cairn.client import Client
from cairn.jsontypes import JSON
from cairn.runtime import invoke, payloads, tables
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import support
from tests.integration.support import Recorder

HOLD = """
Name: hold
Version: 1
StartAt: Hold
States:
  Hold:
    Type: Wait
    Signal: go
    ResultPath: got
    End: true
"""

CALLBACK = """
Name: approval
Version: 1
StartAt: Ask
States:
  Ask:
    Type: Task
    Activity: Ask
    Callback: true
    Catch:
      - ErrorEquals: [States.ALL]
        ResultPath: error
        Next: Refused
    End: true
  Refused:
    Type: Fail
    ErrorPath: error.Error
    CausePath: error.Cause
"""

LIMIT = payloads.PAYLOAD_LIMIT


def deep(levels: int) -> JSON:
    """A list nested ``levels`` deep: ``[[...]]``."""
    value: JSON = []
    for _ in range(levels - 1):
        value = [value]
    return value


def text_of(size: int) -> str:
    """A JSON string of exactly ``size`` bytes once encoded (the text plus two quotes)."""
    return "x" * (size - 2)


def refused(caught: pytest.ExceptionInfo[errors.CairnError]) -> str:
    """The refusal's message, checked to be one short line."""
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def nothing_started(client: Client) -> None:
    assert client.executions() == []
    assert support.count_rows(client, tables.events) == 0


@pytest.fixture
def hold(client: Client) -> str:
    """A running execution waiting for the signal ``go``."""
    support.deploy(client, HOLD)
    return str(client.start("hold", {}, execution_id="held")["id"])


# -- execution ids ---------------------------------------------------------------------------


def test_an_id_of_the_longest_length_is_stored_on_both_databases(client: Client) -> None:
    support.deploy(client, HOLD)
    longest = "a" * payloads.ID_LENGTH
    assert client.start("hold", {}, execution_id=longest)["id"] == longest
    assert client.describe(longest)["status"] == "RUNNING"
    support.assert_replays(client)


@pytest.mark.parametrize("length", [payloads.ID_LENGTH + 1, 100_000])
def test_a_longer_id_is_refused_on_both_databases(client: Client, length: int) -> None:
    support.deploy(client, HOLD)
    with pytest.raises(errors.InvalidInput) as caught:
        client.start("hold", {}, execution_id="a" * length)
    assert refused(caught).endswith(f"is {length} characters long; the limit is 100")
    assert caught.value.exit_code == 2
    nothing_started(client)


@pytest.mark.parametrize("bad", ["order 1", "a:b", "run#2", "nul\x00", "é", ""])
def test_an_id_with_other_characters_is_refused(client: Client, bad: str) -> None:
    support.deploy(client, HOLD)
    with pytest.raises(errors.InvalidInput) as caught:
        client.start("hold", {}, execution_id=bad)
    assert "execution id" in refused(caught)
    nothing_started(client)


def test_an_id_no_execution_can_have_is_not_found(client: Client, hold: str) -> None:
    for bad in ["held\x00", "h" * 100_000]:
        with pytest.raises(errors.NotFound, match=r"^no execution "):
            client.describe(bad)
        with pytest.raises(errors.NotFound):
            client.signal(bad, "go")
        with pytest.raises(errors.NotFound):
            client.cancel(bad)
        with pytest.raises(errors.UnknownTaskToken, match=r"^unknown task token "):
            client.complete(bad + ":1:2", {})
    assert client.describe(hold)["status"] == "RUNNING"


# -- workflow names, versions and listings --------------------------------------------------------


@pytest.mark.parametrize(
    ("workflow", "version", "message"),
    [
        ("ho\x00ld", None, r"^no workflow 'ho\\x00ld' is deployed$"),
        ("h" * 100_000, None, r"^no workflow 'h{37}\.\.\.' is deployed$"),
        ("hold", 2**31, "^no such version of workflow hold: versions run from 1 to 2147483647$"),
        ("hold", 10**30, "^no such version of workflow hold: versions run from 1 to 2147483647$"),
        ("hold", 0, "^no such version of workflow hold: versions run from 1 to 2147483647$"),
    ],
)
def test_a_workflow_no_definition_can_be_is_not_found(
    client: Client, hold: str, workflow: str, version: int | None, message: str
) -> None:
    with pytest.raises(errors.NotFound, match=message):
        client.start(workflow, {}, version=version, execution_id="other")
    with pytest.raises(errors.NotFound, match=message):
        client.definition(workflow, version)
    assert [view["id"] for view in client.executions()] == [hold]


def test_listings_filtered_by_what_no_row_can_hold_are_empty(client: Client, hold: str) -> None:
    assert client.executions(workflow="hold\x00") == []
    assert client.executions(status="RUNNING\x00") == []
    assert client.definitions("hold\x00") == []
    assert [view["id"] for view in client.executions(limit=10**30)] == [hold]
    assert client.executions(limit=0) == []
    with pytest.raises(errors.InvalidInput, match=r"^a limit is a whole number from 0, not -1$"):
        client.executions(limit=-1)


# -- signal names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("go now", "may hold only letters, digits"),
        ("go\x00", "may hold only letters, digits"),
        ("g" * 201, "is 201 characters long; the limit is 200"),
        ("", "a signal name is a non-empty string"),
    ],
)
def test_a_signal_name_a_wait_cannot_take_is_refused(
    client: Client, hold: str, bad: str, message: str
) -> None:
    before = support.types_of(client, hold)
    with pytest.raises(errors.InvalidInput) as caught:
        client.signal(hold, bad)
    assert message in refused(caught)
    assert support.types_of(client, hold) == before


# -- payloads: size --------------------------------------------------------------------------


def test_an_input_at_the_limit_starts_and_one_byte_more_is_refused(client: Client) -> None:
    support.deploy(client, HOLD)
    at_limit: dict[str, JSON] = {"text": text_of(LIMIT - len('{"text":}'))}
    client.start("hold", at_limit, execution_id="fits")
    assert client.describe("fits")["input"] == at_limit
    with pytest.raises(errors.InvalidInput) as caught:
        client.start("hold", {"text": f"{at_limit['text']}x"}, execution_id="over")
    assert refused(caught) == (
        f"the input is {LIMIT + 1} bytes of JSON, over the limit of 256 KiB "
        "(CAIRN_PAYLOAD_LIMIT_KIB)"
    )
    assert [view["id"] for view in client.executions()] == ["fits"]


def test_a_signal_payload_past_the_limit_is_refused(client: Client, hold: str) -> None:
    before = support.types_of(client, hold)
    for size in (LIMIT + 1, 10 * 1024 * 1024):
        with pytest.raises(errors.InvalidInput) as caught:
            client.signal(hold, "go", text_of(size))
        assert refused(caught) == (
            f"the signal payload is {size} bytes of JSON, over the limit of 256 KiB "
            "(CAIRN_PAYLOAD_LIMIT_KIB)"
        )
    assert support.types_of(client, hold) == before
    client.signal(hold, "go", text_of(LIMIT))
    view = support.wait_closed(client, hold)
    assert view["output"] == {"got": {"signal": "go", "payload": text_of(LIMIT)}}
    support.assert_replays(client)


@pytest.fixture
def tokens(recorder: Recorder) -> list[str]:
    handed: list[str] = []

    def ask(params: Any, ctx: invoke.Context) -> None:
        handed.append(ctx.task_token)

    recorder.add("Ask", ask)
    return handed


def asked(client: Client, dispatcher: Dispatcher, recorder: Recorder, tokens: list[str]) -> str:
    support.deploy(client, CALLBACK)
    client.start("approval", {}, execution_id="ask-1")
    support.work_one(dispatcher, recorder.registry)
    return tokens[-1]


def test_a_callback_output_past_the_limit_is_refused_and_the_task_still_waits(
    client: Client, dispatcher: Dispatcher, recorder: Recorder, tokens: list[str]
) -> None:
    token = asked(client, dispatcher, recorder, tokens)
    before = support.types_of(client, "ask-1")
    for size in (LIMIT + 1, 10 * 1024 * 1024):
        with pytest.raises(errors.InvalidInput) as caught:
            client.complete(token, text_of(size))
        assert refused(caught) == (
            f"the callback output is {size} bytes of JSON, over the limit of 256 KiB "
            "(CAIRN_PAYLOAD_LIMIT_KIB)"
        )
    assert support.types_of(client, "ask-1") == before
    assert client.describe("ask-1")["status"] == "RUNNING"
    client.complete(token, text_of(LIMIT))
    view = support.wait_closed(client, "ask-1")
    assert (view["status"], view["output"]) == ("SUCCEEDED", text_of(LIMIT))
    support.assert_replays(client)


def test_a_callback_failure_with_a_bad_error_or_cause_is_refused(
    client: Client, dispatcher: Dispatcher, recorder: Recorder, tokens: list[str]
) -> None:
    token = asked(client, dispatcher, recorder, tokens)
    before = support.types_of(client, "ask-1")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"error": "Bad\x00", "cause": ""}, "error name 'Bad\\x00' holds a NUL character"),
        ({"error": "E" * 201, "cause": ""}, "is 201 characters long; the limit is 200"),
        ({"error": "Bad", "cause": "why\x00"}, "the cause holds a NUL character"),
        ({"error": "Bad", "cause": "x" * (LIMIT + 1)}, f"the cause is {LIMIT + 1} bytes"),
    ]
    for options, message in bad:
        with pytest.raises(errors.InvalidInput) as caught:
            client.complete(token, **options)
        assert message in refused(caught)
    assert support.types_of(client, "ask-1") == before
    client.complete(token, error="Rejected", cause="no")
    view = support.wait_closed(client, "ask-1")
    assert (view["status"], view["error"], view["cause"]) == ("FAILED", "Rejected", "no")


def test_the_limit_is_one_setting(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    support.deploy(client, HOLD)
    monkeypatch.setenv("CAIRN_PAYLOAD_LIMIT_KIB", "1")
    client.start("hold", {"text": text_of(1024 - len('{"text":}'))}, execution_id="small")
    with pytest.raises(errors.InvalidInput, match="over the limit of 1 KiB") as caught:
        client.signal("small", "go", text_of(1025))
    assert "1025 bytes" in refused(caught)
    monkeypatch.setenv("CAIRN_PAYLOAD_LIMIT_KIB", "1024")
    client.signal("small", "go", text_of(LIMIT * 2))
    assert support.wait_closed(client, "small")["status"] == "SUCCEEDED"
    for bad in ("0", "-1", "1.5", "lots", str(payloads.LARGEST_LIMIT_KIB + 1)):
        monkeypatch.setenv("CAIRN_PAYLOAD_LIMIT_KIB", bad)
        with pytest.raises(errors.CairnError) as wrong:
            client.start("hold", {}, execution_id="never")
        assert refused(wrong) == (
            f"CAIRN_PAYLOAD_LIMIT_KIB must be a whole number of KiB from 1 to 16384, not {bad!r}"
        )
    assert [view["id"] for view in client.executions()] == ["small"]


# -- payloads: what JSON and both databases hold -----------------------------------------------

UNFIT: list[tuple[Any, str]] = [
    ({"ratio": float("nan")}, "holds NaN at ratio, which JSON cannot hold"),
    ({"n": [1, float("inf")]}, "holds Infinity at n[1], which JSON cannot hold"),
    ({"n": -float("inf")}, "holds -Infinity at n, which JSON cannot hold"),
    ({"note": "a\x00b"}, "holds a NUL character (\\u0000) at note, which cannot be stored"),
    ({"a\x00b": 1}, "holds a key with a NUL character (\\u0000)"),
    ({"big": 2**63}, "holds an integer past 64 bits at big (from -2**63 to 2**63-1)"),
    ({"big": 10**5000}, "holds an integer past 64 bits at big (from -2**63 to 2**63-1)"),
    ({"deep": deep(10_000)}, "is nested deeper than 64 levels of lists and objects"),
    ({"at": {1, 2}}, "holds a set at at, which is not JSON"),
]


@pytest.mark.parametrize(("bad", "problem"), UNFIT)
def test_an_unfit_input_is_refused_not_changed(client: Client, bad: Any, problem: str) -> None:
    support.deploy(client, HOLD)
    with pytest.raises(errors.InvalidInput) as caught:
        client.start("hold", bad, execution_id="unfit")
    assert refused(caught) == f"the input {problem}"
    nothing_started(client)


@pytest.mark.parametrize(("bad", "problem"), UNFIT)
def test_an_unfit_signal_payload_is_refused_not_changed(
    client: Client, hold: str, bad: Any, problem: str
) -> None:
    before = support.types_of(client, hold)
    with pytest.raises(errors.InvalidInput) as caught:
        client.signal(hold, "go", bad)
    assert refused(caught) == f"the signal payload {problem}"
    assert support.types_of(client, hold) == before


@pytest.mark.parametrize(("bad", "problem"), UNFIT[:5])
def test_an_unfit_callback_output_is_refused_not_changed(
    client: Client,
    dispatcher: Dispatcher,
    recorder: Recorder,
    tokens: list[str],
    bad: Any,
    problem: str,
) -> None:
    token = asked(client, dispatcher, recorder, tokens)
    with pytest.raises(errors.InvalidInput) as caught:
        client.complete(token, bad)
    assert refused(caught) == f"the callback output {problem}"
    assert client.describe("ask-1")["status"] == "RUNNING"


def test_a_nul_in_a_cancel_reason_is_refused(client: Client, hold: str) -> None:
    with pytest.raises(errors.InvalidInput, match=r"the reason holds a NUL character"):
        client.cancel(hold, "because\x00")
    assert client.describe(hold)["status"] == "RUNNING"


def test_values_at_the_edges_are_stored_and_read_back_the_same(client: Client) -> None:
    support.deploy(client, HOLD)
    edge: dict[str, JSON] = {
        "largest": 2**63 - 1,
        "smallest": -(2**63),
        "deep": deep(payloads.DEPTH - 1),
        "text": "tab\t, newline\n, é, 🙂",
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
    }
    client.start("hold", edge, execution_id="edge")
    client.signal("edge", "go", edge)
    view = support.wait_closed(client, "edge")
    assert view["input"] == edge
    got: JSON = {"signal": "go", "payload": edge}
    assert view["output"] == {**edge, "got": got}
    support.assert_replays(client)


# -- activity results: the same limits ---------------------------------------------------------

ONE_TASK = """
Name: one
Version: 1
StartAt: Call
States:
  Call:
    Type: Task
    Activity: Call
    End: true
"""


def result_of(
    client: Client, dispatcher: Dispatcher, recorder: Recorder, result: Any
) -> dict[str, Any]:
    """The view of an execution whose one task returned ``result``."""
    recorder.add("Call", lambda params, ctx: result)
    support.deploy(client, ONE_TASK)
    execution_id = str(client.start("one", {})["id"])
    support.work_one(dispatcher, recorder.registry)
    return client.describe(execution_id)


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ({"deep": deep(payloads.DEPTH)}, "is nested deeper than 64 levels of lists and objects"),
        ({"big": 2**63}, "holds an integer past 64 bits at big (from -2**63 to 2**63-1)"),
    ],
)
def test_a_result_past_the_limits_fails_the_task_as_an_input_is_refused(
    client: Client, dispatcher: Dispatcher, recorder: Recorder, result: Any, problem: str
) -> None:
    view = result_of(client, dispatcher, recorder, result)
    assert (view["status"], view["error"]) == ("FAILED", "States.Runtime")
    assert view["cause"] == f"activity Call returned a result that {problem}"
    support.assert_replays(client)


def test_a_result_past_the_set_limit_fails_with_states_data_limit_exceeded(
    client: Client, dispatcher: Dispatcher, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_PAYLOAD_LIMIT_KIB", "1")
    view = result_of(client, dispatcher, recorder, text_of(1025))
    assert (view["status"], view["error"]) == ("FAILED", "States.DataLimitExceeded")
    assert view["cause"] == "activity Call returned 1025 bytes; the limit is 1 KiB"


def test_a_worker_refuses_to_start_with_a_bad_limit_setting(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_PAYLOAD_LIMIT_KIB", "256k")
    with pytest.raises(errors.CairnError) as caught:
        Dispatcher(client.writer)
    assert refused(caught) == (
        "CAIRN_PAYLOAD_LIMIT_KIB must be a whole number of KiB from 1 to 16384, not '256k'"
    )
