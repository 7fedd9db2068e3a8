"""How long checking a large definition takes: parse, schema and semantic checks together.

Definitions are checked on every ``cairn validate``, ``deploy`` and ``run``, and in editors on
save, so a big one (2,000 states) must stay well under a second. Run with
``python3 -m bench.validate``; it prints a table and asserts nothing.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import yaml

from cairn.definitions import loader

STATES = 2_000
RUNS = 7


def build(count: int) -> dict[str, Any]:
    """A chain of Task, Pass and Choice states, each with the fields real flows use."""
    states: dict[str, Any] = {}
    for i in range(count):
        name, following = f"Step{i:04d}", f"Step{i + 1:04d}" if i + 1 < count else "Done"
        match i % 3:
            case 0:
                states[name] = {
                    "Type": "Task",
                    "Activity": "Work",
                    "Parameters": {
                        "id.$": "order.id",
                        "step": i,
                        "key.$": "$$.Task.IdempotencyKey",
                    },
                    "ResultPath": f"results.step{i}",
                    "TimeoutSeconds": 30,
                    "Retry": [{"ErrorEquals": ["Busy"], "MaxAttempts": 3, "BackoffRate": 2.0}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
                    "Next": following,
                }
            case 1:
                states[name] = {
                    "Type": "Pass",
                    "Result": {"step": i, "note": "shaped"},
                    "ResultPath": "last",
                    "Next": following,
                }
            case _:
                states[name] = {
                    "Type": "Choice",
                    "Choices": [
                        {"Condition": f"last.step == `{i}`", "Next": following},
                        {"Condition": "order.cancelled", "Next": "Failed"},
                    ],
                    "Default": following,
                }
    states["Done"] = {"Type": "Succeed"}
    states["Failed"] = {"Type": "Fail", "Error": "StepFailed"}
    return {"Name": "bench", "Version": 1, "StartAt": "Step0000", "States": states}


def timings(text: str, *, as_json: bool) -> list[float]:
    """Milliseconds per ``loads`` of ``text``, one per run."""
    spent = []
    for _ in range(RUNS):
        start = time.perf_counter()
        loader.loads(text, "bench", json=as_json)
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def main() -> None:
    body = build(STATES)
    texts = {
        "YAML": yaml.safe_dump(body, sort_keys=False),
        "JSON": json.dumps(body, indent=2),
    }
    print(f"{'format':<8}{'states':>8}{'bytes':>11}{'best ms':>10}{'median ms':>11}")
    for label, text in texts.items():
        spent = timings(text, as_json=label == "JSON")
        size = len(text.encode("utf-8"))
        print(
            f"{label:<8}{len(body['States']):>8}{size:>11,}"
            f"{min(spent):>10.1f}{statistics.median(spent):>11.1f}"
        )


if __name__ == "__main__":
    main()
