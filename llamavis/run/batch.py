"""Many images through one per-image coroutine: bounded concurrency, ordering, budget.

``run_batch`` prints nothing: results go to ``on_result`` as they finish, progress to
``on_progress``. Sources are pulled lazily, one whenever a slot frees, so a generator
over a million paths (or a pipe that is still being written) is never materialised.

How a batch ends:

- every source done: a ``BatchSummary`` is returned;
- ``--max-cost`` reached: no new request starts, in-flight work finishes, the summary says
  ``stopped_reason="max_cost"`` (with a budget, the first request runs alone: until one
  answer says what a request costs, a first wave of ``concurrency`` could overshoot it).
  Past the budget, the remaining sources are still offered to ``cached`` (when given):
  an answer already stored costs nothing, so it is delivered; only the rest are refused;
- ``run_one`` raises a ``ConfigError`` (``AuthError``: the key is wrong) or a
  ``UsageError``: in-flight work is cancelled, what finished is delivered, the error is
  re-raised with ``.summary`` attached;
- cancellation or Ctrl-C: the same, then ``Interrupted`` (exit 130) is raised; with a
  ``grace``, the answers in flight are waited for that long first (paid for: kept).

Any other exception from ``run_one`` becomes a failed ``Result`` for that image.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from llamavis.errors import ConfigError, Interrupted
from llamavis.run.feed import Feed
from llamavis.run.scheduler import FATAL, ORDER_WINDOW, Scheduler
from llamavis.run.summary import BatchSummary, ProgressEvent
from llamavis.types import Result

__all__ = ["FATAL", "ORDER_WINDOW", "BatchSummary", "ProgressEvent", "run_batch"]


def _attach(exc: BaseException, summary: BatchSummary) -> BaseException:
    """Give a batch-ending error the summary of what finished (for --usage and exit notes)."""
    exc.summary = summary  # type: ignore[attr-defined]
    return exc


async def _interrupted(batch: Scheduler, grace: float,
                       grace_timer: Callable[[float], Awaitable[Any]],
                       on_interrupt: Callable[[int, float], None] | None) -> BaseException:
    """Cancelled: keep what the requests in flight answer within ``grace`` (cancelled again:
    stop at once), deliver what finished; the error to raise, its summary attached."""
    if grace > 0 and batch.in_flight:
        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):  # stop now
            await batch.drain(grace, grace_timer, on_interrupt)
    fatal = await batch.abort()
    if fatal is not None:
        return _attach(fatal, batch.finish_summary("auth"))
    err = Interrupted("interrupted", hint="finished results were kept; re-run to resume")
    return _attach(err, batch.finish_summary("interrupted"))


async def run_batch(
    sources: Iterable[Any],
    run_one: Callable[[Any], Awaitable[Result]],
    *,
    concurrency: int = 4,
    on_result: Callable[[Result], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    ordered: bool = False,
    max_cost: float | None = None,
    total: int | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    task: str = "",
    cached: Callable[[Any], Awaitable[Result | None]] | None = None,
    grace: float = 0.0,
    on_interrupt: Callable[[int, float], None] | None = None,
    grace_timer: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> BatchSummary:
    """Run ``run_one`` over every source with at most ``concurrency`` in flight.

    A source is usually a path or URL; whatever it is, ``str(source)`` names it.
    Cancelled (Ctrl-C), with ``grace`` > 0 the batch starts nothing new and waits up to
    ``grace`` seconds (``grace_timer``) for the answers in flight, telling
    ``on_interrupt(in_flight, grace)``; cancelled again, it stops at once.
    """
    if total is None and isinstance(sources, (list, tuple, range)):
        total = len(sources)
    batch = Scheduler(
        run_one, concurrency=concurrency, on_result=on_result, on_start=on_start,
        ordered=ordered, max_cost=max_cost, total=total, on_progress=on_progress,
        clock=clock, task=task, cached=cached,
    )  # fmt: skip
    feed = Feed(sources, read_ahead=concurrency)
    try:
        await batch.run(feed)
    except FATAL as exc:
        await batch.abort()
        _attach(exc, batch.finish_summary("auth" if isinstance(exc, ConfigError) else "usage"))
        raise
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise await _interrupted(batch, grace, grace_timer, on_interrupt) from None
    except Exception:
        with contextlib.suppress(Exception):
            await batch.abort()  # e.g. the source iterator failed: still deliver what finished
        raise
    finally:
        feed.close()
        batch.cancel_all()
    return batch.finish_summary(None)
