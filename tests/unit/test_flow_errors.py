"""Mistakes in a code workflow are reported at deploy time with the user's file and line.

Each flow below marks the line a problem must point at with a ``# <- name`` comment, so the
tests do not depend on line numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cairn import Catch, Flow, Undo, Value, errors, workflow
from cairn.cli.main import main
from cairn.codeflow import sites

SOURCE = Path(__file__).read_text(encoding="utf-8").splitlines()
FILE = sites.shown_file(__file__)


def line_of(marker: str) -> int:
    (line,) = [n for n, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# <- {marker}")]
    return line


def problems(
    function: Callable[..., object], activities: list[str] | None = None, **options: Any
) -> list[tuple[int, str]]:
    """The (line, message) of each problem compiling ``function``; all in this file."""
    with pytest.raises(errors.DefinitionError) as caught:
        workflow(name="t", version=1, **options)(function).compile(activities=activities)
    assert {p.file for p in caught.value.problems} == {FILE}
    return [(p.line, p.message) for p in caught.value.problems]


def only(function: Callable[..., object], **options: Any) -> tuple[int, str]:
    (found,) = problems(function, **options)
    return found


# --- Python that would need the data at deploy time --------------------------------------


def python_if(flow: Flow, order: Value) -> None:
    charge = flow.task("Charge")
    if charge.ok:  # <- if
        flow.task("Ship")


def python_and(flow: Flow, order: Value) -> None:
    flow.task("Ship", express=order.express and order.paid)  # <- and


def python_for(flow: Flow, order: Value) -> None:
    for item in order.items:  # <- for
        flow.task("Pack", item=item)


def python_len(flow: Flow, order: Value) -> None:
    flow.task("Pack", n=len(order.items))  # <- len


def python_in(flow: Flow, order: Value) -> None:
    flow.task("Pack", vip="vip" in order.tags)  # <- in


def python_fstring(flow: Flow, order: Value) -> None:
    flow.task("Mail", subject=f"Order {order.id}")  # <- fstring


def python_power(flow: Flow, order: Value) -> None:
    flow.task("Charge", amount=order.total**2)  # <- power


def text_arithmetic(flow: Flow, order: Value) -> None:
    flow.task("Mail", subject="Order " + order.id)  # <- text


def python_call(flow: Flow, order: Value) -> None:
    flow.task("Pack", n=order.items.length())  # <- call


@pytest.mark.parametrize(
    ("function", "marker", "says"),
    [
        (python_if, "if", "the result of 'Charge', field `ok` has no truth value at deploy time"),
        (python_and, "and", "the input field `express` has no truth value at deploy time"),
        (python_for, "for", "cannot loop over the input field `items` at deploy time"),
        (python_len, "len", "use fn.length(value)"),
        (python_in, "in", "use fn.contains(value, element)"),
        (python_fstring, "fstring", "cannot become text at deploy time"),
        (python_power, "power", "there is no power function"),
        (text_arithmetic, "text", "arithmetic takes numbers, not 'Order '; join text with"),
        (python_call, "call", "to call a JMESPath function write fn.NAME(value, ...)"),
    ],
)
def test_python_that_needs_the_data_is_refused_at_its_line(
    function: Callable[..., object], marker: str, says: str
) -> None:
    line, message = only(function)
    assert line == line_of(marker)
    assert says in message


def test_the_truth_value_message_says_how_to_branch() -> None:
    _, message = only(python_if)
    assert "with flow.if_(condition):" in message
    assert "& | ~" in message


# --- reading results that do not exist there ---------------------------------------------


def read_from_one_branch(flow: Flow, order: Value) -> None:
    with flow.if_(order.express):
        label = flow.task("PrintLabel")
    flow.task("Ship", label=label.code)  # <- one branch


def read_inside_parallel(flow: Flow, order: Value) -> None:
    inner: list[Value] = []
    flow.parallel(lambda: inner.append(flow.task("A")), lambda: flow.task("B"))
    flow.task("Use", a=inner[0].x)  # <- parallel


def read_map_item(flow: Flow, order: Value) -> None:
    seen: list[Value] = []
    flow.map(order.items, lambda item: seen.append(item))
    flow.task("Use", item=seen[0])  # <- item


def read_discarded(flow: Flow, order: Value) -> None:
    sent = flow.task("Mail", result=None)
    flow.task("Archive", id=sent.id)  # <- discarded


def read_error_after_handler(flow: Flow, order: Value) -> None:
    caught: list[Value] = []
    flow.task("Mail", catch={"Busy": caught.append})
    flow.task("Archive", why=caught[0].Cause)  # <- error


def read_after_failed_step(flow: Flow, order: Value) -> None:
    sent = flow.task("Mail", catch={"Busy": lambda: flow.task("Log")})
    flow.task("Archive", id=sent.id)  # <- failed step


def read_overwritten(flow: Flow, order: Value) -> None:
    first = flow.task("Quote", result="quote")
    flow.task("Requote", result="quote")
    flow.task("Use", price=first.price)  # <- overwritten


@pytest.mark.parametrize(
    ("function", "marker", "says"),
    [
        (read_from_one_branch, "one branch", "does not exist on every path to here"),
        (read_inside_parallel, "parallel", "exists only inside branch 0 of 'Parallel'"),
        (read_map_item, "item", "exists only inside an item of 'Map'"),
        (read_discarded, "discarded", "is discarded (result=None), so it cannot be read"),
        (read_error_after_handler, "error", "the error caught from 'Mail'"),
        (read_after_failed_step, "failed step", "a catch handler that continues after it failed"),
        (read_overwritten, "overwritten", "the result of 'Requote'"),
    ],
)
def test_reading_a_result_where_it_does_not_exist_is_reported_at_the_read(
    function: Callable[..., object], marker: str, says: str
) -> None:
    line, message = only(function)
    assert line == line_of(marker)
    assert says in message


def every_problem_at_once(flow: Flow, order: Value) -> None:
    with flow.if_(order.express):
        label = flow.task("PrintLabel")
    flow.task("Ship", label=label.code)  # <- first
    flow.task("Chrage", to=order.card)  # <- second


def test_all_problems_are_reported_together_in_line_order() -> None:
    found = problems(every_problem_at_once, activities=["PrintLabel", "Ship", "Charge"])
    assert [line for line, _ in found] == [line_of("first"), line_of("second")]
    assert found[1][1] == "activity 'Chrage' is not registered (did you mean 'Charge'?)"


def hidden_input(flow: Flow, order: Value) -> None:
    flow.task("Total", result="total")  # <- hidden


def test_a_result_key_that_hides_an_input_field_of_the_schema() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number"}}}
    line, message = only(hidden_input, input_schema=schema)
    assert line == line_of("hidden")
    assert message == "result key 'total' would hide the input field of the same name"


# --- activities and definition rules -----------------------------------------------------


def unregistered(flow: Flow, order: Value) -> None:
    flow.task("ChargeCard")
    flow.task(
        "ReserveInventory",
        compensate=Undo("ReleaseStok"),  # the problem points at the task's first line
    )  # <- unused


def test_unregistered_activities_point_at_the_step_that_names_them() -> None:
    found = problems(unregistered, activities=["ChargeCard", "ReleaseStock"])
    reserve = line_of("unused") - 3
    assert found == [
        (reserve, "activity 'ReleaseStok' is not registered (did you mean 'ReleaseStock'?)"),
        (reserve, "activity 'ReserveInventory' is not registered"),
    ]


def test_with_no_activity_registered_at_all_the_message_says_where_they_come_from() -> None:
    _, message = problems(unregistered, activities=[])[0]
    assert "import the module that registers them" in message


def unregistered_function(flow: Flow, order: Value) -> None:
    flow.task(print)  # <- function


def test_an_activity_given_as_a_function_must_be_registered() -> None:
    line, message = only(unregistered_function)
    assert line == line_of("function")
    assert "is not a registered activity" in message


def bad_queue(flow: Flow, order: Value) -> None:
    flow.task("Charge")
    flow.task("Refund", queue="pay ments")  # <- queue


def test_a_schema_problem_points_at_the_step_it_is_in() -> None:
    line, message = only(bad_queue)
    assert line == line_of("queue")
    assert "'pay ments'" in message


def bad_state_name(flow: Flow, order: Value) -> None:
    flow.task("Charge", name="Charge/Card")  # <- name


def test_a_state_name_the_format_refuses() -> None:
    line, message = only(bad_state_name)
    assert line == line_of("name")
    assert message == "state name 'Charge/Card' must be 1 to 80 characters without '/', '[' or ']'"


def twice_named(flow: Flow, order: Value) -> None:
    flow.task("Charge", name="Pay")
    flow.task("Refund", name="Pay")  # <- twice


def test_a_state_name_given_twice() -> None:
    line, message = only(twice_named)
    assert line == line_of("twice")
    assert message.startswith("state name 'Pay' is already used (at ")


# --- control flow the builder cannot follow ----------------------------------------------


def return_in_if(flow: Flow, order: Value) -> object:
    with flow.if_(order.cancel):
        return {"status": "cancelled"}  # <- return
    flow.task("Ship")
    return None


def break_in_while(flow: Flow, order: Value) -> None:
    for _ in range(2):
        with flow.while_(order.more):
            flow.task("Poll")
            break  # <- break


def test_return_or_break_inside_a_block_would_drop_steps_and_is_refused() -> None:
    line, message = only(return_in_if)
    assert line == line_of("return")
    assert message.startswith("`return` inside `with flow.if_(...)` would run at deploy time")
    assert "flow.end(value)" in message
    line, message = only(break_in_while)
    assert line == line_of("break")
    assert message.startswith("`break` inside `with flow.while_(...)`")


def if_without_with(flow: Flow, order: Value) -> None:
    flow.if_(order.express)  # <- no with
    flow.task("Ship")


def else_alone(flow: Flow, order: Value) -> None:
    flow.task("Ship")
    with flow.else_():  # <- else
        flow.task("Post")


def after_the_end(flow: Flow, order: Value) -> None:
    flow.fail("Nope")
    flow.task("Ship")  # <- unreachable


def name_error(flow: Flow, order: Value) -> None:
    flow.task("Ship", to=adress)  # type: ignore[name-defined]  # noqa: F821  # <- name error


def undo_of_a_list(flow: Flow, order: Value) -> None:
    flow.task("Charge", compensate=lambda done: Undo("Refund", [done.result]))  # <- undo input


@pytest.mark.parametrize(
    ("function", "marker", "says"),
    [
        (if_without_with, "no with", "does nothing outside a `with` statement"),
        (else_alone, "else", "must come right after an if_ or elif_ block"),
        (after_the_end, "unreachable", "this step can never run: every path before it has ended"),
        (name_error, "name error", "raised NameError: name 'adress' is not defined"),
        (undo_of_a_list, "undo input", "an Undo's input is a dict of parameters, or the lambda"),
    ],
)
def test_misused_blocks_and_python_errors(
    function: Callable[..., object], marker: str, says: str
) -> None:
    line, message = only(function)
    assert line == line_of(marker)
    assert says in message


# --- lambdas that describe data relative to something -------------------------------------


def select_reads_outside(flow: Flow, order: Value) -> None:
    flow.task("Score", select=lambda raw: {"score": raw.score, "id": order.id})  # <- select


def undo_reads_outside(flow: Flow, order: Value) -> None:
    flow.task("Charge", compensate=lambda done: Undo("Refund", id=order.id))  # <- undo


def step_inside_select(flow: Flow, order: Value) -> None:
    flow.task("Score", select=lambda raw: {"x": flow.task("Other")})  # <- step inside


def context_and_data(flow: Flow, order: Value) -> None:
    flow.task("Audit", same=flow.context.Execution.Id == order.id)  # <- mixed


def shared_handler_that_continues(flow: Flow, order: Value) -> None:
    def log(error: Value) -> None:
        flow.task("Log", why=error.Cause)

    flow.task("Mail", catch=Catch("Busy", log))
    flow.task("Text", catch=Catch("Busy", log))  # <- shared


@pytest.mark.parametrize(
    ("function", "marker", "says"),
    [
        (select_reads_outside, "select", "inside a select= or compensate= lambda, read only"),
        (undo_reads_outside, "undo", "read only the task's input and result"),
        (step_inside_select, "step inside", "a step cannot be added inside select="),
        (context_and_data, "mixed", "cannot read both the context object"),
        (shared_handler_that_continues, "shared", "so it cannot continue here too"),
    ],
)
def test_lambdas_and_handlers_read_only_what_they_may(
    function: Callable[..., object], marker: str, says: str
) -> None:
    line, message = only(function)
    assert line == line_of(marker)
    assert says in message


# --- the command line --------------------------------------------------------------------


def test_validate_and_export_print_each_problem_on_one_line_and_exit_2(tmp_path: Path) -> None:
    module = tmp_path / "broken_flow.py"
    module.write_text(
        "from cairn import Flow, Value, workflow\n"
        "\n"
        "@workflow(name='broken', version=1)\n"
        "def broken(flow: Flow, order: Value) -> None:\n"
        "    if order.express:\n"
        "        flow.task('Ship')\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    for command in ("validate", "export"):
        result = runner.invoke(main, [command, str(module)])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"{sites.shown_file(str(module))}:5:")
        assert "has no truth value at deploy time" in line


def cancel_path_reads_a_result(flow: Flow, order: Value) -> None:
    charge = flow.task("Charge")

    @flow.on_cancel
    def cancelled() -> None:
        flow.task("Refund", charge=charge.id)  # <- on cancel


def test_the_cancel_path_may_start_anywhere_so_it_reads_no_result() -> None:
    line, message = only(cancel_path_reads_a_result)
    assert line == line_of("on cancel")
    assert "does not exist on every path to here" in message
