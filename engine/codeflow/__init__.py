"""The code-as-workflow adapter: a ``@workflow`` Python function becomes a definition.

The function runs once, at deploy, on symbolic values (``symbolic``, ``jmespath_tree``);
``flow``, ``control`` and ``builder`` record the states it adds, ``task_fields`` turns a
task's options into its Task state, ``options`` holds Retry, Catch and Undo, ``sites`` points
problems at the user's own lines, and ``adapter`` checks and deploys the result like any YAML
file. Nothing here runs at execution time. It may import ``cairn.core``,
``cairn.definitions`` and ``cairn.activities``, never the runtime.
"""
