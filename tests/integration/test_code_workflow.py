"""Code workflows on a real database: the same history as their YAML, deployed like YAML,
and executions that finish as deployed whatever later happens to the Python."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cairn.cli.main import main
from cairn.client import Client
from cairn.codeflow import adapter
from cairn.core import events
from cairn.definitions import loader
from cairn.jsontypes import JSON
from cairn.runtime import worker
from cairn.runtime.dispatcher import Dispatcher
from tests.integration import flows, support
from tests.integration.support import FakeClock, Recorder

ORDER_V2 = support.ROOT / "definitions" / "order" / "v2.yaml"
ORDER_CODE = "definitions/order_code/v1.py"
QUEUES = ("default", "payments")
WORKER_ARGS = ("--activities", "tests.integration.code_activities", "--poll", "0.05")


def order(order_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "email": f"{order_id.lower()}@example.com",
        "card": "tok_visa",
        "total": 25.5,
        "items": [{"sku": "BOOK-1", "qty": 2}],
        "address": "1 Harbour Lane",
        "cancel_window_seconds": 3600,
        **changes,
    }


SCENARIOS: dict[str, dict[str, JSON]] = {
    "ships": {},
    "cancelled": {},
    "declined": {"card": "declined"},
    "fraud": {"email": "x@fraud.test"},
    "unreachable": {"address": "unreachable"},
    "sold-out": {"items": [{"sku": "SOLD-OUT", "qty": 1}]},
}


def test_the_code_order_flow_and_v2_leave_the_same_history_on_a_real_database(
    dispatcher: Dispatcher,
    client: Client,
    clock: FakeClock,
    demo: Recorder,
    provider_db: Path,
    start_worker: Callable[..., worker.Worker],
) -> None:
    client.deploy(loader.load(ORDER_V2))
    (code,) = adapter.load(ORDER_CODE)
    client.deploy(code.compile())
    start_worker(dispatcher, demo.registry, queues=QUEUES)

    def holding(execution_id: str) -> bool:
        return support.entered(client, execution_id)[-1:] == ["CancelWindow"] and any(
            t["purpose"] == "wait" for t in client.inspect(execution_id)["timers"]
        )

    for workflow in ("order", "order_code"):
        for name, changes in SCENARIOS.items():
            client.start(workflow, order(name, **changes), execution_id=f"{workflow}-{name}")
    for workflow in ("order", "order_code"):
        support.wait_until(functools.partial(holding, f"{workflow}-cancelled"), "the cancel window")
        client.signal(f"{workflow}-cancelled", "cancel", {"reason": "changed my mind"})
    waiting = [f"{w}-{name}" for w in ("order", "order_code") for name in ("ships", "unreachable")]
    support.wait_until(lambda: all(holding(i) for i in waiting), "the cancel windows")
    clock.advance(3600)

    for name in SCENARIOS:
        from_yaml = support.wait_closed(client, f"order-{name}")
        from_code = support.wait_closed(client, f"order_code-{name}")
        assert (from_code["status"], from_code["error"]) == (
            from_yaml["status"],
            from_yaml["error"],
        )
        assert (from_code["output"] or {}).keys() == (from_yaml["output"] or {}).keys()
        shape = [(e.type, e.state, e.scope) for e in client.history(f"order-{name}")]
        assert [(e.type, e.state, e.scope) for e in client.history(f"order_code-{name}")] == shape
    statuses = {name: client.describe(f"order_code-{name}")["status"] for name in SCENARIOS}
    assert statuses == {
        "ships": "SUCCEEDED",
        "cancelled": "SUCCEEDED",
        "declined": "FAILED",
        "fraud": "FAILED",
        "unreachable": "FAILED",
        "sold-out": "FAILED",
    }
    support.assert_replays(client)


def test_cli_deploys_a_code_workflow_like_yaml_with_the_same_immutability(
    db_url: str, live_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"ship_flow_{uuid.uuid4().hex[:8]}"  # a module name of this test alone
    module = tmp_path / f"{name}.py"
    module.write_text(SHIP_FLOW.format(activity="Steps.One"), encoding="utf-8")
    runner = CliRunner()

    def cairn(*args: str) -> Any:
        return runner.invoke(main, ["--db", db_url, *args])

    first = cairn("deploy", f"{name}:ship", "--activities", "tests.integration.flows")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("deployed ship@1 (")
    exported = tmp_path / "ship.yaml"
    assert cairn("export", f"{name}:ship", "-o", str(exported)).exit_code == 0
    again = cairn("deploy", str(module), str(exported))
    assert again.exit_code == 0, again.output
    sha = first.stdout.split("(")[1][:12]
    assert again.stdout.splitlines() == [f"unchanged ship@1 ({sha})"] * 2

    # The same version with other content, from a changed copy of the module: refused.
    changed = tmp_path / f"{name}_changed.py"
    changed.write_text(SHIP_FLOW.format(activity="Steps.Two"), encoding="utf-8")
    refused = cairn("deploy", str(changed))
    assert refused.exit_code == 1
    assert "ship version 1 is already deployed with different content" in refused.stderr
    (row,) = live_client.definitions("ship")
    assert row["sha256"].startswith(sha)


SHIP_FLOW = """\
from cairn import workflow


@workflow(name="ship", version=1)
def ship(flow, order):
    flow.task("{activity}", order_id=order.id)
"""


# --- durability does not depend on the Python ----------------------------------------------

DURABLE_FLOW = '''\
"""A code workflow for the durability test: deployed, then replaced by a broken one."""

from tests.integration import code_activities  # noqa: F401  (registers the activities)
from cairn import Errors, Flow, Retry, Value, workflow


@workflow(name="durable", version=1)
def durable(flow: Flow, job: Value) -> object:
    prepared = flow.task("Code.Prepare", n=job.n, result="prepared")
    flow.task(
        "Code.Hold",
        n=job.n,
        heartbeat=1,
        retry=Retry(Errors.TIMEOUT, interval=0.2, max_attempts=5),
        result=None,
    )
    with flow.if_(job.n >= 2, name="Big?"):
        flow.wait(job.pause, name="Pause")
    doubled = flow.map(
        job.items,
        lambda x: flow.task("Code.Double", x=x, factor=prepared.factor),
        name="DoubleAll",
    )
    left, right = flow.parallel(
        lambda: flow.task("Code.Echo", word="left"),
        lambda: flow.task("Code.Echo", name="EchoRight", word="right"),
        name="Both",
    )
    return {"n": job.n, "doubled": doubled, "words": [left.word, right.word]}
'''

BROKEN_FLOW = '''\
"""The same module after the deploy: importing it leaves a mark, and its function raises."""

import os
from pathlib import Path

from cairn import workflow

if os.environ.get("CAIRN_TEST_MARKS"):
    Path(os.environ["CAIRN_TEST_MARKS"], f"imported-{os.getpid()}").touch()


@workflow(name="durable", version=1)
def durable(flow, job):
    if os.environ.get("CAIRN_TEST_MARKS"):
        Path(os.environ["CAIRN_TEST_MARKS"], f"called-{os.getpid()}").touch()
    raise RuntimeError("this flow is broken now")
'''

EXECUTIONS = 4


@pytest.mark.crash
def test_executions_finish_as_deployed_after_the_python_flow_is_broken_and_workers_killed(
    db_url: str,
    live_client: Client,
    tmp_path: Path,
    calls_file: Path,
    worker_processes: Callable[..., support.WorkerProcess],
) -> None:
    code_dir, marks, gate = tmp_path / "code", tmp_path / "marks", tmp_path / "gate"
    code_dir.mkdir()
    marks.mkdir()
    module = code_dir / "durable_flow.py"
    module.write_text(DURABLE_FLOW, encoding="utf-8")
    env = support.subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(code_dir), env["PYTHONPATH"]])

    deployed = support.cairn("--db", db_url, "deploy", "durable_flow:durable", env=env)
    assert deployed.returncode == 0, deployed.stderr
    jobs: dict[str, JSON] = {
        f"d-{n}": {"n": n, "pause": 0, "items": list(range(n))} for n in range(EXECUTIONS)
    }
    ids = [live_client.start("durable", job, execution_id=key)["id"] for key, job in jobs.items()]
    extra = {flows.GATE: str(gate), "PYTHONPATH": env["PYTHONPATH"], "CAIRN_TEST_MARKS": str(marks)}
    first = worker_processes(db_url, *WORKER_ARGS, "--concurrency", str(EXECUTIONS), **extra)

    def holding() -> bool:
        held = [c for c in flows.calls(calls_file) if c["activity"] == "Code.Hold"]
        return len(held) == EXECUTIONS

    support.wait_until(holding, f"{EXECUTIONS} executions to be inside Code.Hold")
    first.kill()  # SIGKILL: no goodbye, its leases simply expire

    # The Python is replaced by a function that raises: deploying it now fails, at its line.
    module.write_text(BROKEN_FLOW, encoding="utf-8")
    shutil.rmtree(code_dir / "__pycache__", ignore_errors=True)
    broken = support.cairn("--db", db_url, "deploy", "durable_flow:durable", env=env)
    assert broken.returncode == 2
    raise_line = BROKEN_FLOW.splitlines().index('    raise RuntimeError("this flow is broken now")')
    assert f"durable_flow.py:{raise_line + 1}:" in broken.stderr
    assert "raised RuntimeError: this flow is broken now" in broken.stderr

    gate.touch()
    second = worker_processes(db_url, *WORKER_ARGS, **extra)
    for n, execution_id in enumerate(ids):
        view = support.wait_closed(live_client, execution_id)
        assert view["status"] == "SUCCEEDED", view
        assert view["output"] == {
            "n": n,
            "doubled": [10 * x for x in range(n)],
            "words": ["left", "right"],
        }
        entered = support.entered(live_client, execution_id)
        assert entered[:3] == ["Code.Prepare", "Code.Hold", "Big?"]
        assert ("Pause" in entered) == (n >= 2)
        timed_out = support.history(live_client, execution_id, events.TASK_TIMED_OUT)
        assert [(e.state, e.details["error"]) for e in timed_out] == [
            ("Code.Hold", "States.HeartbeatTimeout")
        ]

    calls = flows.calls(calls_file)
    held = sorted(
        (c["execution"], c["attempt"], c["pid"]) for c in calls if c["activity"] == "Code.Hold"
    )
    pids = {1: first.process.pid, 2: second.process.pid}
    assert held == sorted((i, attempt, pid) for i in ids for attempt, pid in pids.items())
    done = [c for c in calls if c["activity"] != "Code.Hold"]
    assert {c["pid"] for c in done if c["activity"] == "Code.Prepare"} == {first.process.pid}
    assert {c["pid"] for c in done if c["activity"] != "Code.Prepare"} == {second.process.pid}
    assert [key for key, count in support.per_key(done).items() if count != 1] == []
    assert sorted(p.name for p in marks.iterdir()) == []  # no worker imported the flow
    assert second.stop() == 0, second.output
    support.assert_replays(live_client)
