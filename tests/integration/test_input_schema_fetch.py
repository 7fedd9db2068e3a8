"""An InputSchema's ``$ref`` is never fetched when an execution starts.

``cairn validate`` refuses a reference out of the schema (tests/unit/test_input_schema_refs.py);
a definition deployed before it did still starts nothing: its ``$ref`` to ``http://...`` is
not requested and its ``file:///...`` not read (nor echoed in the error), on both databases.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn import errors
from cairn.client import Client
from cairn.core import events
from cairn.definitions import loader
from cairn.runtime import tables
from tests.integration import support

HOLD = """
Name: hold
Version: 1
StartAt: Hold
States:
  Hold:
    Type: Wait
    Signal: go
    End: true
"""


def refused(caught: pytest.ExceptionInfo[errors.InvalidInput]) -> str:
    """The refusal's message, checked to be one line."""
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def nothing_started(client: Client) -> None:
    assert client.executions() == []
    assert support.count_rows(client, tables.events) == 0


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server that serves a schema and records every path requested of it."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/order.json", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def deployed_unchecked(client: Client, input_schema: dict[str, Any]) -> None:
    """Deploy a definition as one deployed before validate refused its InputSchema would be."""
    body: dict[str, Any] = loader.loads(HOLD).body
    body = {**body, "InputSchema": input_schema}
    document = loader.Document(body=body, source="", file="<old>", sha256=loader.digest(body))
    client.deploy(document)


def test_a_remote_reference_is_never_requested_at_start(
    client: Client, schema_server: tuple[str, list[str]]
) -> None:
    url, requested = schema_server
    deployed_unchecked(client, {"properties": {"order": {"$ref": url}}})
    with pytest.raises(errors.InvalidInput) as caught:
        client.start("hold", {"order": 5}, execution_id="remote")
    assert refused(caught) == (
        f"the InputSchema of hold@1 cannot be checked: its $ref {url!r} is not within it, "
        "and nothing is fetched when an execution starts"
    )
    assert requested == []
    nothing_started(client)


def test_a_file_reference_is_never_read_at_start(client: Client, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"const": "the-secret-value"}')
    deployed_unchecked(client, {"$ref": secret.as_uri()})
    with pytest.raises(errors.InvalidInput) as caught:
        client.start("hold", "guess", execution_id="file")
    assert "the-secret-value" not in refused(caught)
    assert f"its $ref {secret.as_uri()!r} is not within it" in str(caught.value)
    nothing_started(client)


def test_a_reference_within_the_schema_checks_the_input(client: Client) -> None:
    support.deploy(
        client,
        HOLD.replace(
            "StartAt:",
            "InputSchema:\n  $ref: '#/$defs/order'\n  $defs:\n"
            "    order: {type: object, required: [id]}\nStartAt:",
        ),
    )
    with pytest.raises(errors.InvalidInput, match="'id' is a required property"):
        client.start("hold", {}, execution_id="no-id")
    assert client.start("hold", {"id": 1}, execution_id="with-id")["status"] == "RUNNING"
    assert support.history(client, "with-id", events.EXECUTION_STARTED)
