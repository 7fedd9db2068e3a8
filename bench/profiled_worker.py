"""``cairn worker`` with cProfile in every thread; the statistics go to a file at exit.

Used by ``python3 -m bench.scale --profile``:
``python3 -m bench.profiled_worker STATS_FILE [cairn global options] worker [options]``.
"""

from __future__ import annotations

import sys

from bench.engine import ThreadProfiles
from cairn.cli.main import main


def run(out: str, args: list[str]) -> int:
    profiles = ThreadProfiles()
    profiles.main.enable()
    try:
        with profiles.threads():
            main(args, standalone_mode=False)
    finally:
        profiles.main.disable()
        profiles.stats().dump_stats(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1], sys.argv[2:]))
