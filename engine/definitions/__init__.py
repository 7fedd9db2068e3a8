"""Reading definitions: text with source positions, schema errors, semantic checks.

``document`` loads a YAML or JSON file (or a parsed body) into a ``core.model.Definition``;
every problem found on the way is reported with its file, line, column and path. It may
import ``cairn.core`` and ``cairn.errors``, never the runtime.
"""
