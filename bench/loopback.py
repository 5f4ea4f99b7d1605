"""A minimal OpenAI-compatible HTTP/1.1 server on 127.0.0.1, stdlib asyncio only.

It runs its own event loop in a daemon thread of the benchmark process, so one
``time.monotonic`` clock serves both the server's timestamps and the benchmark's.
Each connection is a coroutine, so 64+ slow requests in flight cost next to nothing.

    server = Loopback().start()
    server.configure(latency=0.2, jitter=0.05)   # non-streamed answers after ~200 ms
    server.reset()                               # fresh counters for the next run
    ... run the CLI against server.url ...
    server.stats()                               # requests, max in flight, busy window
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Settings:
    latency: float = 0.0  # mean seconds before a non-streamed answer (or the first token)
    jitter: float = 0.0  # latency is uniform in [latency - jitter, latency + jitter]
    token_interval: float = 0.0  # seconds between tokens, streamed or not (0: all at once)
    tokens: int = 20  # words in a generated answer


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    busy_integral: float = 0.0  # integral of in_flight over time (request-seconds)
    first_request: float | None = None
    last_response: float | None = None
    first_token_at: list[float] = field(default_factory=list)  # streaming or simulated
    last_token_at: list[float] = field(default_factory=list)
    streamed: list[bool] = field(default_factory=list)
    _mark: float = 0.0


FIRST_WORD = "Zebrafirst"  # the first token of every answer: easy to find in a terminal's bytes


class Loopback:
    """The server; ``start()`` binds a free port and returns self."""

    def __init__(self) -> None:
        self.settings = Settings()
        self._stats = Stats()
        self._lock = threading.Lock()
        self._rng = random.Random(7)
        self.loop = asyncio.new_event_loop()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Loopback:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), name="loopback", daemon=True).start()
        ready.wait(10)
        return self

    def configure(self, **settings: Any) -> None:
        self.settings = Settings(**settings)

    def reset(self) -> None:
        with self._lock:
            self._stats = Stats()

    def stats(self) -> Stats:
        with self._lock:
            return self._stats

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    # -- serving ---------------------------------------------------------------

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024, limit=2**20)
        )
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, headers = _parse_head(head)
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                await self._route(method, path, body, writer)
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        if method == "GET" and path.endswith("/models"):
            await _send(writer, 200, {"data": [{"id": "bench", "object": "model"}]})
        elif method == "POST" and path.endswith("/chat/completions"):
            self._enter()
            try:
                await self._chat(json.loads(body), body, writer)
            finally:
                self._leave()
        else:
            await _send(writer, 404, {"error": {"message": "not found"}})

    def _enter(self) -> None:
        with self._lock:
            s = self._stats
            now = time.monotonic()
            s.busy_integral += s.in_flight * (now - s._mark) if s.in_flight else 0.0
            s._mark = now
            s.requests += 1
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
            if s.first_request is None:
                s.first_request = now

    def _leave(self) -> None:
        with self._lock:
            s = self._stats
            now = time.monotonic()
            s.busy_integral += s.in_flight * (now - s._mark)
            s._mark = now
            s.in_flight -= 1
            s.last_response = now

    def _delay(self) -> float:
        cfg = self.settings
        if cfg.latency <= 0:
            return 0.0
        return max(0.0, cfg.latency + self._rng.uniform(-cfg.jitter, cfg.jitter))

    async def _chat(self, req: dict, body: bytes, writer: asyncio.StreamWriter) -> None:
        cfg = self.settings
        words = _answer_words(body, cfg.tokens)
        if req.get("stream"):
            await self._stream(req, words, writer)
            return
        delay = self._delay()
        if delay:
            await asyncio.sleep(delay)
        first = time.monotonic()  # the first token exists now...
        if cfg.token_interval:  # ...but a non-streamed answer is sent once all are generated
            await asyncio.sleep(cfg.token_interval * (len(words) - 1))
        self._record(first, time.monotonic(), streamed=False)
        text = "".join(words)
        await _send(writer, 200, {
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
            "model": req.get("model", "bench"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1610, "completion_tokens": len(words),
                      "total_tokens": 1610 + len(words)},
        })  # fmt: skip

    async def _stream(self, req: dict, words: list[str], writer: asyncio.StreamWriter) -> None:
        cfg = self.settings
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        model = req.get("model", "bench")
        first = 0.0
        for i, word in enumerate(words):
            await asyncio.sleep(cfg.token_interval if i else self._delay())
            chunk = {"id": "c1", "model": model,
                     "choices": [{"index": 0, "delta": {"content": word}}]}
            await _chunk(writer, f"data: {json.dumps(chunk)}\n\n".encode())
            if i == 0:
                first = time.monotonic()
        last = time.monotonic()
        end = {"id": "c1", "model": model,
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1610, "completion_tokens": len(words)}}
        await _chunk(writer, f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
        await _chunk(writer, b"")
        self._record(first, last, streamed=True)

    def _record(self, first: float, last: float, *, streamed: bool) -> None:
        with self._lock:
            self._stats.first_token_at.append(first)
            self._stats.last_token_at.append(last)
            self._stats.streamed.append(streamed)


def _answer_words(body: bytes, count: int) -> list[str]:
    """An answer that names its own request (a hash of the body), ``count`` words long."""
    tag = hashlib.blake2b(body, digest_size=6).hexdigest()
    words = [FIRST_WORD + " ", f"image-{tag} "] + [f"word{i} " for i in range(max(0, count - 2))]
    words = words[:max(1, count)]
    words[-1] = words[-1].rstrip()
    return words


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


async def _send(writer: asyncio.StreamWriter, status: int, doc: dict) -> None:
    body = json.dumps(doc).encode()
    reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
    writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                 f"content-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()
