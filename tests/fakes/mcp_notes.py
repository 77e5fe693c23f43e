"""The mcp fixture bundle's notes server (written with the official `mcp` SDK) over HTTP on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes.services import free_port

NOTES_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "mcp" / "server" / "notes_server.py"


@contextmanager
def notes_http_server(kind: str) -> Iterator[int]:
    """The notes server over `kind` (`streamable-http` or `sse`); yields its port once it accepts connections."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(NOTES_SERVER), kind, str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "the HTTP server did not come up"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)
