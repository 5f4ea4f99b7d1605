"""An answer is bounded (issue 18): a flood or an endless stream is cut at a byte limit
derived from max_tokens, reported as the provider's fault, and sent once, not retried."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from test_client import CHAT, chat, client, delta, payload

from llamavis.backends.limits import BASE_BYTES, BYTES_PER_TOKEN, answer_limit
from llamavis.errors import ProviderError

MB = 2**20


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


class Flood:
    """A body of ``chunks`` pieces of ``size`` bytes, generated only as they are read."""

    def __init__(self, piece: bytes, chunks: int | None) -> None:
        self.piece, self.chunks, self.sent = piece, chunks, 0

    async def __aiter__(self):
        while self.chunks is None or self.sent < self.chunks:
            self.sent += 1
            yield self.piece


def test_the_limit_follows_max_tokens() -> None:
    assert answer_limit({"max_tokens": 80}) == BASE_BYTES + 80 * BYTES_PER_TOKEN == 344_064
    assert answer_limit({"max_tokens": 4096}) > answer_limit({"max_tokens": 80})
    assert answer_limit({}) == answer_limit({"max_tokens": 4096})


def test_50_mb_for_max_tokens_80_is_cut_as_the_providers_fault_and_sent_once(router) -> None:
    flood = Flood(b" " * MB, 50)  # whitespace: valid JSON padding, 50 MB of it
    route = router.post(CHAT).mock(side_effect=lambda _req: httpx.Response(
        200, headers={"content-type": "application/json"}, content=flood))
    with pytest.raises(ProviderError) as info:
        chat(client(max_retries=2), payload(params={"max_tokens": 80}))
    assert info.value.to_dict()["kind"] == "provider"
    assert "more than 344,064 bytes" in str(info.value) and "80 tokens" in str(info.value)
    assert route.call_count == 1  # the same request would get the same flood
    assert flood.sent == 1  # cut at the limit: the other 49 MB were never read


def test_a_declared_length_past_the_limit_is_refused_before_reading(router) -> None:
    body = json.dumps({"choices": []}).encode() + b" " * (400 * 1024)
    router.post(CHAT).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(ProviderError, match="more than"):
        chat(client(max_retries=0), payload(params={"max_tokens": 80}))


def test_a_stream_that_never_ends_is_cut(router) -> None:
    event = f"data: {json.dumps(delta('word '))}\n\n".encode()
    endless = Flood(event, None)
    route = router.post(CHAT).mock(side_effect=lambda _req: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=endless))
    pieces: list[str] = []
    with pytest.raises(ProviderError, match="more than 344,064 bytes"):
        chat(client(max_retries=2), payload(stream=True, params={"max_tokens": 80}),
             on_delta=pieces.append)
    assert route.call_count == 1
    assert endless.sent * len(event) <= 344_064 + len(event)


def test_an_honest_long_stream_within_the_limit_still_arrives(router) -> None:
    events = [delta("w ") for _ in range(80)] + [delta(finish="stop")]
    body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"
    router.post(CHAT).mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body))
    done = chat(client(), payload(stream=True, params={"max_tokens": 80}))
    assert done.text.strip() == " ".join(["w"] * 80)
