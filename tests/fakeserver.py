"""A scriptable OpenAI-compatible server on 127.0.0.1, for tests that run the installed command.

    with FakeServer(reply=lambda req: "a cat") as server:
        subprocess.run(["llamavis", "caption", "x.jpg", "--base-url", server.url, ...])
        server.requests  # every JSON body received
        server.paths     # the path (and query) each was posted to

``get={"/v1/models": {...}}`` sets what a GET of a path answers (a dict, or a Reply).

A reply function gets the request JSON and returns either a string (the answer
text), a ``Reply`` (status, body, headers, stream chunks, delay) or a list of
those to hand out in turn.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str | None = None
    status: int = 200
    body: Any = None  # a dict (JSON) or str/bytes, overrides text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (real time: keep tiny)
    chunk_delay: float = 0.0
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = None
    raw_stream: list[str] | None = None  # literal SSE lines to send instead of generated ones
    # Lock-step with the test instead of sleeping: the answer waits until the test sets
    # ``hold`` (a stream: after its first ``hold_after`` lines). A hold that runs out of
    # time (HOLD_S) is counted in FakeServer.held_out, for the test to assert it never did.
    hold: threading.Event | None = None
    hold_after: int = 0


HOLD_S = 60.0  # a safety net only: a test that works releases its hold long before
# How often serve_forever looks for shutdown(): the default 0.5 s made every `with FakeServer()`
# end with up to half a second of waiting.
POLL_S = 0.01


def chat_body(text: str, *, model: str = "m", finish_reason: str = "stop",
              usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 1610, "completion_tokens": max(1, len(text) // 4),
                           "total_tokens": 1610 + max(1, len(text) // 4)},
    }


def stream_lines(text: str, *, model: str = "m", finish_reason: str = "stop",
                 usage: dict[str, Any] | None = None) -> list[str]:
    words = [w + " " for w in text.split(" ")]
    words[-1] = words[-1][:-1]
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in words if w]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    chunks.append({"choices": [], "usage": usage or {"prompt_tokens": 1610, "completion_tokens": len(words)}})
    lines = [f"data: {json.dumps({'id': 'c1', 'model': model, **c})}" for c in chunks]
    return lines + ["data: [DONE]"]


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer whose handler errors never reach the command's captured stderr.

    A client hanging up (a stopped batch, Ctrl-C) is no error of the server's; anything else
    goes to the real stderr, not to ``sys.stderr``, which an in-process command has captured.
    """

    request_queue_size = 128  # many clients connecting at once (-j 64)
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        traceback.print_exc(file=sys.__stderr__)


class FakeServer:
    """A threaded HTTP server answering /v1/chat/completions and /v1/models."""

    def __init__(self, reply: Callable[[dict[str, Any]], Any] | str | list[Any] = "a test answer",
                 *, get: dict[str, Any] | None = None) -> None:
        self.reply = reply
        # GET answers by path (without the query); others get a one-model list.
        self.get = get or {}
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []  # the path and query of every POST, in order
        self.get_paths: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.held_out = 0  # holds that ran out of time instead of being released by the test
        # time.monotonic() when the first and the last SSE chunk of a stream went out
        self.first_chunk_at: float | None = None
        self.last_chunk_at: float | None = None
        self._lock = threading.Lock()
        self._queue: list[Any] | None = list(reply) if isinstance(reply, list) else None
        self.httpd = LoopbackHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(POLL_S,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue is not None:
                item = self._queue.pop(0) if len(self._queue) > 1 else self._queue[0]
            elif callable(self.reply):
                item = None
            else:
                item = self.reply
        if item is None:
            item = self.reply(body)  # type: ignore[operator]
        return item if isinstance(item, Reply) else Reply(text=str(item))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Without TCP_NODELAY, Nagle's algorithm adds ~40 ms to each small reply.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                with server._lock:
                    server.get_paths.append(self.path)
                answer = server.get.get(self.path.split("?", 1)[0])
                if isinstance(answer, Reply):
                    self._send(answer.status, answer.body, answer.headers)
                elif answer is not None:
                    self._send(200, answer)
                else:
                    self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:  # the client went away mid-request (Ctrl-C): no request
                    self.close_connection = True
                    return
                body = json.loads(raw or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.paths.append(self.path)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(body, server.next_reply(body))
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict[str, Any], reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                if not (body.get("stream") and reply.status == 200 and reply.body is None):
                    self._wait(reply)
                if reply.status != 200 or reply.body is not None:
                    self._send(reply.status, reply.body, reply.headers)
                elif body.get("stream"):
                    lines = reply.raw_stream or stream_lines(
                        reply.text or "", model=body.get("model", "m"),
                        finish_reason=reply.finish_reason, usage=reply.usage)
                    self._stream(lines, reply)
                else:
                    self._send(200, chat_body(reply.text or "", model=body.get("model", "m"),
                                              finish_reason=reply.finish_reason, usage=reply.usage))

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                if isinstance(body, (dict, list)):
                    data, ctype = json.dumps(body).encode(), "application/json"
                else:
                    data = body.encode() if isinstance(body, str) else (body or b"")
                    ctype = "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, lines: list[str], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i, line in enumerate(lines):
                    if i == reply.hold_after:
                        self._wait(reply)
                    self.wfile.write((line + "\n\n").encode())
                    self.wfile.flush()
                    server.last_chunk_at = time.monotonic()
                    if server.first_chunk_at is None:
                        server.first_chunk_at = server.last_chunk_at
                    if reply.chunk_delay:
                        time.sleep(reply.chunk_delay)
                self.close_connection = True

            def _wait(self, reply: Reply) -> None:
                if reply.hold is not None and not reply.hold.wait(HOLD_S):
                    with server._lock:
                        server.held_out += 1

        return Handler
