"""Gather concurrent requests into batches for one worker thread that owns the model.

The batch engine runs ``-j`` requests at once; each ``chat()`` call submits one ``Job``. The
worker takes the oldest job, then the queued jobs that can share its ``generate`` call (same
sampling settings: ``Job.key``) up to the batch size, waiting a moment for stragglers only
while the batch is not full. Jobs with other settings wait for a later batch, in order.

The worker is a daemon thread of its own (not asyncio's executor, which the interpreter would
wait for on Ctrl-C) and starts the engine itself, so loading the model never blocks the event
loop. If starting fails (no model, no extra), every job, queued now or later, gets that error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from llamavis.engine.jobs import Job
from llamavis.types import Completion

GATHER_S = 0.03  # wait this long for one more request while a batch is not full...
MAX_GATHER_S = 0.3  # ...but never longer than this in all
_STOP = object()


class MicroBatcher:
    """Feeds jobs to ``run`` in batches of at most the size ``start`` returns."""

    def __init__(self, start: Callable[[], int], run: Callable[[list[Job]], None], *,
                 gather_s: float = GATHER_S, max_gather_s: float = MAX_GATHER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._start, self._run = start, run
        self._gather_s, self._max_gather_s, self._clock = gather_s, max_gather_s, clock
        self._queue: queue.Queue[object] = queue.Queue()
        self._pending: deque[Job] = deque()  # taken from the queue, waiting for a matching batch
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def submit(self, job: Job) -> Future[Completion]:
        """Queue a job; its future resolves when its batch has run."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="llamavis-engine",
                                                daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Let the worker finish the batch in hand and exit (queued jobs are cancelled)."""
        self._queue.put(_STOP)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the worker to exit (after close())."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        try:
            size = self._start()
        except BaseException as exc:  # noqa: BLE001 - every job hears why, in its own future
            self._fail_all(exc)
            return
        while (batch := self._next_batch(size)) is not None:
            live = [job for job in batch if not job.cancelled.is_set()
                    and job.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                self._run(live)
            except BaseException as exc:  # noqa: BLE001 - reported through the futures
                for job in live:
                    job.finish(exc)
        self._cancel_rest()

    def _next_batch(self, size: int) -> list[Job] | None:
        first = self._pending.popleft() if self._pending else self._take(None)
        if first is None:
            return None
        batch = [first]
        for waiting in list(self._pending):
            if len(batch) < size and waiting.key == first.key:
                self._pending.remove(waiting)
                batch.append(waiting)
        deadline = self._clock() + self._max_gather_s
        while len(batch) < size and not self._stopping:
            # What is queued already joins at once; then wait a moment for stragglers.
            job = self._take(max(0.0, min(self._gather_s, deadline - self._clock())))
            if job is None:
                break
            if job.key == first.key:
                batch.append(job)
            else:
                self._pending.append(job)
        return batch

    def _take(self, timeout: float | None) -> Job | None:
        """The next queued job; None on timeout or once close() was called."""
        if self._stopping:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _STOP:
            self._stopping = True
            return None
        assert isinstance(item, Job)
        return item

    def _fail_all(self, exc: BaseException) -> None:
        for job in self._pending:
            job.finish(exc)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Job)
            item.finish(exc)

    def _cancel_rest(self) -> None:
        rest = list(self._pending)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job):
                rest.append(item)
        for job in rest:
            job.future.cancel()
