"""A real A2A agent on loopback for tests: the agent card at /.well-known/agent.json and JSON-RPC `message/send`
at /a2a, on a thread of its own (usable from `arena run` in the test's process and from async tests alike).

`answer(params)` gives the JSON-RPC `result` (a Task or a Message) or raises `RpcError`; `statuses` are HTTP
statuses answered (with an empty body) to the first POSTs, before `answer` is asked; `drip_bytes` makes a POST
answer one byte every 0.1 s; every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class Agent:
    card: dict[str, Any]
    answer: Callable[[dict[str, Any]], dict[str, Any]]
    statuses: list[int] = field(default_factory=list)
    card_status: int = 200
    drip_bytes: int = 0  # > 0: POST answers this many bytes, one every 0.1 s (a server that never quite answers)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


def completed(text: str) -> dict[str, Any]:
    """A completed Task whose one artifact says `text`."""
    return {"kind": "task", "id": "t-1", "contextId": "c-1", "status": {"state": "completed"},
            "artifacts": [{"artifactId": "a-1", "parts": [{"kind": "text", "text": text}]}]}


def query_of(params: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in params["message"]["parts"])


def _handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _send(self, status: int, body: Any = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _drip(self, count: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(count))
            self.end_headers()
            try:
                for _ in range(count):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass  # the client gave up

        def do_GET(self) -> None:
            agent.seen.append(Seen("GET", self.path, dict(self.headers)))
            if self.path != "/.well-known/agent.json" or agent.card_status != 200:
                self._send(404 if self.path != "/.well-known/agent.json" else agent.card_status, {})
                return
            self._send(200, agent.card)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            agent.seen.append(Seen("POST", self.path, dict(self.headers), body))
            if agent.statuses:
                self._send(agent.statuses.pop(0))
                return
            if agent.drip_bytes:
                self._drip(agent.drip_bytes)
                return
            if self.path != "/a2a" or body.get("method") != "message/send":
                self._send(200, {"jsonrpc": "2.0", "id": body.get("id"),
                                 "error": {"code": -32601, "message": "Method not found"}})
                return
            try:
                reply = {"jsonrpc": "2.0", "id": body["id"], "result": agent.answer(body["params"])}
            except RpcError as exc:
                reply = {"jsonrpc": "2.0", "id": body["id"], "error": {"code": exc.code, "message": str(exc)}}
            self._send(200, reply)

    return Handler


@contextmanager
def a2a_agent(card: dict[str, Any], answer: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[Agent]:
    """Serve one agent on 127.0.0.1 (an ephemeral port) for the block; `agent.url` is its base URL."""
    agent = Agent(card, answer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(agent))
    agent.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
