"""Server-sent events, decoded in layers, and chat-completion chunks assembled into one answer.

bytes --LineDecoder--> lines --EventDecoder--> ServerSentEvent --ChatStream--> text pieces

Each layer is incremental: input may be split anywhere (mid-line, mid-CRLF, mid-UTF-8
character). Framing follows the WHATWG server-sent events spec: lines end in CRLF, LF or
a lone CR; lines starting with ``:`` are comments (OpenRouter's ``: OPENROUTER
PROCESSING`` keep-alives); several ``data:`` lines join with ``\\n``; a blank line
dispatches the event. The spec drops an event that no blank line closed before the stream
ended; here it is handed on marked ``closed=False``, because a server that ends a stream
with an error often closes the connection right after the error's ``data:`` line, and
ChatStream keeps such an event when its data is a whole JSON object (a cut one is not).
"""

from __future__ import annotations

import codecs
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any

from llamavis.backends.errors import error_from_chunk, in_band_error
from llamavis.errors import ProviderError

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its type (``event:``), joined data, and last id."""

    data: str
    event: str | None = None
    id: str | None = None
    closed: bool = True  # False: the stream ended before a blank line closed the event


class LineDecoder:
    """Bytes in, complete text lines out (without their line endings)."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._after_cr = False  # the last text ended in CR: a leading LF belongs to it

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by this chunk of bytes."""
        return self._split(self._utf8.decode(data))

    def close(self) -> list[str]:
        """The last, unterminated line (if any) once the stream has ended."""
        lines = self._split(self._utf8.decode(b"", final=True))
        if self._partial:
            lines.append(self._partial)
            self._partial = ""
        return lines

    def _split(self, text: str) -> list[str]:
        if not text:
            return []
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        *complete, self._partial = _LINE_END.split(self._partial + text)
        return complete


class EventDecoder:
    """Lines in, events out: comments skipped, ``data`` lines joined, blank line dispatches."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._last_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """The event a blank line completes, else None."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None  # "retry" and unknown fields are ignored

    def flush(self) -> ServerSentEvent | None:
        """The event still open when the stream ended (no blank line closed it), if any."""
        return self._dispatch(closed=False)

    def _dispatch(self, closed: bool = True) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], None
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or None, self._last_id, closed)


class SSEDecoder:
    """Bytes in, events out: a LineDecoder feeding an EventDecoder."""

    def __init__(self) -> None:
        self._lines = LineDecoder()
        self._events = EventDecoder()

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """The events completed by this chunk of bytes."""
        return self._collect(self._lines.feed(data))

    def close(self) -> list[ServerSentEvent]:
        """Events completed by the final bytes, then the one left open (``closed=False``)."""
        events = self._collect(self._lines.close())
        left_open = self._events.flush()
        return [*events, left_open] if left_open is not None else events

    def _collect(self, lines: list[str]) -> list[ServerSentEvent]:
        events = (self._events.feed(line) for line in lines)
        return [event for event in events if event is not None]


async def aiter_events(chunks: AsyncIterable[bytes]) -> AsyncGenerator[ServerSentEvent, None]:
    """Decode a byte stream into server-sent events as they complete."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event


class ChatStream:
    """Assembles streamed chat-completion chunks into one answer.

    Complete once ``[DONE]`` arrived, or once a chunk carried a ``finish_reason``
    (transformers serve sends no ``[DONE]``); keep feeding after ``finish_reason``:
    the usage chunk comes later (OpenRouter: with non-empty ``choices``; others
    ``choices: []``). An in-band error raises ProviderError.
    """

    def __init__(self, provider: str, now: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.now = now  # wall clock, for an X-RateLimit-Reset inside an error chunk
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.done = False  # [DONE] seen: nothing more to read

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def complete(self) -> bool:
        return self.done or self.finish_reason is not None

    def feed(self, event: ServerSentEvent) -> str:
        """Take one event; return the answer text it adds ("" for none)."""
        if event.data.strip() == "[DONE]":
            self.done = True
            return ""
        if not event.closed and not _is_json_object(event.data):
            return ""  # the stream was cut inside this event: it says nothing whole
        chunk = self._parse(event.data)
        # {"error": ...}; old vLLM's flat {"object": "error", "message": ...}; event: error
        if (error := in_band_error(chunk)) is not None or event.event == "error":
            raise error_from_chunk(error or chunk, self.provider, now=self.now())
        self.id = self.id or _str_or_none(chunk.get("id"))
        self.model = self.model or _str_or_none(chunk.get("model"))
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        return self._take_choice(chunk.get("choices"))

    def _take_choice(self, choices: Any) -> str:
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(piece, str) and piece:
            self.parts.append(piece)
            return piece
        return ""

    def _parse(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            raise ProviderError(
                f"{self.provider} sent a stream chunk that is not a JSON object: {data[:80]!r}",
                provider=self.provider,
                retryable=True,
            )
        return chunk


def _is_json_object(data: str) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except json.JSONDecodeError:
        return False


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
