"""Local stand-ins for the engine's peers: an HTTP server on 127.0.0.1 that records requests and answers from a
script, so http listeners and the OpenAI-compatible provider run their real code paths with no network; a project
memory port in a dict.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from bloxserver import memory_rules
from bloxserver.engine import StoreRefused


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), {"Content-Type": "application/json", **self.headers}
        body = self.body.encode() if isinstance(self.body, str) else self.body
        return body, self.headers


class LocalServer:
    """Answers each request with `respond(recorded)`; `requests` lists what arrived, in order."""

    def __init__(self, respond: Callable[[Recorded], Reply]) -> None:
        self.requests: list[Recorded] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded(self.command, self.path, dict(self.headers), self.rfile.read(length))
                server.requests.append(recorded)
                reply = respond(recorded)
                if reply.delay_seconds:
                    time.sleep(reply.delay_seconds)
                body, headers = reply.encoded()
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as a timeout test intends

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def scripted(*replies: Reply) -> Callable[[Recorded], Reply]:
    """Answers requests with `replies` in order."""
    queue = list(replies)
    return lambda recorded: queue.pop(0)


def chat_completion(
    content: str | None = None,
    tool_calls: list[tuple[str, str, dict]] = (),
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
) -> Reply:
    """An OpenAI chat-completions response; tool_calls are (id, name, arguments)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
            for call_id, name, arguments in tool_calls
        ]
    return Reply(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        }
    )


@contextmanager
def trickling_server(interval: float, headers_too: bool = False):
    """Answers one request with headers promising 1000 bytes, then sends one byte every `interval` seconds (from its
    first header byte on, with `headers_too`); yields its URL and an event set when the client hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    hung_up = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 1000 + b"\r\nContent-Length: 1000\r\n\r\n"
            pending = list(head) if headers_too else []
            if not headers_too:
                connection.sendall(head)
            while not hung_up.is_set():
                readable, _, _ = select.select([connection], [], [], interval)
                try:
                    if readable and not connection.recv(1):
                        hung_up.set()
                    else:
                        connection.sendall(bytes([pending.pop(0)]) if pending else b"x")
                except OSError:
                    hung_up.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", hung_up
    finally:
        listener.close()


class DictMemory:
    """A MemoryStore in a dict, refusing what the real store refuses for a flow, with the same reasons: a disabled
    memory, a write past `max_bytes` (entries sized as memory_rules sizes them), a non-number to increment."""

    def __init__(self, enabled: bool = True, max_bytes: int | None = None) -> None:
        self.values: dict[str, Any] = {}
        self.ttls: dict[str, int | None] = {}
        self.enabled = enabled
        self.max_bytes = max_bytes

    def _check(self, key: str) -> None:
        if not self.enabled:
            raise StoreRefused(f"project memory is disabled for this flow (key {key!r})")

    def used_bytes(self) -> int:
        return sum(memory_rules.entry_size(key, memory_rules.value_text(value)) for key, value in self.values.items())

    def _store(self, key: str, value: Any, ttl_seconds: int | None) -> None:
        replaced = memory_rules.entry_size(key, memory_rules.value_text(self.values[key])) if key in self.values else 0
        growth = memory_rules.entry_size(key, memory_rules.value_text(value)) - replaced
        if self.max_bytes is not None and growth > 0 and self.used_bytes() + growth > self.max_bytes:
            raise StoreRefused(f"Project memory is full: key {key!r} needs {growth} more bytes", "full")
        self.values[key], self.ttls[key] = value, ttl_seconds

    def get(self, key: str) -> Any:
        self._check(key)
        return self.values.get(key)

    def set(self, key: str, value: Any, ttl_seconds: int | None) -> None:
        self._check(key)
        self._store(key, value, ttl_seconds)

    def delete(self, key: str) -> None:
        self._check(key)
        self.values.pop(key, None)

    def increment(self, key: str, by: int | float, ttl_seconds: int | None) -> int | float:
        self._check(key)
        current = self.values.get(key, 0)
        if not isinstance(current, (int, float)) or isinstance(current, bool):
            raise StoreRefused(f"key {key!r} holds a string, not a number, so it cannot be incremented", "not_a_number")
        self._store(key, current + by, ttl_seconds)
        return self.values[key]
