"""Code workflows: every construct of cairn.codeflow.flow compiles to the definition a YAML author
would write, which validates and reads back from its YAML export with the same hash."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from cairn import Catch, Errors, Flow, Retry, Undo, Value, activity, fn, testing, workflow
from cairn.activities import ActivityError
from cairn.core import events
from cairn.definitions import loader


def compile_flow(function: Any, **options: Any) -> dict[str, Any]:
    """Compile a workflow function (no activity check); its YAML reads back the same."""
    flow = workflow(name="t", version=1, **options)(function)
    document = flow.compile(activities=None)
    assert loader.loads(flow.export(activities=None)).sha256 == document.sha256
    return document.body


def states(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["States"])


# --- tasks and data ----------------------------------------------------------------------


def test_steps_follow_each_other_and_the_last_one_ends() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.task("ChargeCard", card=order.card, amount=order.total)
        flow.task("Ship", address=order.address)

    body = compile_flow(flow_)
    assert body["StartAt"] == "ChargeCard"
    assert states(body) == {
        "ChargeCard": {
            "Type": "Task",
            "Activity": "ChargeCard",
            "Parameters": {"card.$": "card", "amount.$": "total"},
            "ResultPath": "charge_card",
            "Next": "Ship",
        },
        "Ship": {
            "Type": "Task",
            "Activity": "Ship",
            "Parameters": {"address.$": "address"},
            "ResultPath": "ship",
            "End": True,
        },
    }


def test_results_are_read_by_symbolic_paths_under_their_result_key() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        charge = flow.task("ChargeCard", result="charge")
        flow.task(
            "Mail",
            charge=charge.charge_id,
            first=order.items[0].sku,
            rest=order.items[1:],
            odd=order["odd-name"],
            every=order.items[::2],
        )

    mail = states(compile_flow(flow_))["Mail"]
    assert mail["Parameters"] == {
        "charge.$": "charge.charge_id",
        "first.$": "items[0].sku",
        "rest.$": "items[1:]",
        "odd.$": '"odd-name"',
        "every.$": "items[::2]",
    }


def test_parameters_mix_literals_nested_objects_lists_and_the_context() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.task(
            "Send",
            {"name": "clashes with the option"},
            currency="EUR",
            address={"street": order.street, "country": "NL"},
            lines=[{"sku": order.sku, "qty": 1}],
            pair=[order.a, 2, "x"],
            tags=("a", "b"),
            key=flow.context.Task.IdempotencyKey,
            whole=order,
        )

    assert states(compile_flow(flow_))["Send"]["Parameters"] == {
        "name": "clashes with the option",
        "currency": "EUR",
        "address": {"street.$": "street", "country": "NL"},
        "lines": [{"sku.$": "sku", "qty": 1}],
        "pair.$": "[a, `2`, 'x']",
        "tags": ["a", "b"],
        "key.$": "$$.Task.IdempotencyKey",
        "whole.$": "$$.Execution.Input",
    }


def test_a_value_as_the_payload_hands_the_activity_that_value_whole() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        customer = flow.task("LoadCustomer")
        flow.task("Audit", order)
        flow.task("Greet", customer.profile)

    body = states(compile_flow(flow_))
    assert body["Audit"]["InputPath"] == "$$.Execution.Input"
    assert body["Greet"]["InputPath"] == "load_customer.profile"
    assert "Parameters" not in body["Greet"]


def test_task_options_become_their_fields() -> None:
    class CardNetworkError(Exception):
        pass

    def undo_order(error: Value) -> None:
        flow_fail(error)

    def flow_fail(error: Value) -> None:
        pass

    def flow_(flow: Flow, order: Value) -> None:
        flow.task(
            "Charge",
            name="ChargeCard",
            result="charge",
            select=lambda raw: {"id": raw.charge_id, "ok": True},
            queue="payments",
            timeout=datetime.timedelta(seconds=30),
            heartbeat=10,
            callback=True,
            retry=[
                Retry(
                    CardNetworkError, interval=0.5, backoff_rate=2.0, max_attempts=5, jitter=True
                ),
                Retry(max_delay=datetime.timedelta(minutes=1), jitter=False),
            ],
            comment="Take the money.",
        )

    assert states(compile_flow(flow_))["ChargeCard"] == {
        "Type": "Task",
        "Comment": "Take the money.",
        "Activity": "Charge",
        "TaskQueue": "payments",
        "Parameters": {},
        "ResultSelector": {"id.$": "charge_id", "ok": True},
        "ResultPath": "charge",
        "TimeoutSeconds": 30,
        "HeartbeatSeconds": 10,
        "Callback": True,
        "Retry": [
            {
                "ErrorEquals": ["CardNetworkError"],
                "IntervalSeconds": 0.5,
                "BackoffRate": 2.0,
                "MaxAttempts": 5,
                "JitterStrategy": "FULL",
            },
            {"ErrorEquals": ["States.ALL"], "MaxDelaySeconds": 60, "JitterStrategy": "NONE"},
        ],
        "End": True,
    }


def test_result_none_discards_and_a_whole_result_is_written_again_by_a_later_step() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.task("Notify", result=None)
        status = flow.task("Check", result="status")
        flow.task("Check", name="CheckAgain", result=status)
        flow.task("Report", done=status.done)

    body = states(compile_flow(flow_))
    assert body["Notify"]["ResultPath"] is None
    assert body["CheckAgain"]["ResultPath"] == "status"
    assert body["Report"]["Parameters"] == {"done.$": "status.done"}


def test_default_names_and_keys_are_made_unique_in_order() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.task("Ping")
        flow.task("Ping")
        flow.task("Pong", result="ping_2")
        flow.task("Ping")

    body = states(compile_flow(flow_))
    assert list(body) == ["Ping", "Ping-2", "Pong", "Ping-3"]
    assert [s["ResultPath"] for s in body.values()] == ["ping", "ping_2", "ping_2", "ping_3"]


def test_a_registered_handler_stands_for_its_activity_name() -> None:
    @activity("Tests.Flow.Refund")
    def refund(params: dict[str, Any], ctx: Any) -> None:
        raise ActivityError("NotHere")

    def flow_(flow: Flow, order: Value) -> None:
        flow.task(refund, charge=order.charge)

    assert states(compile_flow(flow_))["Tests.Flow.Refund"]["Activity"] == "Tests.Flow.Refund"


def test_compute_is_a_pass_state_for_dicts_values_and_literals() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        lines = flow.task("Price")
        flow.compute({"total": fn.sum(lines[:].amount), "currency": "EUR"}, name="Total")
        flow.compute(order.customer, name="Customer")
        flow.compute({"status": "pending"}, name="Pending", result="status")

    body = states(compile_flow(flow_))
    assert body["Total"] == {
        "Type": "Pass",
        "Parameters": {"total.$": "sum(price[:].amount)", "currency": "EUR"},
        "ResultPath": "total",
        "Next": "Customer",
    }
    assert body["Customer"]["InputPath"] == "customer"
    assert body["Pending"]["Result"] == {"status": "pending"}


# --- conditions and expressions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda o: o.total > 100, "total > `100`"),
        (lambda o: 80 <= o.score, "score >= `80`"),  # noqa: SIM300
        (lambda o: o.kind == "it's", "kind == 'it\\'s'"),
        (lambda o: o.flag != None, "flag != `null`"),  # noqa: E711
        (lambda o: o.a & o.b | o.c, "a && b || c"),
        (lambda o: o.a & (o.b | o.c), "a && (b || c)"),
        (lambda o: ~(o.a == 1), "!(a == `1`)"),
        (lambda o: ~o.a & o.b, "!a && b"),
        (lambda o: o.window | 2592000, "window || `2592000`"),
        (lambda o: fn.length(o.items) > 2, "length(items) > `2`"),
        (lambda o: fn.contains(o.tags, "vip"), "contains(tags, 'vip')"),
        (lambda o: fn.sort_by(o.items, lambda i: i.price)[0].sku, "sort_by(items, &price)[0].sku"),
        (lambda o: fn.filter(o.items, lambda i: i.qty > 1).sku, "items[?qty > `1`].sku"),
        (lambda o: o.tags == ["a", 1], 'tags == `["a", 1]`'),
        (lambda o: {"id": o.id, "n": 1} == o.other, "other == {id: id, n: `1`}"),
        (lambda o: o.total * 1.2 + 1 > o.limit, "add(multiply(total, `1.2`), `1`) > limit"),
        (lambda o: 100 - o.pct % 7 < o.a / 2, "subtract(`100`, mod(pct, `7`)) < divide(a, `2`)"),
        (lambda o: o.n // 2 == abs(-o.m), "floor(divide(n, `2`)) == abs(multiply(m, `-1`))"),
    ],
)
def test_conditions_render_as_jmespath(build: Any, expected: str) -> None:
    def flow_(flow: Flow, order: Value) -> None:
        with flow.if_(build(order), name="Test"):
            flow.task("Yes")

    assert states(compile_flow(flow_))["Test"]["Choices"][0]["Condition"] == expected


def test_raw_jmespath_and_the_context_object_can_be_read() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.task(
            "Audit",
            big=flow.jmespath("items[?qty > `10`]"),
            started=flow.context.Execution.StartTime,
        )

    assert states(compile_flow(flow_))["Audit"]["Parameters"] == {
        "big.$": "items[?qty > `10`]",
        "started.$": "$$.Execution.StartTime",
    }


# --- branching ---------------------------------------------------------------------------


def test_if_elif_else_is_one_choice_whose_blocks_join_at_the_next_step() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        with flow.if_(order.express, name="HowFast"):
            flow.task("Courier")
        with flow.elif_(order.total > 100):
            flow.task("Tracked")
        with flow.else_():
            flow.task("Post")
        flow.task("Mail")

    body = states(compile_flow(flow_))
    assert body["HowFast"] == {
        "Type": "Choice",
        "Choices": [
            {"Condition": "express", "Next": "Courier"},
            {"Condition": "total > `100`", "Next": "Tracked"},
        ],
        "Default": "Post",
    }
    assert [body[s]["Next"] for s in ("Courier", "Tracked", "Post")] == ["Mail"] * 3


def test_an_if_without_else_defaults_to_the_step_after_it() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        with flow.if_(order.fraud, name="Fraud?"):
            flow.fail("Fraud", "scored too high")
        flow.task("Charge")

    body = states(compile_flow(flow_))
    assert body["Fraud?"]["Default"] == "Charge"
    assert body["Fraud"] == {"Type": "Fail", "Error": "Fraud", "Cause": "scored too high"}


def test_open_choice_paths_at_the_end_of_the_flow_end_at_a_succeed_state() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        with flow.if_(order.gift, name="Gift?"):
            flow.task("Wrap")

    body = states(compile_flow(flow_))
    assert body["Gift?"]["Default"] == "Done"
    assert body["Wrap"]["Next"] == "Done"
    assert body["Done"] == {"Type": "Succeed"}


def test_nested_ifs_and_an_else_belonging_to_the_outer_one() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        with flow.if_(order.a, name="A?"):  # noqa: SIM117  (the else_ belongs to this one)
            with flow.if_(order.b, name="B?"):
                flow.task("AB")
        with flow.else_():
            flow.task("NotA")
        flow.task("After")

    body = states(compile_flow(flow_))
    assert body["A?"]["Default"] == "NotA"
    assert body["B?"]["Default"] == "After"
    assert body["AB"]["Next"] == body["NotA"]["Next"] == "After"


def test_while_loops_back_to_its_condition() -> None:
    def flow_(flow: Flow, job: Value) -> None:
        status = flow.task("Check", result="status")
        with flow.while_(~status.done, name="Running?"):
            flow.wait(30, name="Pause")
            flow.task("Check", name="CheckAgain", result=status)
        flow.task("Collect", output=status.output)

    body = states(compile_flow(flow_))
    assert body["Running?"] == {
        "Type": "Choice",
        "Choices": [{"Condition": "!status.done", "Next": "Pause"}],
        "Default": "Collect",
    }
    assert body["CheckAgain"]["Next"] == "Running?"


# --- waiting -----------------------------------------------------------------------------


def test_waits_for_a_time_a_moment_or_a_signal() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.wait(datetime.timedelta(hours=1), name="Hour")
        flow.wait(order.delay | 60, name="Delay")
        flow.wait(until=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), name="NewYear")
        flow.wait(until="2026-02-01T00:00:00Z", name="February")
        flow.wait(until=order.ship_after, name="ShipAfter")
        approval = flow.wait(signal="approve", name="Approval", comment="No time limit.")
        cancel = flow.wait(order.window, signal="cancel", name="Window", result="cancellation")
        flow.task("Go", approved=approval.payload, cancelled=cancel.signal)

    body = states(compile_flow(flow_))
    assert body["Hour"] == {"Type": "Wait", "Seconds": 3600, "Next": "Delay"}
    assert body["Delay"]["SecondsPath"] == "delay || `60`"
    assert body["NewYear"]["Timestamp"] == "2026-01-01T00:00:00Z"
    assert body["February"]["Timestamp"] == "2026-02-01T00:00:00Z"
    assert body["ShipAfter"]["TimestampPath"] == "ship_after"
    assert body["Approval"] == {
        "Type": "Wait",
        "Comment": "No time limit.",
        "Signal": "approve",
        "ResultPath": "approval",
        "Next": "Window",
    }
    assert body["Window"]["ResultPath"] == "cancellation"
    assert body["Go"]["Parameters"] == {
        "approved.$": "approval.payload",
        "cancelled.$": "cancellation.signal",
    }


# --- parallel and map --------------------------------------------------------------------


def test_parallel_branches_return_their_outputs_one_value_each() -> None:
    def flow_(flow: Flow, order: Value) -> object:
        charge = flow.task("Charge")

        def ship() -> object:
            label = flow.task("Label", charge=charge.id)
            return {"tracking": flow.task("Ship", label=label.code).tracking}

        mail, shipped = flow.parallel(
            lambda: flow.task("Mail", to=order.email),
            ship,
            name="Fulfil",
            retry=Retry(max_attempts=1),
        )
        return {"mail": mail.id, "tracking": shipped.tracking}

    body = states(compile_flow(flow_))
    fulfil = body["Fulfil"]
    assert [b["StartAt"] for b in fulfil["Branches"]] == ["Mail", "Label"]
    assert fulfil["Branches"][0]["States"]["Mail"]["OutputPath"] == "mail"
    assert fulfil["Branches"][1]["States"]["Label"]["Parameters"] == {"charge.$": "charge.id"}
    assert fulfil["Branches"][1]["States"]["Ship"]["OutputPath"] == "{tracking: ship.tracking}"
    assert fulfil["ResultPath"] == "fulfil"
    assert fulfil["OutputPath"] == "{mail: fulfil[0].id, tracking: fulfil[1].tracking}"


def test_map_runs_a_function_per_item_and_brings_outer_data_in_by_item_selector() -> None:
    def flow_(flow: Flow, order: Value) -> object:
        quote = flow.task("Quote")

        def price(line: Value, position: Value) -> object:
            return flow.task("Price", sku=line.sku, at=position, rate=quote.rate, to=order.country)

        priced = flow.map(order.lines, price, name="PriceLines", max_concurrency=4)
        return fn.sum(priced[:].amount)

    body = states(compile_flow(flow_))
    lines = body["PriceLines"]
    assert lines["ItemsPath"] == "lines"
    assert lines["ItemSelector"] == {
        "line.$": "$$.Map.Item.Value",
        "position.$": "$$.Map.Item.Index",
        "quote.$": "quote",
        "country.$": "country",
    }
    assert lines["MaxConcurrency"] == 4
    assert lines["ItemProcessor"]["States"]["Price"]["Parameters"] == {
        "sku.$": "line.sku",
        "at.$": "position",
        "rate.$": "quote.rate",
        "to.$": "country",
    }
    assert lines["OutputPath"] == "sum(price_lines[:].amount)"


def test_a_map_inside_a_map_brings_outer_data_through_both_selectors() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.map(
            order.boxes,
            lambda box: flow.map(
                box.items, lambda item: flow.task("Pack", item=item, box=box.id, by=order.packer)
            ),
        )

    outer = states(compile_flow(flow_))["Map"]
    inner = outer["ItemProcessor"]["States"]["Map-2"]
    assert outer["ItemSelector"] == {"box.$": "$$.Map.Item.Value", "packer.$": "packer"}
    assert inner["ItemSelector"] == {
        "item.$": "$$.Map.Item.Value",
        "box.$": "box",
        "packer.$": "packer",
    }


# --- catching, compensating, ending -------------------------------------------------------


def test_catch_handlers_are_built_once_and_shared_by_the_catches_that_use_them() -> None:
    def flow_(flow: Flow, order: Value) -> object:
        def undo(error: Value) -> None:
            flow.compensate(name="Undo", comment="Refund, release.")
            flow.fail(error.Error, error.Cause, name="Failed")

        flow.task(
            "Charge",
            catch={"CardDeclined": lambda: flow.fail("Declined"), ("A", ValueError): undo},
            compensate=lambda done: Undo(
                "Refund", queue="payments", charge=done.result.id, amount=done.input.amount,
                retry=Retry(max_attempts=9), timeout=60, comment="Give it back.",
            ),
        )  # fmt: skip
        flow.task("Reserve", catch=Catch(Errors.ALL, undo), compensate=Undo("Release"))
        return "done"

    body = states(compile_flow(flow_))
    assert body["Charge"]["Catch"] == [
        {"ErrorEquals": ["CardDeclined"], "ResultPath": "error", "Next": "Declined"},
        {"ErrorEquals": ["A", "ValueError"], "ResultPath": "error", "Next": "Undo"},
    ]
    assert body["Charge"]["Compensate"] == {
        "Activity": "Refund",
        "TaskQueue": "payments",
        "Parameters": {"charge.$": "result.id", "amount.$": "input.amount"},
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 9}],
        "TimeoutSeconds": 60,
        "Comment": "Give it back.",
    }
    assert body["Reserve"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "error", "Next": "Undo"},
    ]
    assert body["Reserve"]["Compensate"] == {"Activity": "Release", "Parameters": {}}
    assert body["Undo"] == {"Type": "Compensate", "Comment": "Refund, release.", "Next": "Failed"}
    assert body["Failed"] == {
        "Type": "Fail",
        "ErrorPath": "error.Error",
        "CausePath": "error.Cause",
    }
    assert body["Return"] == {"Type": "Pass", "Result": "done", "End": True}


def test_a_handler_that_does_not_end_continues_after_the_step_that_failed() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.task(
            "Mail",
            catch=Catch(Errors.ALL, lambda e: flow.task("Log", why=e.Cause), result="mail_error"),
        )
        flow.task("Archive")

    body = states(compile_flow(flow_))
    assert body["Mail"]["Catch"][0]["Next"] == "Log"
    assert body["Log"]["Parameters"] == {"why.$": "mail_error.Cause"}
    assert body["Mail"]["Next"] == body["Log"]["Next"] == "Archive"


def test_a_catch_with_nothing_to_do_continues_at_once_and_may_drop_the_error() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        flow.task("Mail", catch=Catch("Busy", lambda: None, result=None))
        flow.task("Archive")

    mail = states(compile_flow(flow_))["Mail"]
    assert mail["Catch"] == [{"ErrorEquals": ["Busy"], "ResultPath": None, "Next": "Archive"}]


def test_end_and_succeed_and_return_give_the_output() -> None:
    def flow_(flow: Flow, order: Value) -> object:
        with flow.if_(order.cancel, name="Cancel?"):
            flow.compensate(name="Undo")
            flow.end({"status": "cancelled", "id": order.id}, name="Cancelled")
        with flow.if_(order.quiet, name="Quiet?"):
            flow.succeed(name="Quietly")
        with flow.if_(order.early, name="Early?"):
            flow.succeed({"id": order.id}, name="EarlyExit")
        shipment = flow.task("Ship")
        return {"id": order.id, "tracking": shipment.tracking, "status": "shipped"}

    body = states(compile_flow(flow_))
    assert body["Cancelled"] == {
        "Type": "Pass",
        "Parameters": {"status": "cancelled", "id.$": "id"},
        "End": True,
    }
    assert body["Quietly"] == {"Type": "Succeed"}
    assert body["EarlyExit"] == {"Type": "Succeed", "OutputPath": "{id: id}"}
    assert body["Ship"]["OutputPath"] == "{id: id, tracking: ship.tracking, status: 'shipped'}"
    assert body["Ship"]["End"] is True


def test_returning_a_value_after_a_step_without_output_path_adds_a_pass_state() -> None:
    def flow_(flow: Flow, order: Value) -> object:
        reserved = flow.task("Reserve")
        flow.compensate()
        return reserved.id

    body = states(compile_flow(flow_))
    assert body["Compensate"]["Next"] == "Return"
    assert body["Return"] == {"Type": "Pass", "InputPath": "reserve.id", "End": True}


# --- child workflows, continue-as-new, queries, workflow fields ----------------------------


def test_child_workflows_by_name_version_or_code_workflow() -> None:
    @workflow(name="invoice", version=3)
    def invoice(flow: Flow, order: Value) -> None:
        flow.task("Bill")

    def flow_(flow: Flow, order: Value) -> object:
        flow.child("invoice", customer=order.customer)
        flow.child("invoice", version=2, name="Old")
        flow.child("invoice@1", order, name="Oldest", retry=Retry(Errors.CHILD_FAILED))
        billed = flow.child(
            invoice, {"total": order.total}, name="Pinned", catch={"X": lambda: flow.fail("X")}
        )
        return billed.number

    body = states(compile_flow(flow_))
    assert body["invoice"] == {
        "Type": "Task",
        "Workflow": "invoice",
        "Parameters": {"customer.$": "customer"},
        "ResultPath": "invoice",
        "Next": "Old",
    }
    assert body["Old"]["Workflow"] == "invoice@2"
    assert body["Oldest"]["InputPath"] == "$$.Execution.Input"
    assert body["Oldest"]["Retry"] == [{"ErrorEquals": ["Workflow.ChildFailed"]}]
    assert body["Pinned"]["Workflow"] == "invoice@3"


def test_continue_as_new_carries_the_next_input() -> None:
    def flow_(flow: Flow, state: Value) -> None:
        batch = flow.task("Process", cursor=state.cursor)
        with flow.if_(batch.more, name="More?"):
            flow.continue_as_new({"cursor": batch.next}, name="Again")
        with flow.if_(batch.upgrade, name="Upgrade?"):
            flow.continue_as_new(state, version="latest", name="Upgrade")

    body = states(compile_flow(flow_))
    assert body["Again"] == {"Type": "ContinueAsNew", "Parameters": {"cursor.$": "process.next"}}
    assert body["Upgrade"] == {
        "Type": "ContinueAsNew",
        "InputPath": "$$.Execution.Input",
        "Version": "latest",
    }


def test_on_cancel_adds_the_steps_a_cancelled_execution_goes_on_with() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        @flow.on_cancel
        def cancelled() -> None:
            flow.compensate(name="UndoOnCancel")
            flow.task("Notify", customer=order.customer)

        flow.task("Charge", compensate=Undo("Refund"))
        flow.wait(3600, name="Hold")

    body = compile_flow(flow_)
    assert (body["StartAt"], body["OnCancel"]) == ("Charge", "UndoOnCancel")
    assert body["States"]["UndoOnCancel"] == {"Type": "Compensate", "Next": "Notify"}
    assert body["States"]["Notify"]["End"] is True
    assert body["States"]["Charge"]["Next"] == "Hold"


def test_a_continue_as_new_loop_runs_in_the_engine() -> None:
    def flow_(flow: Flow, state: Value) -> object:
        batch = flow.task("Process", cursor=state.cursor)
        with flow.if_(batch.next != None, name="More?"):  # noqa: E711
            flow.continue_as_new({"cursor": batch.next}, name="Again")
        return {"done": state.cursor}

    body = compile_flow(flow_)
    more = testing.simulate(body, {"cursor": 1}, {"Process": {"result": {"next": 2}}})
    assert (more.status, more.history[-1].type) == ("CONTINUED", events.CONTINUED_AS_NEW)
    assert more.history[-1].details["input"] == {"cursor": 2}
    last = testing.simulate(body, {"cursor": 5}, {"Process": {"result": {"next": None}}})
    assert (last.status, last.output) == ("SUCCEEDED", {"done": 5})


def test_queries_timeout_input_schema_and_the_docstring_as_comment() -> None:
    def flow_(flow: Flow, order: Value) -> None:
        """Ship an order.

        Mail the customer."""
        shipment = flow.task("Ship")
        flow.query("tracking", shipment.tracking)
        flow.query("customer", order.customer)

    schema = {"type": "object", "properties": {"customer": {"type": "string"}}}
    body = compile_flow(flow_, timeout=datetime.timedelta(days=2), input_schema=schema)
    assert list(body) == [
        "Name",
        "Version",
        "Comment",
        "StartAt",
        "TimeoutSeconds",
        "InputSchema",
        "Queries",
        "States",
    ]
    assert body["Comment"] == "Ship an order.\n\nMail the customer."
    assert body["TimeoutSeconds"] == 172800
    assert body["Queries"] == {"tracking": "ship.tracking", "customer": "customer"}


def test_the_same_function_always_builds_the_same_definition() -> None:
    def flow_(flow: Flow, order: Value) -> object:
        with flow.if_(order.flag):
            flow.task("A")
        flow.parallel(lambda: flow.task("B"), lambda: flow.map(order.xs, lambda x: x))
        return order.flag

    first = workflow(name="t", version=1)(flow_).compile(activities=None)
    second = workflow(name="t", version=1)(flow_).compile(activities=None)
    assert first.sha256 == second.sha256
    assert first.source == second.source
