"""Batches: bounded concurrency, delivery, ordering, budget, auth stops, interrupts."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from llamavis.errors import AuthError, ImageError, Interrupted
from llamavis.run.batch import ORDER_WINDOW, ProgressEvent, run_batch
from llamavis.types import Result, Usage


def answer(src: str, cost: float | None = 0.01, cached: bool = False) -> Result:
    return Result(image=src, task="caption", output=f"answer for {src}",
                  usage=Usage(10, 2, cost), cached=cached, attempts=0 if cached else 1)  # fmt: skip


def paths(n: int) -> list[str]:
    return [f"img{i:04d}.jpg" for i in range(n)]


class Tracker:
    """A fake run_one that yields a few times and records how many run at once."""

    def __init__(self, seed: int = 1, **answer_kw) -> None:
        self.rng = random.Random(seed)
        self.in_flight = self.max_in_flight = 0
        self.started: list[str] = []
        self.finished: list[str] = []
        self.answer_kw = answer_kw

    async def __call__(self, src: str) -> Result:
        self.started.append(src)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(self.rng.randrange(8)):
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        self.finished.append(src)
        return answer(src, **self.answer_kw)


def test_400_images_each_get_their_own_answer_with_at_most_j_in_flight() -> None:
    fake, got = Tracker(), []
    summary = asyncio.run(run_batch(paths(400), fake, concurrency=16,
                                    on_result=got.append))  # fmt: skip
    assert fake.max_in_flight == 16
    assert sorted(r.image for r in got) == paths(400)
    assert all(r.output == f"answer for {r.image}" for r in got)
    assert (summary.total, summary.succeeded, summary.failed) == (400, 400, 0)
    assert summary.usage.prompt_tokens == 4000 and summary.stopped_reason is None


def test_ordered_mode_delivers_in_input_order_with_bounded_lookahead() -> None:
    fake, got, ahead = Tracker(seed=7), [], []

    def on_start(src: str) -> None:
        ahead.append(int(src[3:7]) - len(got))

    asyncio.run(run_batch(paths(200), fake, concurrency=4, ordered=True,
                          on_result=got.append, on_start=on_start))  # fmt: skip
    assert [r.image for r in got] == paths(200)
    assert fake.finished != paths(200)  # they really finished out of order
    assert max(ahead) <= ORDER_WINDOW * 4


def test_generator_source_is_pulled_lazily() -> None:
    pulled = []

    def gen():
        for p in paths(1000):
            pulled.append(p)
            yield p

    seen_at_first_result = []

    def on_result(r: Result) -> None:
        seen_at_first_result.append(len(pulled))

    asyncio.run(run_batch(gen(), Tracker(), concurrency=4, on_result=on_result))
    assert seen_at_first_result[0] <= 4 + 1 + 4  # in flight, next, read ahead
    assert len(seen_at_first_result) == 1000


def test_a_blocking_source_does_not_hold_back_finished_results() -> None:
    release = threading.Event()

    def slow_pipe():
        yield "a.jpg"
        yield "b.jpg"
        assert release.wait(timeout=120), "results were not delivered while the source blocked"
        yield "c.jpg"

    got: list[str] = []

    def on_result(r: Result) -> None:
        got.append(r.image)
        if len(got) == 2:
            release.set()

    asyncio.run(run_batch(slow_pipe(), Tracker(), concurrency=4, on_result=on_result))
    assert sorted(got) == ["a.jpg", "b.jpg", "c.jpg"]


def test_unexpected_errors_become_failed_results_and_the_batch_goes_on() -> None:
    async def flaky(src: str) -> Result:
        if src == "img0001.jpg":
            raise RuntimeError("boom")
        if src == "img0002.jpg":
            raise ImageError("img0002.jpg: not an image")
        return answer(src)

    got: list[Result] = []
    summary = asyncio.run(run_batch(paths(5), flaky, on_result=got.append, task="ocr"))
    errors = {r.image: r.error for r in got if r.error}
    assert errors == {
        "img0001.jpg": {"kind": "provider", "message": "internal error: RuntimeError: boom"},
        "img0002.jpg": {"kind": "bad_image", "message": "img0002.jpg: not an image"},
    }
    assert all(r.task == "ocr" for r in got if r.error)
    assert (summary.total, summary.succeeded, summary.failed) == (5, 3, 2)


def test_max_cost_stops_starting_new_requests_and_keeps_what_finished() -> None:
    fake, got = Tracker(), []
    summary = asyncio.run(run_batch(paths(100), fake, concurrency=4, max_cost=0.05,
                                    on_result=got.append))  # fmt: skip
    assert summary.stopped_reason == "max_cost"
    assert len(got) == len(fake.started) == summary.total < 10
    assert summary.usage.cost_usd <= 0.05 + 4 * 0.01


@pytest.mark.parametrize(("n", "reason"), [(3, "max_cost"), (2, None)])
def test_max_cost_is_reported_only_when_something_was_left(n: int, reason) -> None:
    summary = asyncio.run(run_batch(paths(n), Tracker(), concurrency=1, max_cost=0.02))
    assert summary.total == 2 and summary.stopped_reason == reason


def test_a_streamed_source_that_ends_exactly_at_the_budget_was_not_stopped() -> None:
    # A piped path list arrives as an iterator of unknown length: reaching the budget on
    # its last image leaves nothing unstarted, so the batch was not cut short.
    summary = asyncio.run(run_batch(iter(paths(2)), Tracker(), concurrency=1, max_cost=0.02))
    assert (summary.total, summary.stopped_reason) == (2, None)
    summary = asyncio.run(run_batch(iter(paths(3)), Tracker(), concurrency=1, max_cost=0.02))
    assert (summary.total, summary.stopped_reason) == (2, "max_cost")


def test_max_cost_is_not_overshot_by_a_first_wave_of_concurrent_requests() -> None:
    # Until one answer says what a request costs, only one request is in flight.
    fake = Tracker()
    summary = asyncio.run(run_batch(paths(100), fake, concurrency=16, max_cost=0.025))
    assert summary.stopped_reason == "max_cost"
    assert summary.usage.cost_usd == pytest.approx(0.02)
    assert len(fake.started) == 2


def test_cached_results_cost_nothing_against_the_budget() -> None:
    fake = Tracker(cost=1.0, cached=True)
    summary = asyncio.run(run_batch(paths(20), fake, concurrency=4, max_cost=0.5))
    assert (summary.total, summary.cached, summary.stopped_reason) == (20, 20, None)
    assert summary.usage.cost_usd is None


@pytest.mark.parametrize("ordered", [False, True])
def test_past_the_budget_cached_answers_are_still_delivered_and_only_the_rest_refused(ordered):
    stored = set(paths(30)[::3])  # every third image is in the cache

    async def cached(src: str) -> Result | None:
        await asyncio.sleep(0)
        return answer(src, cached=True) if src in stored else None

    fake, got = Tracker(), []
    summary = asyncio.run(run_batch(paths(30), fake, concurrency=4, max_cost=0.0, ordered=ordered,
                                    on_result=got.append, cached=cached))  # fmt: skip
    assert fake.started == []  # nothing paid for
    expected = [src for src in paths(30) if src in stored]
    images = [r.image for r in got]
    assert (images if ordered else sorted(images)) == expected
    assert (summary.total, summary.cached, summary.stopped_reason) == (10, 10, "max_cost")


def test_auth_error_stops_the_batch_and_is_reraised() -> None:
    fake, got, cancelled = Tracker(), [], []

    async def run_one(src: str) -> Result:
        if src == "img0005.jpg":
            raise AuthError("openrouter rejected the key (401)", status=401)
        try:
            return await fake(src)
        except asyncio.CancelledError:
            cancelled.append(src)
            raise

    with pytest.raises(AuthError) as info:
        asyncio.run(run_batch(paths(100), run_one, concurrency=4, on_result=got.append))
    assert len(fake.started) + 1 <= 5 + 1 + 4
    assert all(r.ok for r in got) and len(got) + len(cancelled) == len(fake.started)
    assert info.value.summary.stopped_reason == "auth"
    assert info.value.summary.total == len(got)


class Manual:
    """A fake run_one whose answers the test releases by hand."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[Result]] = {}

    async def __call__(self, src: str) -> Result:
        self.futures[src] = asyncio.get_running_loop().create_future()
        return await self.futures[src]

    def resolve(self, src: str) -> None:
        self.futures[src].set_result(answer(src))


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize("ordered", [False, True])
def test_cancellation_delivers_every_finished_result_then_raises_interrupted(ordered) -> None:
    fake, got = Manual(), []

    async def scenario() -> None:
        batch = asyncio.ensure_future(run_batch(paths(50), fake, concurrency=4,
                                                ordered=ordered, on_result=got.append))  # fmt: skip
        await _settle()
        assert sorted(fake.futures) == paths(4)
        fake.resolve("img0002.jpg")
        await _settle()
        fake.resolve("img0003.jpg")  # finishes in the same tick as the interrupt
        batch.cancel()
        with pytest.raises(Interrupted) as info:
            await batch
        assert info.value.summary.stopped_reason == "interrupted"
        assert fake.futures["img0000.jpg"].cancelled()

    asyncio.run(scenario())
    assert [r.image for r in got] == ["img0002.jpg", "img0003.jpg"]


class Grace:
    """An injected grace clock: it runs out when the test says, never by real time."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.out: asyncio.Event | None = None

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.out = asyncio.Event()
        await self.out.wait()


def test_first_interrupt_keeps_the_answers_in_flight_and_starts_nothing_new() -> None:
    fake, got, told, grace = Manual(), [], [], Grace()

    async def scenario() -> None:
        batch = asyncio.ensure_future(run_batch(
            paths(50), fake, concurrency=4, on_result=got.append, grace=5.0,
            on_interrupt=lambda n, s: told.append((n, s)), grace_timer=grace))
        await _settle()
        batch.cancel()  # Ctrl-C
        await _settle()
        assert told == [(4, 5.0)] and grace.asked == [5.0]
        for src in paths(4):  # the answers paid for arrive within the grace
            fake.resolve(src)
        with pytest.raises(Interrupted) as info:
            await batch
        assert info.value.summary.succeeded == 4

    asyncio.run(scenario())
    assert sorted(r.image for r in got) == paths(4)
    assert sorted(fake.futures) == paths(4)  # nothing new was started


@pytest.mark.parametrize("how", ["grace runs out", "second interrupt"])
def test_the_grace_ends_by_its_clock_or_a_second_interrupt(how) -> None:
    fake, got, grace = Manual(), [], Grace()

    async def scenario() -> None:
        batch = asyncio.ensure_future(run_batch(paths(50), fake, concurrency=4,
                                                on_result=got.append, grace=5.0,
                                                grace_timer=grace))
        await _settle()
        batch.cancel()
        await _settle()
        fake.resolve("img0001.jpg")
        await _settle()
        if how == "grace runs out":
            assert grace.out is not None
            grace.out.set()
        else:
            batch.cancel()
        with pytest.raises(Interrupted):
            await batch
        assert fake.futures["img0000.jpg"].cancelled()

    asyncio.run(scenario())
    assert [r.image for r in got] == ["img0001.jpg"]


def test_progress_reports_counts_after_each_result() -> None:
    events: list[ProgressEvent] = []
    ticks = iter(range(1000))

    async def mixed(src: str) -> Result:
        if src == "img0000.jpg":
            return answer(src, cached=True)
        if src == "img0001.jpg":
            raise ValueError("bad")
        return answer(src)

    asyncio.run(run_batch(paths(5), mixed, concurrency=2, on_progress=events.append,
                          clock=lambda: float(next(ticks))))  # fmt: skip
    assert [e.done for e in events] == [1, 2, 3, 4, 5]
    last = events[-1]
    assert (last.total, last.failed, last.cached, last.in_flight) == (5, 1, 1, 0)
    assert last.usage.prompt_tokens == 30 and last.elapsed_s > 0


def test_a_failing_source_iterator_still_delivers_what_finished() -> None:
    def broken():
        yield "a.jpg"
        raise OSError("stdin went away")

    got: list[Result] = []
    with pytest.raises(OSError, match="stdin went away"):
        asyncio.run(run_batch(broken(), Tracker(), concurrency=1, on_result=got.append))
    assert [r.image for r in got] == ["a.jpg"]
