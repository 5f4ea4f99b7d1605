"""The SSE decoder and the chat-chunk assembler, one edge per test."""

from __future__ import annotations

import json
import random

import pytest

from llamavis.backends.sse import (
    ChatStream,
    LineDecoder,
    ServerSentEvent,
    SSEDecoder,
)
from llamavis.errors import ProviderError, RateLimited


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def data(*events: ServerSentEvent) -> list[str]:
    return [event.data for event in events]


def frame(body: dict) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()


def chunk(content: str | None = None, finish: str | None = None, **extra) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "gen-1",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return frame(body)


def assemble(*chunks: bytes) -> ChatStream:
    stream, decoder = ChatStream("openrouter"), SSEDecoder()
    for part in chunks:
        for event in decoder.feed(part):
            stream.feed(event)
            if stream.done:
                return stream
    for event in decoder.close():
        stream.feed(event)
    return stream


STREAM = (
    b": OPENROUTER PROCESSING\r\n\r\n"
    + chunk("Un lama ")
    + 'data: {"choices":[{"delta":{"content":"caf\u00e9 \U0001f999"}}]}\r\n\r\n'.encode()
    + chunk(finish="stop")
    + b"data: [DONE]\n\n"
)


def test_chunk_split_mid_line_gives_the_same_events():
    whole = decode(STREAM)
    for cut in range(1, len(STREAM)):
        assert decode(STREAM[:cut], STREAM[cut:]) == whole, cut


def test_random_splits_give_the_same_answer():
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        pieces = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
        stream = assemble(*pieces)
        assert stream.text == "Un lama caf\u00e9 \U0001f999"
        assert stream.done


def test_split_inside_a_multibyte_character_keeps_it_whole():
    raw = "data: \U0001f999\u00e9\n\n".encode()
    start = raw.index(b"\xf0")
    for cut in range(start + 1, start + 4):
        assert data(*decode(raw[:cut], raw[cut:])) == ["\U0001f999\u00e9"]


def test_crlf_line_endings_split_between_cr_and_lf():
    assert data(*decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")) == ["a", "b"]


def test_lone_cr_ends_lines():
    assert data(*decode(b"data: a\r\rdata: b\r\r")) == ["a", "b"]


def test_comment_lines_are_skipped():
    raw = b": OPENROUTER PROCESSING\n\n:keep-alive\ndata: x\n: between\n\n"
    assert data(*decode(raw)) == ["x"]


def test_multi_line_data_joined_with_newline():
    assert data(*decode(b"data: one\ndata:two\ndata:  three\n\n")) == ["one\ntwo\n three"]


def test_event_and_id_fields_are_kept():
    (event,) = decode(b"event: error\nid: 7\ndata: {}\n\n")
    assert (event.event, event.id, event.data) == ("error", "7", "{}")


def test_an_event_left_open_at_eof_is_handed_on_marked_open():
    events = decode(b"data: a\n\ndata: b\n")
    assert [(e.data, e.closed) for e in events] == [("a", True), ("b", False)]
    assert [(e.data, e.closed) for e in decode(b"data: a\n\ndata: {\"x\": 1}")] == [
        ("a", True), ('{"x": 1}', False)]


def test_line_decoder_returns_last_unterminated_line_on_close():
    decoder = LineDecoder()
    assert decoder.feed(b"a\nb") == ["a"]
    assert decoder.close() == ["b"]


def test_done_ends_the_stream():
    stream = assemble(chunk("hi"), b"data: [DONE]\n\n", chunk(" ignored"))
    assert stream.done and stream.complete and stream.text == "hi"


def test_error_chunk_inside_200_raises_with_providers_message():
    error = {
        "error": {"code": 502, "message": "Upstream provider disconnected"},
        "choices": [{"delta": {"content": ""}, "finish_reason": "error"}],
    }
    with pytest.raises(ProviderError) as info:
        assemble(chunk("partial"), frame(error))
    assert "Upstream provider disconnected" in str(info.value)
    assert info.value.retryable


OPENROUTER_RATE_LIMIT = {  # what OpenRouter sends when a rate limit is hit mid-stream
    "id": "gen-1", "object": "chat.completion.chunk", "provider": "Lambda",
    "error": {"code": 429, "message": "Rate limit exceeded: try again shortly",
              "metadata": {"provider_name": "Lambda"}},
    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
}


@pytest.mark.parametrize("ending", [b"\n\n", b"\n", b""], ids=["closed", "no-blank-line", "no-eol"])
def test_an_error_chunk_that_ends_the_stream_raises_the_providers_error_however_it_ends(ending):
    last = f"data: {json.dumps(OPENROUTER_RATE_LIMIT)}".encode() + ending
    with pytest.raises(RateLimited) as info:
        assemble(b": OPENROUTER PROCESSING\n\n", chunk("A pho"), last)
    assert "Rate limit exceeded: try again shortly" in str(info.value) and "Lambda" in str(info.value)
    assert info.value.kind == "rate_limited" and info.value.retryable


def test_a_chunk_cut_mid_json_at_eof_leaves_the_stream_incomplete_not_an_error():
    stream = assemble(chunk("A pho"), b'data: {"choices": [{"delta": {"content": "to')
    assert not stream.complete and stream.text == "A pho"


@pytest.mark.parametrize(("error", "kind"), [
    ({"code": "server_error", "message": "Provider disconnected unexpectedly"}, "provider"),
    ({"code": 502, "message": "Upstream provider disconnected"}, "provider"),
    ({"code": "429", "message": "Too many requests"}, "rate_limited"),
    ({"code": "server_error", "message": "Upstream rate limit exceeded"}, "rate_limited"),
    ({"message": "Provider returned error", "metadata": {"error_type": "rate_limit_exceeded"}},
     "rate_limited"),
    ({"code": 504, "message": "upstream timed out"}, "timeout"),
], ids=["named-code", "502", "429-string", "words", "metadata-type", "504"])
def test_an_error_chunk_is_classed_by_its_code_or_words(error, kind):
    body = {"error": error, "choices": [{"delta": {"content": ""}, "finish_reason": "error"}]}
    with pytest.raises(ProviderError) as info:
        assemble(chunk("partial"), frame(body))
    assert info.value.kind == kind and info.value.retryable
    assert error["message"] in str(info.value)


def test_a_rate_limit_chunk_carries_the_wait_the_provider_asks_for():
    reset_ms = 1_700_000_030_000  # X-RateLimit-Reset: epoch milliseconds, 30 s after "now"
    error = {"code": 429, "message": "Rate limit exceeded: free-models-per-min",
             "metadata": {"headers": {"X-RateLimit-Reset": str(reset_ms)}}}
    stream, decoder = ChatStream("openrouter", now=lambda: 1_700_000_000.0), SSEDecoder()
    with pytest.raises(RateLimited) as info:
        for event in decoder.feed(frame({"error": error, "choices": []})):
            stream.feed(event)
    assert info.value.retry_after == pytest.approx(30.0)
    assert "wait 30 s" in str(info.value)


def test_finish_reason_error_without_top_level_error_raises():
    with pytest.raises(ProviderError, match="overloaded"):
        choice = {"delta": {}, "finish_reason": "error", "error": {"message": "overloaded"}}
        assemble(frame({"choices": [choice]}))


def test_usage_after_finish_reason_with_non_empty_choices():
    usage = {"prompt_tokens": 20, "completion_tokens": 3, "cost": 0.0001}
    stream = assemble(
        chunk("cat"),
        chunk(finish="stop"),
        frame(
            {
                "choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                "usage": usage,
            }
        ),
        b"data: [DONE]\n\n",
    )
    assert (stream.text, stream.finish_reason, stream.usage) == ("cat", "stop", usage)


def test_usage_chunk_with_empty_choices():
    usage = {"prompt_tokens": 5, "completion_tokens": 1}
    stream = assemble(
        chunk("a", finish="stop"),
        frame({"choices": [], "usage": usage}),
        b"data: [DONE]\n\n",
    )
    assert stream.usage == usage and stream.text == "a"


def test_no_done_but_finish_reason_then_eof_is_complete():
    stream = assemble(
        b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n',
        chunk("ok"),
        chunk(finish="stop", usage={"prompt_tokens": 1}),
    )
    assert stream.complete and not stream.done and stream.text == "ok"


def test_eof_before_finish_is_incomplete():
    stream = assemble(chunk("half an ans"))
    assert not stream.complete and stream.text == "half an ans"


def test_only_comments_then_eof_is_incomplete():
    stream = assemble(b": OPENROUTER PROCESSING\n\n", b": OPENROUTER PROCESSING\n\n")
    assert not stream.complete and stream.text == ""


def test_chunk_that_is_not_json_raises_retryable_error():
    with pytest.raises(ProviderError) as info:
        assemble(b"data: {not json\n\n")
    assert info.value.retryable


def test_old_vllm_flat_error_chunk_raises_with_its_message():
    # vLLM before 0.10.1 (the last to serve mllama is 0.10.2) streams errors flat.
    flat = {"object": "error", "message": "prompt is too long for this model",
            "type": "BadRequestError", "param": None, "code": 400}
    with pytest.raises(ProviderError, match="prompt is too long") as info:
        assemble(frame(flat))
    assert not info.value.retryable
