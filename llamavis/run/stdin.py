"""Standard input as a run reads it: once, its bytes handed again to every later reader.

An image given as ``-`` is read by the sidecar namer, the cache lookup, each route of a
failover and each Roboflow step: all of them get the same bytes, read from the stream once.
"""

from __future__ import annotations

import threading
from typing import Any, BinaryIO, cast


class ReadOnce:
    """A byte stream read once; every later ``read`` gives the same bytes again (thread-safe)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream: Any = getattr(stream, "buffer", stream)
        self._data: bytes | None = None
        self._lock = threading.Lock()

    def read(self, size: int = -1) -> bytes:
        with self._lock:
            if self._data is None:
                self._data = self._stream.read(size)
            return self._data

    def isatty(self) -> bool:
        return bool(self._stream.isatty())


def read_once(stream: BinaryIO | None) -> BinaryIO | None:
    """``stream`` wrapped so that it is read once (None stays None; a wrapped one is kept)."""
    if stream is None or isinstance(stream, ReadOnce):
        return stream
    return cast(BinaryIO, ReadOnce(stream))
