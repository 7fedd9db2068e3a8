"""Reading definitions: text with source positions, schema errors, semantic checks.

``loader`` is the way in: ``load``/``loads`` turn a YAML or JSON file into a checked
``Document``, ``validate`` checks a body built in Python, ``digest`` names its content. It runs:

- ``source``: the text itself (size, encoding), paths, and the table of where each value was
  written; ``yaml_reader`` and ``json_reader`` read text into plain JSON and fill that table;
- ``schema``: the JSON Schema, loaded from the package; ``schema_errors`` words its errors
  for the author;
- ``semantics``: what a schema cannot state (targets, reachability, loops, Retry/Catch order,
  expressions), on the graph of ``scopes``;
- ``messages`` and ``places``: how every stage words a problem and names where it is.

Every problem is reported with its file, line, column and path. It may import ``cairn.core``
and ``cairn.errors``, never the runtime.
"""
