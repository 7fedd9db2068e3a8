"""``python3 -m bench``: the default suite, the engine benchmark (see ``bench.engine``)."""

from __future__ import annotations

from bench import engine

if __name__ == "__main__":
    raise SystemExit(engine.main())
