"""Benchmarks of Cairn: numbers to compare, never assertions.

``python3 -m bench`` runs the engine benchmark (``bench.engine``): throughput and latency of
real executions through a real worker on SQLite and PostgreSQL, printed as a table.  Each
module here runs on its own as ``python3 -m bench.<module> --help``.
"""
