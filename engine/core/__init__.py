"""The pure interpreter: what a definition means and what happens next, with no I/O.

``model`` is a checked definition, ``expressions`` and ``dataflow`` move data through a state,
``events`` are what happened, ``evolve`` folds them into an execution (``state``), and
``decider.decide`` turns one of the ``commands`` into new events (``step``, ``failures``,
``scopes``, ``waits``, ``compensation`` and ``tasks`` are its parts). Nothing here reads a
clock, a file or a database: time and ids come in as arguments, so every decision can be
replayed and tested in memory. Modules here import only each other, the standard library's
pure parts, jmespath, and ``cairn.errors``; a test checks it.
"""
