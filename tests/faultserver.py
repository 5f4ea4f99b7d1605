"""A fault-injecting OpenAI-compatible server on 127.0.0.1 for tests of the installed command.

    with FaultServer(transient(every=3)) as server:
        subprocess.run(["llamavis", "caption", *paths, "--base-url", server.url, ...])
        server.count()           # requests received
        server.statuses          # Counter of what was answered ("200", "429", "reset", ...)

A *schedule* decides what each request gets: a ``Fault``, a list of them (handed out in
turn, the last one repeated), or a function of the ``Request`` (its JSON body, headers,
the sha256 of its image, how many times that image was asked for, how many requests are
in flight). Faults cover what real providers do: latency, 429 with Retry-After, 5xx with
each provider's error body, connection resets before and during an answer, in-band error
chunks inside a 200 stream, streams cut before [DONE], streams of keep-alive comments only,
a 200 whose ``finish_reason`` is "error", and silent hangs.

The server is bounded: it runs on its own event loop in a daemon thread, every wait is
capped, and it shuts itself down after ``lifetime`` seconds even if a test forgets to.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

KINDS = ("ok", "status", "reset", "reset_mid", "cut", "stream_error", "keepalive",
         "finish_error", "hang", "drip")


@dataclass
class Fault:
    """What one request gets. ``kind`` is one of KINDS; the other fields tune it."""

    kind: str = "ok"
    text: str = "a test answer"
    finish_reason: str = "stop"
    status: int = 200
    body: Any = None  # error body: dict (JSON), str, or a callable(Request) -> either;
    # stream_error: the chunk's "error" object
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # latency before anything is sent
    comments: int | None = 3  # keepalive: how many ": keep-alive" lines (None: until hung up)
    interval: float = 0.05  # keepalive/drip: seconds between lines
    message: str | Callable[[Request], str] | None = None  # finish_error/stream_error text
    left_open: bool = False  # stream_error: hang up right after the error chunk's data line

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass
class Request:
    """One request as a schedule sees it."""

    index: int  # 0-based, in arrival order
    body: dict[str, Any]
    headers: dict[str, str]
    image: str  # sha256 of the image data URL ("" when the request carries none)
    image_index: int  # 0 for the first image the server saw, 1 for the next new one...
    attempt: int  # 1 for the first request about this image, 2 for its first retry...
    in_flight: int  # requests being answered right now, this one included
    answer: str = ""  # what it got: "200", "429", "reset", "hang"... (set by the server)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def image_bytes(self) -> bytes:
        """The decoded bytes of the request's image data URL (b"" when there is none)."""
        url = image_url(self.body)
        return base64.b64decode(url.split(",", 1)[1]) if url.startswith("data:") else b""

    @property
    def authorization(self) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == "authorization"), "")


Schedule = Callable[[Request], Fault] | Fault | list[Fault]

# -- provider error bodies (../shared/providers.md section 6) ------------------------------

ERROR_BODIES: dict[str, Callable[[int, str], Any]] = {
    "openrouter": lambda status, msg: {"error": {"message": msg, "code": status}},
    "openrouter-raw": lambda status, msg: {"error": {
        "message": "Provider returned error", "code": status,
        "metadata": {"raw": json.dumps({"error": {"message": msg}}),
                     "provider_name": "DeepInfra"}}},
    "openai": lambda status, msg: {"error": {"message": msg, "type": "server_error",
                                             "param": None, "code": status}},
    "vllm-flat": lambda status, msg: {"object": "error", "message": msg,
                                      "type": "BadRequestError", "param": None, "code": status},
    "tgi": lambda status, msg: {"error": msg, "error_type": "validation"},
    "deepinfra": lambda status, msg: {"detail": {"error": msg}},
    "ollama": lambda status, msg: {"error": {"message": msg, "type": "api_error",
                                             "param": None, "code": None}},
    "llamacpp": lambda status, msg: {"error": {"code": status, "message": msg,
                                               "type": "server_error"}},
    "text": lambda status, msg: msg,
}


def error(status: int, shape: str = "openrouter", message: str | None = None,
          retry_after: float | None = None, **kw: Any) -> Fault:
    """An HTTP error answer with one provider's body shape."""
    message = message or f"{HTTPStatus(status).phrase} (injected)"
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return Fault("status", status=status, body=ERROR_BODIES[shape](status, message),
                 headers=headers, **kw)


def echoed(req: Request) -> str:
    """A message repeating the Authorization header, as some servers' errors do."""
    return (f"Invalid header value: Authorization: {req.authorization} "
            f"(key {req.authorization.removeprefix('Bearer ')})")


def echo_key(status: int = 400, kind: str = "status") -> Fault:
    """An error that echoes the key: an HTTP ``status``, or in-band (finish_error/stream_error)."""
    if kind != "status":
        return Fault(kind, message=echoed)
    return Fault("status", status=status,
                 body=lambda req: {"error": {"message": echoed(req), "code": status}})


TRANSIENT = [
    error(429, retry_after=0),
    error(500, "openai"),
    error(502, "openrouter-raw", "upstream overloaded"),
    error(503, "llamacpp", "loading model"),
    Fault("reset"),
    Fault("reset_mid"),
    Fault("cut"),
]


def transient(every: int = 3, faults: list[Fault] | None = None, then: Fault | None = None
              ) -> Callable[[Request], Fault]:
    """Every ``every``-th new image fails its first request; its retries (and all others) succeed.

    The failing images take the ``faults`` in turn, so each kind shows up; an image's
    fate depends only on when the server first saw it, never on chance.
    """
    faults = faults or TRANSIENT
    good = then or Fault()

    def schedule(req: Request) -> Fault:
        if req.attempt == 1 and req.image_index % every == 0:
            return faults[(req.image_index // every) % len(faults)]
        return good
    return schedule


def overloaded(limit: int, then: Fault | None = None, retry_after: float = 0.05
               ) -> Callable[[Request], Fault]:
    """429 whenever more than ``limit`` requests are in flight; otherwise ``then``."""
    good = then or Fault(delay=0.02)

    def schedule(req: Request) -> Fault:
        if req.in_flight > limit:
            return error(429, "openrouter", "Rate limit exceeded: too many requests in flight",
                         retry_after=retry_after)
        return good
    return schedule


# -- answers ---------------------------------------------------------------------------------

def chat_body(text: str, model: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 1610, "completion_tokens": max(1, len(text) // 4)}}


def chunk(model: str, delta: dict[str, Any] | None = None, finish: str | None = None,
          **extra: Any) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    doc = {"id": "gen-fault", "object": "chat.completion.chunk", "model": model,
           "choices": [choice], **extra}
    return f"data: {json.dumps(doc)}\n\n".encode()


def stream_chunks(text: str, model: str, finish_reason: str = "stop") -> list[bytes]:
    words = text.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    out = [chunk(model, {"role": "assistant", "content": ""})]
    out += [chunk(model, {"content": p}) for p in pieces]
    out.append(chunk(model, {}, finish_reason))
    out.append(chunk(model, {"role": "assistant", "content": ""},
                     usage={"prompt_tokens": 1610, "completion_tokens": len(pieces)}))
    return out + [b"data: [DONE]\n\n"]


def image_url(body: dict[str, Any]) -> str:
    """The first image URL in the messages ("" if there is none)."""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = part.get("image_url")
                return str(url.get("url") if isinstance(url, dict) else url)
    return ""


def image_digest(body: dict[str, Any]) -> str:
    """sha256 of the first image URL in the messages ("" if there is none)."""
    url = image_url(body)
    return hashlib.sha256(url.encode()).hexdigest() if url else ""


# -- the server ------------------------------------------------------------------------------

class FaultServer:
    """Serves /v1/chat/completions and /v1/models on 127.0.0.1 with scheduled faults."""

    def __init__(self, schedule: Schedule | None = None, *, lifetime: float = 600.0,
                 max_hang: float = 30.0) -> None:
        self.schedule: Schedule = schedule if schedule is not None else Fault()
        self.lifetime, self.max_hang = lifetime, max_hang
        self.requests: list[Request] = []
        self.statuses: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._attempts: Counter[str] = Counter()
        self._images: dict[str, int] = {}
        self._turn = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._serve, name="faultserver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def count(self, image: str | None = None) -> int:
        """Chat requests received (about one image, when given its digest)."""
        with self._lock:
            return sum(1 for r in self.requests if image is None or r.image == image)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("fault server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended already (lifetime)
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # -- loop side ------------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=256)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(asyncio.TimeoutError):  # or stop by itself
            await asyncio.wait_for(self._stop.wait(), self.lifetime)
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping: end quietly (asyncio would log a cancelled handler)
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.transport.close()

    async def _one_request(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is to be dropped."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), 0))
        raw = await reader.readexactly(length) if length else b""
        if method == "GET" and path.rstrip("/").endswith("/models"):
            models = {"object": "list", "data": [{"id": "m", "object": "model"}]}
            await self._json(writer, 200, models)
            return True
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await self._json(writer, 404, {"error": {"message": f"no route {path}"}})
            return True
        body = json.loads(raw or b"{}")
        req, fault = self._admit(body, headers)
        try:
            return await self._answer(req, fault, writer)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _admit(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[Request, Fault]:
        digest = image_digest(body)
        with self._lock:
            self._attempts[digest] += 1
            self._images.setdefault(digest, len(self._images))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            req = Request(len(self.requests), body, headers, digest, self._images[digest],
                          self._attempts[digest], self.in_flight)
            self.requests.append(req)
            fault = self._pick(req)
            req.answer = fault.kind if fault.kind not in ("ok", "status") else str(fault.status)
            self.statuses[req.answer] += 1
        return req, fault

    def _pick(self, req: Request) -> Fault:
        if isinstance(self.schedule, Fault):
            return self.schedule
        if isinstance(self.schedule, list):
            fault = self.schedule[min(self._turn, len(self.schedule) - 1)]
            self._turn += 1
            return fault
        return self.schedule(req)

    async def _answer(self, req: Request, fault: Fault, writer: asyncio.StreamWriter) -> bool:
        if fault.delay:
            await asyncio.sleep(min(fault.delay, self.max_hang))
        model = str(req.body.get("model") or "m")
        kind = fault.kind
        if kind == "hang":
            await self._hang(writer)
            return False
        if kind == "reset":
            _reset(writer)
            return False
        if kind == "status":
            body = fault.body(req) if callable(fault.body) else fault.body
            await self._json(writer, fault.status, body, fault.headers)
            return True
        if kind == "finish_error":
            doc = chat_body("", model, "error")
            doc["choices"][0]["error"] = {
                "message": _message(fault, req, "Upstream provider failed mid-generation"),
                "code": 502}
            await self._json(writer, 200, doc)
            return True
        if not req.stream:
            return await self._plain(writer, fault, model, req)
        return await self._stream(writer, fault, model, req)

    async def _plain(self, writer: asyncio.StreamWriter, fault: Fault, model: str,
                     req: Request) -> bool:
        data = json.dumps(chat_body(fault.text, model, fault.finish_reason)).encode()
        if fault.kind == "ok":
            await self._json(writer, 200, data)
            return True
        if fault.kind == "drip":  # every read gets a few bytes: only a whole-request limit ends it
            writer.write(_head(200, "application/json", {"Content-Length": str(len(data))}))
            deadline = asyncio.get_running_loop().time() + self.max_hang
            for start in range(0, len(data), 4):
                writer.write(data[start:start + 4])
                await writer.drain()
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(fault.interval)
            return True
        if fault.kind in ("cut", "reset_mid"):  # the body stops half-way
            writer.write(_head(200, "application/json", {"Content-Length": str(len(data))}))
            writer.write(data[: len(data) // 2])
            await writer.drain()
            if fault.kind == "reset_mid":
                _reset(writer)
            else:
                writer.close()
            return False
        # stream-only faults asked of a non-streaming request: an SSE body it cannot use
        return await self._stream(writer, fault, model, req)

    async def _stream(self, writer: asyncio.StreamWriter, fault: Fault, model: str,
                      req: Request) -> bool:
        writer.write(_head(200, "text/event-stream", {"Connection": "close",
                                                      "Cache-Control": "no-cache"}))
        chunks = stream_chunks(fault.text, model, fault.finish_reason)
        kind = fault.kind
        if kind == "keepalive":
            sent = 0
            while fault.comments is None or sent < fault.comments:
                writer.write(b": keep-alive\n\n")
                await writer.drain()
                sent += 1
                if fault.comments is None and sent * fault.interval > self.max_hang:
                    break
                await asyncio.sleep(fault.interval)
        elif kind in ("cut", "reset_mid"):
            for piece in chunks[:2]:
                writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
            if kind == "reset_mid":
                _reset(writer)
                return False
        elif kind == "stream_error":
            writer.write(b": OPENROUTER PROCESSING\n\n" + chunks[0] + chunks[1])
            error = fault.body if isinstance(fault.body, dict) else {
                "code": "server_error",
                "message": _message(fault, req, "Provider disconnected unexpectedly"),
                "metadata": {"provider_name": "Lambda"}}
            last = chunk(model, {"content": ""}, "error", error=error)
            writer.write(last[:-1] if fault.left_open else last)  # no blank line after it
        else:  # ok, drip
            for piece in chunks:
                writer.write(piece)
                if kind == "drip":
                    await writer.drain()
                    await asyncio.sleep(fault.interval)
        await writer.drain()
        writer.close()
        return False

    async def _hang(self, writer: asyncio.StreamWriter) -> None:
        """Say nothing until the client hangs up, the server stops, or max_hang passes."""
        assert self._stop is not None
        deadline = asyncio.get_running_loop().time() + self.max_hang
        while not self._stop.is_set() and not writer.transport.is_closing():
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        writer.transport.abort()

    async def _json(self, writer: asyncio.StreamWriter, status: int, body: Any,
                    headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes):
            data, ctype = body, "application/json"
        elif isinstance(body, str):
            data, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        writer.write(_head(status, ctype, {"Content-Length": str(len(data)), **(headers or {})}))
        writer.write(data)
        await writer.drain()


def _head(status: int, ctype: str, headers: dict[str, str]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    lines = [f"HTTP/1.1 {status} {phrase}", f"Content-Type: {ctype}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _message(fault: Fault, req: Request, default: str) -> str:
    if callable(fault.message):
        return fault.message(req)
    return fault.message or default


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed proxy does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
