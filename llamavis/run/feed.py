"""The sources of a batch, pulled one at a time on demand.

A list is read directly; any other iterable (a generator over a million paths, a pipe
still being written) is read by a thread, at most ``read_ahead`` items ahead, so it is
never materialised and a slow reader never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

END = object()  # the sources are exhausted
WAIT = object()  # no source at hand yet: wait for the reader thread


@dataclass
class Failure:
    exc: BaseException


class Feed:
    """Pulls items one at a time on demand; a thread does it for iterators that may block."""

    def __init__(self, sources: Iterable[Any], read_ahead: int = 0) -> None:
        self._threaded = not isinstance(sources, (list, tuple, range))
        self._it: Iterator[Any] = iter(sources)
        if self._threaded:
            self._loop = asyncio.get_running_loop()
            self._queue: asyncio.Queue[Any] = asyncio.Queue()
            self._want = threading.Semaphore(read_ahead)  # items the thread may buffer
            self._closed = False
            threading.Thread(target=self._pull, name="llamavis-sources", daemon=True).start()

    def take_nowait(self) -> Any:
        """The next item, ``END`` or a ``Failure`` if one is at hand, else ``WAIT``."""
        if not self._threaded:
            try:
                return next(self._it)
            except StopIteration:
                return END
            except Exception as exc:
                return Failure(exc)
        if self._queue.empty():
            return WAIT
        self._want.release()
        return self._queue.get_nowait()

    def next(self) -> asyncio.Future[Any]:
        """A future for the next item (only needed for the threaded reader)."""
        self._want.release()
        return asyncio.ensure_future(self._queue.get())

    def close(self) -> None:
        if self._threaded:
            self._closed = True
            self._want.release()

    def _pull(self) -> None:
        while True:
            self._want.acquire()
            if self._closed:
                return
            try:
                item: Any = next(self._it)
            except StopIteration:
                item = END
            except BaseException as exc:
                item = Failure(exc)
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody wants more
                return
            if item is END or isinstance(item, Failure):
                return
