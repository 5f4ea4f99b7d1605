"""When to try a request again, how long to wait, and how many requests to keep in flight.

Hand-written rather than tenacity/stamina: the policy is a dozen lines, the wait must come
from the failed answer (Retry-After, X-RateLimit-Reset) as often as from a backoff curve,
and the sleep function is a plain injected coroutine so tests never sleep.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from llamavis.errors import LlamavisError, NetworkError, ProviderError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry what is marked retryable: the server's wait if it names one, else backoff."""

    max_retries: int = 2
    base: float = 0.5
    max_backoff: float = 8.0
    # A server asking for a longer wait than this (a daily quota, say) is not retried:
    # the error reaches the user at once, carrying retry_after.
    max_wait: float = 60.0
    random: Callable[[], float] = random.random

    def delay(self, retries_done: int, error: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if (retries_done >= self.max_retries or not isinstance(error, LlamavisError)
                or not error.retryable):
            return None
        asked = error.retry_after if isinstance(error, (ProviderError, NetworkError)) else None
        if asked is not None:
            return float(asked) if asked <= self.max_wait else None
        # Exponential backoff with full jitter: uniform in [0, min(0.5 * 2**n, 8)].
        return self.random() * min(self.base * 2.0**retries_done, self.max_backoff)


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_retry: Callable[[int, LlamavisError, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds or the policy gives up; re-raise the last error."""
    retries = 0
    while True:
        try:
            return await attempt()
        except LlamavisError as exc:
            wait = policy.delay(retries, exc)
            if wait is None:
                raise
            retries += 1
            if on_retry is not None:
                on_retry(retries, exc, wait)
            await sleep(wait)


class AdaptiveLimiter:
    """Bounds requests in flight, AIMD style: halve on 429, +1 per ``grow_after`` successes.

    ``async with limiter as ticket:`` holds one slot; report the outcome with
    ``succeeded()`` or ``rate_limited(ticket)``. 429s from requests that started before
    the last cut are one burst, so they halve the limit once, not once each; but each
    also says one fewer request was accepted, so the limit never stays above the burst's
    size minus its refusals (16 sent, 12 refused: 4, not 8 and a second burst).
    """

    def __init__(self, limit: int, *, grow_after: int = 10) -> None:
        self.max = max(1, int(limit))
        self.current = self.max
        self.in_flight = 0
        self.grow_after = max(1, grow_after)
        self._successes = 0
        self._epoch = 0
        self._burst = self.max  # the limit in force when the last cut happened
        self._refused = 0  # 429s counted against that burst
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimiter(current={self.current}, max={self.max}, in_flight={self.in_flight})"
        )

    async def __aenter__(self) -> int:
        while self.in_flight >= self.current:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the wake-up this task can no longer use
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.in_flight += 1
        return self._epoch

    async def __aexit__(self, *exc_info: object) -> None:
        self.in_flight -= 1
        self._wake()

    def succeeded(self) -> None:
        """One request succeeded: after ``grow_after`` of them, allow one more in flight."""
        self._successes += 1
        if self._successes >= self.grow_after and self.current < self.max:
            self.current += 1
            self._successes = 0
            self._wake()

    def rate_limited(self, ticket: int | None = None) -> None:
        """A request got 429: halve the limit (at least 1) once per burst, then one less each."""
        if ticket is None or ticket == self._epoch:
            self._burst, self._refused = self.current, 0
            self.current = max(1, self.current // 2)
            self._epoch += 1
            self._successes = 0
        elif ticket != self._epoch - 1:
            return  # from an older burst, already accounted for
        self._refused += 1
        self.current = max(1, min(self.current, self._burst - self._refused))

    def _wake(self) -> None:
        free = self.current - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
