"""The largest numbers a definition may hold and a run may compute, in one place.

``cairn validate`` refuses a definition past these bounds (the JSON Schema states them too,
for editors), the interpreter refuses data past them, and the command line checks its
arguments against them: what validates also deploys, runs and shows.
"""

from __future__ import annotations

MAX_SECONDS = 99_999_999
"""The longest wait, timeout, heartbeat or retry interval, in seconds (about 3 years, as in
Step Functions): a due time a run computes from it is always a date."""

MAX_VERSION = 2_147_483_647
"""The highest definition version: what the stores' integer version columns hold on both
SQLite and PostgreSQL."""

MAX_ATTEMPTS = 99_999_999
"""The most retries a Retry rule may allow, as in Step Functions."""

LATEST_TIME = 253_402_300_799.0
"""The last second of the year 9999 (UTC), in epoch seconds: the latest time that is a date.
A due time past it (a timestamp with an offset, a definition deployed before these limits)
is held here: it never comes, and is still shown as a date."""
