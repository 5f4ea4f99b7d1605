"""The scheduler of one batch: which source starts when, what each finish counts, in
which order results are delivered, and how in-flight work is stopped (llamavis.run.batch
says how a batch ends)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from llamavis.errors import ConfigError, LlamavisError, UsageError
from llamavis.run.feed import END, WAIT, Failure, Feed
from llamavis.run.summary import BatchSummary, ProgressEvent
from llamavis.types import Result

FATAL = (ConfigError, UsageError)  # not about one image: stop the whole batch
ORDER_WINDOW = 4  # ordered mode starts work at most ORDER_WINDOW * concurrency ahead


class Scheduler:
    """One batch's state: what is in flight, what finished, what the budget allows next."""

    def __init__(
        self, run_one: Callable[[Any], Awaitable[Result]], *, concurrency: int,
        on_result: Callable[[Result], None] | None, on_start: Callable[[str], None] | None,
        ordered: bool, max_cost: float | None, total: int | None,
        on_progress: Callable[[ProgressEvent], None] | None, clock: Callable[[], float],
        task: str, cached: Callable[[Any], Awaitable[Result | None]] | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, not {concurrency}")
        self.run_one = run_one
        self.concurrency = concurrency
        self.on_result, self.on_start, self.on_progress = on_result, on_start, on_progress
        self.ordered, self.max_cost, self.total = ordered, max_cost, total
        self.clock, self.task = clock, task
        self.start = clock()
        self.in_flight: dict[asyncio.Task[Result | None], int] = {}
        self.buffer: dict[int, Result | None] = {}  # ordered mode: finished, not yet delivered
        self.started = self.next_delivery = 0
        self.summary = BatchSummary(0, 0, 0, 0)
        self.paid = 0  # finished results that sent requests (they cost money)
        self.exhausted = False
        self.budget_blocked = False
        self.cached = cached  # source -> stored Result or None, sending nothing
        self.refused = 0  # sources not asked about because of the budget

    async def run(self, sources: Feed) -> None:
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                while pending is None and self._may_start():
                    item = sources.take_nowait()
                    if item is WAIT:
                        pending = sources.next()
                    else:
                        self._begin(item)
                waiting = set(self.in_flight) | ({pending} if pending else set())
                if not waiting:
                    if self.budget_blocked and not self.exhausted:
                        await self._look_for_more(sources)
                    return
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if pending in done:
                    item, pending = pending.result(), None
                    self._begin(item)
                for task in [t for t in self.in_flight if t in done]:
                    self._finish(task)
        finally:
            if pending is not None:
                pending.cancel()

    async def _look_for_more(self, sources: Feed) -> None:
        """Stopped by the budget: find out whether any source was left (else the batch is done)."""
        item = sources.take_nowait()
        if item is WAIT:
            item = await sources.next()
        self.exhausted = item is END

    def _may_start(self) -> bool:
        if self.exhausted or len(self.in_flight) >= self.concurrency:
            return False
        if self.ordered and self.started - self.next_delivery >= ORDER_WINDOW * self.concurrency:
            return False
        if self._over_budget():
            self.budget_blocked = True
            return self.cached is not None  # past the budget only cached answers are taken
        # With a budget, until one answer says what a request costs: one at a time.
        return self.max_cost is None or self.paid > 0 or not self.in_flight

    def _over_budget(self) -> bool:
        if self.max_cost is None:
            return False
        spent = self.summary.usage.cost_usd or 0.0
        if spent >= self.max_cost:
            return True
        average = spent / self.paid if self.paid else 0.0
        return spent + (len(self.in_flight) + 1) * average > self.max_cost

    def _begin(self, item: Any) -> None:
        if isinstance(item, Failure):
            raise item.exc
        if item is END:
            self.exhausted = True
            return
        if self.on_start is not None:
            self.on_start(str(item))
        if self.cached is not None and self._over_budget():
            task = asyncio.ensure_future(self.cached(item))  # may be None: refused
        else:
            task = asyncio.ensure_future(self._call(item))
        self.in_flight[task] = self.started
        self.started += 1

    async def _call(self, source: Any) -> Result:
        started = self.clock()
        try:
            return await self.run_one(source)
        except FATAL:
            raise
        except LlamavisError as exc:
            return self._failed(str(source), exc.to_dict(), started)
        except Exception as exc:  # a bug, not the provider's doing: say what it was
            message = f"internal error: {type(exc).__name__}: {exc}".rstrip(": ")
            return self._failed(str(source), {"kind": "provider", "message": message}, started)

    def _failed(self, source: str, error: dict[str, str], started: float) -> Result:
        return Result(image=source, task=self.task, error=error, elapsed_s=self.clock() - started)

    def _finish(self, task: asyncio.Task[Result | None]) -> None:
        """Count and deliver one finished task; a fatal error propagates."""
        index = self.in_flight.pop(task)
        result = task.result()
        if result is None:  # past the budget and not in the cache
            self.refused += 1
            self._deliver(index, None)
            return
        s = self.summary
        s.total += 1
        if result.ok:
            s.succeeded += 1
        else:
            s.failed += 1
        if result.cached:
            s.cached += 1
        else:
            self.paid += result.attempts > 0
            s.usage = s.usage + result.usage
        self._deliver(index, result)
        if self.on_progress is not None:
            self.on_progress(self._progress())

    def _deliver(self, index: int, result: Result | None) -> None:
        if not self.ordered:
            self._emit(result)
            return
        self.buffer[index] = result
        while self.next_delivery in self.buffer:
            ready = self.buffer.pop(self.next_delivery)
            self.next_delivery += 1
            self._emit(ready)

    def _emit(self, result: Result | None) -> None:
        if self.on_result is not None and result is not None:
            self.on_result(result)

    def _progress(self) -> ProgressEvent:
        s = self.summary
        return ProgressEvent(
            done=s.total, failed=s.failed, cached=s.cached, total=self.total,
            in_flight=len(self.in_flight), usage=s.usage, elapsed_s=self.clock() - self.start,
        )  # fmt: skip

    async def abort(self) -> BaseException | None:
        """Cancel in-flight work, deliver whatever finished; return a fatal error met."""
        tasks = list(self.in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        fatal: BaseException | None = None
        for task in tasks:
            if task.cancelled():
                self.in_flight.pop(task)
            elif isinstance(task.exception(), FATAL):
                fatal = fatal or task.exception()
                self.in_flight.pop(task)
            else:
                self._finish(task)
        if self.ordered:  # cancelled items leave gaps: deliver the rest, still in input order
            for index in sorted(self.buffer):
                self._emit(self.buffer.pop(index))
        return fatal

    async def drain(self, grace: float, timer: Callable[[float], Awaitable[Any]],
                    on_interrupt: Callable[[int, float], None] | None) -> None:
        """Interrupted: start nothing new, keep what the requests in flight answer within
        ``grace`` seconds (their answers were paid for). A fatal error among them, the
        grace running out, or a second cancellation (raised) ends the wait."""
        self.exhausted = True
        if on_interrupt is not None:
            on_interrupt(len(self.in_flight), grace)
        clock = asyncio.ensure_future(timer(grace))
        try:
            while self.in_flight:
                done, _ = await asyncio.wait({*self.in_flight, clock},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in [t for t in self.in_flight if t in done]:
                    if not task.cancelled() and isinstance(task.exception(), FATAL):
                        return  # left in flight: abort() raises it
                    self._finish(task)
                if clock in done:
                    return
        finally:
            clock.cancel()

    def cancel_all(self) -> None:
        """Last resort when a callback failed: stop whatever still runs, deliver nothing."""
        for task in self.in_flight:
            task.cancel()

    def finish_summary(self, reason: str | None) -> BatchSummary:
        self.summary.elapsed_s = self.clock() - self.start
        unstarted = not self.exhausted and (self.total is None or self.started < self.total)
        if reason is None and self.budget_blocked and (unstarted or self.refused):
            reason = "max_cost"
        self.summary.stopped_reason = reason
        return self.summary
