"""Retries (what, how often, how long: sleeps recorded, never slept) and the adaptive limiter."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx

from llamavis.backends.client import ChatClient, build_payload
from llamavis.backends.providers import PROVIDERS
from llamavis.backends.retry import AdaptiveLimiter, RetryPolicy
from llamavis.errors import (
    AuthError,
    NetworkError,
    ProviderError,
    RateLimited,
)
from llamavis.types import GenParams

BASE = "http://llm.test/v1"
CHAT = f"{BASE}/chat/completions"
NOW = 1_777_248_000.0
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
OK = {"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}]}


@pytest.fixture
def router():
    with respx.mock() as mock:
        yield mock


@pytest.fixture
def sleeps() -> list[float]:
    return []


def run(sleeps, provider="openrouter", *, stream=False, limiter=None, max_retries=2, **kw):
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    spec = PROVIDERS[provider]
    body = build_payload(spec, "m", MESSAGES, GenParams(), stream=stream)

    async def go():
        async with ChatClient(
            spec,
            api_key="k",
            base_url=BASE,
            sleep=sleep,
            limiter=limiter,
            max_retries=max_retries,
            wall_clock=lambda: NOW,
        ) as client:
            return await client.chat(body, **kw)

    return asyncio.run(go())


def limited(**headers) -> httpx.Response:
    return httpx.Response(
        429, headers=headers, json={"error": {"message": "Rate limit exceeded", "code": 429}}
    )


def test_429_retry_after_header_is_honoured(router, sleeps):
    router.post(CHAT).mock(
        side_effect=[limited(**{"Retry-After": "7"}), httpx.Response(200, json=OK)]
    )
    assert run(sleeps).text == "fine"
    assert sleeps == [7.0]


def test_429_reset_epoch_ms_in_body_metadata_is_honoured(router, sleeps):
    body = {
        "error": {
            "message": "Rate limit exceeded: free-models-per-min.",
            "code": 429,
            "metadata": {
                "headers": {
                    "X-RateLimit-Limit": "20",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(NOW * 1000) + 12_500),
                }
            },
        }
    }
    router.post(CHAT).mock(
        side_effect=[httpx.Response(429, json=body), httpx.Response(200, json=OK)]
    )
    run(sleeps)
    assert sleeps == [pytest.approx(12.5)]


def test_429_reset_header_in_epoch_ms_is_honoured(router, sleeps):
    reset = str(int(NOW * 1000) + 3000)
    router.post(CHAT).mock(
        side_effect=[limited(**{"X-RateLimit-Reset": reset}), httpx.Response(200, json=OK)]
    )
    run(sleeps)
    assert sleeps == [pytest.approx(3.0)]


def test_wait_longer_than_a_minute_is_not_retried(router, sleeps):
    route = router.post(CHAT).mock(return_value=limited(**{"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as info:
        run(sleeps)
    assert route.call_count == 1 and sleeps == [] and info.value.retry_after == 3600


def test_5xx_retried_with_backoff_then_success(router, sleeps):
    route = router.post(CHAT).mock(
        side_effect=[httpx.Response(502), httpx.Response(503), httpx.Response(200, json=OK)]
    )
    assert run(sleeps).text == "fine"
    assert route.call_count == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_connection_error_retried(router, sleeps):
    router.post(CHAT).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=OK)]
    )
    assert run(sleeps).text == "fine" and len(sleeps) == 1


def test_connection_closed_before_answering_is_a_retry_sent_at_once(router, sleeps):
    gone = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    route = router.post(CHAT).mock(side_effect=[gone, httpx.Response(200, json=OK)])
    assert run(sleeps, max_retries=1).text == "fine"
    assert route.call_count == 2 and sleeps == [0.0]  # no backoff: a stale connection


def test_max_retries_0_sends_a_request_once_even_when_the_connection_was_closed(router, sleeps):
    gone = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    route = router.post(CHAT).mock(side_effect=[gone, httpx.Response(200, json=OK)])
    with pytest.raises(NetworkError, match="closed the connection before answering"):
        run(sleeps, max_retries=0)
    assert route.call_count == 1 and sleeps == []


def test_connection_closed_every_time_is_a_network_error_after_the_retries(router, sleeps):
    route = router.post(CHAT).mock(side_effect=httpx.ReadError(""))
    with pytest.raises(NetworkError):
        run(sleeps, max_retries=2)
    assert route.call_count == 3 and sleeps == [0.0, 0.0]


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, ProviderError),
        (401, AuthError),
        (402, ProviderError),
        (404, ProviderError),
        (413, ProviderError),
        (422, ProviderError),
    ],
)
def test_client_errors_are_not_retried(router, sleeps, status, cls):
    route = router.post(CHAT).respond(status, json={"error": {"message": "no", "code": status}})
    with pytest.raises(cls):
        run(sleeps)
    assert route.call_count == 1 and sleeps == []


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_bounds_the_attempts(router, sleeps, max_retries):
    route = router.post(CHAT).respond(503)
    with pytest.raises(ProviderError, match="HTTP 503"):
        run(sleeps, max_retries=max_retries)
    assert route.call_count == max_retries + 1 and len(sleeps) == max_retries


def sse(*chunks: dict | str) -> bytes:
    return b"".join(
        f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks
    )


def piece(text=None, finish=None) -> dict:
    return {
        "choices": [{"delta": {} if text is None else {"content": text}, "finish_reason": finish}]
    }


def test_stream_cut_mid_way_is_retried_from_the_start(router, sleeps):
    class Cut(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield sse(piece("Hel"))
            raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    events = "text/event-stream"
    router.post(CHAT).mock(
        side_effect=[
            httpx.Response(200, headers={"content-type": events}, stream=Cut()),
            httpx.Response(200, headers={"content-type": events}, content=sse(piece("Hel"))),
            httpx.Response(
                200,
                headers={"content-type": events},
                content=sse(piece("Hello"), piece(finish="stop"), "[DONE]"),
            ),
        ]
    )
    seen: list[str] = []
    done = run(
        sleeps,
        stream=True,
        on_delta=seen.append,
        on_retry=lambda why: seen.append(f"<reset: {why}>"),
    )
    assert done.text == "Hello" and len(sleeps) == 2
    assert seen[0] == "Hel" and seen[1].startswith("<reset: ") and "peer closed" in seen[1]
    assert seen[3].startswith("<reset: ") and "stream ended before" in seen[3]
    assert seen[4:] == ["Hello"]


def test_stream_cut_fails_after_retries(router, sleeps):
    router.post(CHAT).mock(
        return_value=httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse(piece("Hel"))
        )
    )
    with pytest.raises(NetworkError):
        run(sleeps, stream=True, max_retries=1)


def test_backoff_doubles_to_a_cap_with_full_jitter():
    top = RetryPolicy(max_retries=10, random=lambda: 1.0)
    error = ProviderError("x", retryable=True)
    assert [top.delay(n, error) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert RetryPolicy(random=lambda: 0.0).delay(0, error) == 0.0
    assert RetryPolicy(max_retries=2).delay(2, error) is None
    assert RetryPolicy().delay(0, ProviderError("x", retryable=False)) is None


# -- AdaptiveLimiter ----------------------------------------------------------------------


def test_limiter_bounds_requests_in_flight():
    async def go():
        limiter, peak = AdaptiveLimiter(3), []

        async def job():
            async with limiter:
                peak.append(limiter.in_flight)
                await asyncio.sleep(0)

        await asyncio.gather(*(job() for _ in range(20)))
        return max(peak), limiter.in_flight

    assert asyncio.run(go()) == (3, 0)


def test_limiter_halves_once_per_burst_and_recovers():
    limiter = AdaptiveLimiter(8, grow_after=2)

    async def go():
        async with limiter as first, limiter as second:
            limiter.rate_limited(first)
            limiter.rate_limited(second)  # the same burst: no second cut
        assert limiter.current == 4
        async with limiter as later:
            limiter.rate_limited(later)
        assert limiter.current == 2
        for _ in range(12):
            limiter.succeeded()

    asyncio.run(go())
    assert limiter.current == 8  # +1 per 2 successes, never above the start


def test_limiter_keeps_no_more_in_flight_than_a_burst_had_accepted():
    limiter = AdaptiveLimiter(16)

    async def go():
        tickets = [await limiter.__aenter__() for _ in range(16)]
        for ticket in tickets[:12]:  # 12 of 16 refused: the provider takes about 4
            limiter.rate_limited(ticket)
        for _ in tickets:
            await limiter.__aexit__(None, None, None)

    asyncio.run(go())
    assert limiter.current == 4  # not 8, which would only earn a second burst of 429s


def test_limiter_never_below_one():
    limiter = AdaptiveLimiter(2)
    for _ in range(5):
        limiter.rate_limited()
    assert limiter.current == 1


def test_cancelled_waiter_does_not_leak_a_slot():
    async def go():
        limiter = AdaptiveLimiter(1)
        async with limiter:
            waiter = asyncio.create_task(limiter.__aenter__())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with limiter:
            return limiter.in_flight

    assert asyncio.run(go()) == 1


def test_client_429_halves_the_limiter(router, sleeps):
    limiter = AdaptiveLimiter(4)
    router.post(CHAT).mock(
        side_effect=[limited(**{"Retry-After": "1"}), httpx.Response(200, json=OK)]
    )
    run(sleeps, limiter=limiter)
    assert limiter.current == 2 and limiter.in_flight == 0 and sleeps == [1.0]


# -- a provider's error inside a 200 answer is retried as the same error outside it -----------

RATE_LIMIT = {"code": 429, "message": "Rate limit exceeded: free-models-per-min.",
              "metadata": {"headers": {"X-RateLimit-Reset": str(int(NOW * 1000) + 12_500)}}}
EVENTS = {"content-type": "text/event-stream"}


def error_stream(error: dict, *, closed: bool) -> httpx.Response:
    """A 200 stream that starts answering, then ends with an error chunk (OpenRouter's shape);
    ``closed=False``: the server hangs up right after the chunk's data line."""
    last = {"error": error, "choices": [{"delta": {"content": ""}, "finish_reason": "error"}]}
    body = sse(piece("A pho")) + f"data: {json.dumps(last)}\n".encode() + (b"\n" if closed else b"")
    return httpx.Response(200, headers=EVENTS, content=body)


def error_answer(error: dict) -> httpx.Response:
    """The same error in a 200 answer that is not streamed."""
    return httpx.Response(200, json={"error": error, "choices": [
        {"message": {"content": ""}, "finish_reason": "error"}]})


@pytest.mark.parametrize("how", ["http-429", "200-json", "stream", "stream-left-open"])
def test_a_rate_limit_inside_an_answer_waits_as_a_429_would(router, sleeps, how):
    first = {"http-429": httpx.Response(429, json={"error": RATE_LIMIT}),
             "200-json": error_answer(RATE_LIMIT),
             "stream": error_stream(RATE_LIMIT, closed=True),
             "stream-left-open": error_stream(RATE_LIMIT, closed=False)}[how]
    streamed = how.startswith("stream")
    then = (httpx.Response(200, headers=EVENTS, content=sse(piece("A photo."), piece(finish="stop")))
            if streamed else httpx.Response(200, json=OK))
    route = router.post(CHAT).mock(side_effect=[first, then])
    limiter = AdaptiveLimiter(4)
    assert run(sleeps, stream=streamed, limiter=limiter).text in ("A photo.", "fine")
    assert route.call_count == 2 and sleeps == [pytest.approx(12.5)]
    assert limiter.current == 2  # halved, as for any 429


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "left-open"])
def test_a_provider_error_inside_a_stream_ends_with_its_words_after_the_retries(
        router, sleeps, closed):
    error = {"code": "server_error", "message": "Provider disconnected unexpectedly",
             "metadata": {"provider_name": "Lambda"}}
    route = router.post(CHAT).mock(side_effect=lambda request: error_stream(error, closed=closed))
    with pytest.raises(ProviderError) as info:
        run(sleeps, stream=True, max_retries=1)
    assert info.value.kind == "provider"
    assert "Provider disconnected unexpectedly" in str(info.value) and "Lambda" in str(info.value)
    assert route.call_count == 2 and len(sleeps) == 1
