"""The names a definition, the interpreter and a history share: state types and error names.

Error names are what Retry and Catch rules match and what a failed execution records, so
the reader that checks a definition, the decider that raises them and the code-workflow
``Errors`` helper must agree on every spelling; they agree by reading them here.
"""

from __future__ import annotations

STATE_TYPES = (
    "Task",
    "Pass",
    "Wait",
    "Choice",
    "Parallel",
    "Map",
    "Succeed",
    "Fail",
    "Compensate",
    "ContinueAsNew",
)
CONTINUING = frozenset({"Task", "Pass", "Wait", "Parallel", "Map", "Compensate"})
"""State types that go on to a ``Next`` (or ``End``)."""
TERMINAL = frozenset({"Succeed", "Fail", "ContinueAsNew"})
"""State types that end their scope and never have a ``Next``."""

# -- built-in error names ------------------------------------------------------------------
ALL = "States.ALL"
RUNTIME = "States.Runtime"
FAILED = "States.Failed"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
HISTORY_LIMIT_EXCEEDED = "States.HistoryLimitExceeded"
ACTIVITY_NOT_FOUND = "Activity.NotFound"
CHILD_FAILED = "Workflow.ChildFailed"
CHILD_START_FAILED = "Workflow.StartFailed"
CANCELLED = "Execution.Cancelled"
