"""The shell around the interpreter: the write path, the worker's side, and the database.

Everything here does I/O on behalf of ``cairn.core``.  ``writer`` loads an execution, asks
the decider what happens next, and writes the new events, tasks and timers in one
transaction; ``dispatcher`` is what a ``worker`` may do (claim, finish, renew, fire what
comes due), on the same writer that ``cairn.client`` holds for programs and people.  The SQL
lives in ``store`` (its hot statements in ``statements``), in ``roster``, ``refusals`` and
``views`` for the workers table, refused outcomes and the read side, and in ``tables`` for
the schema.  It may import ``cairn.core`` and ``cairn.definitions``; nothing in the core
imports it.
"""
