"""Reading answers: a JSON body or the events of a stream into a Completion, with no HTTP."""

from __future__ import annotations

import json

import pytest

from llamavis.backends.parse import completion_from_body, completion_from_events, model_list
from llamavis.backends.providers import PROVIDERS
from llamavis.backends.sse import SSEDecoder
from llamavis.errors import (
    NetworkError,
    ProviderError,
    RateLimited,
    RefusedError,
)

OPENROUTER = PROVIDERS["openrouter"]
LOCAL = PROVIDERS["local"]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
PAYLOAD = {"model": "meta-llama/llama-3.2-90b-vision-instruct",
           "messages": [{"role": "user", "content": [IMAGE, {"type": "text", "text": "Hi"}]}]}


def body(**fields) -> bytes:
    return json.dumps({"id": "gen-1", "model": "m", **fields}).encode()


def choice(content, finish="stop") -> list[dict]:
    return [{"index": 0, "message": {"role": "assistant", "content": content},
             "finish_reason": finish}]


def events(*chunks: dict | str):
    raw = b"".join(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode()
                   for c in chunks)
    decoder = SSEDecoder()
    return decoder.feed(raw) + decoder.close()


def delta(text: str | None = None, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {} if text is None else {"content": text},
                         "finish_reason": finish}]}


def test_a_json_answer_becomes_its_text_model_and_usage():
    done = completion_from_body(body(choices=choice("A red ball."),
                                     usage={"prompt_tokens": 20, "completion_tokens": 4}),
                                LOCAL, PAYLOAD)
    assert done.text == "A red ball." and done.finish_reason == "stop" and done.id == "gen-1"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (20, 4)


def test_usage_without_a_cost_is_priced_from_the_table_with_the_images_sent():
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    done = completion_from_body(body(choices=choice("ok"), usage=usage), OPENROUTER, PAYLOAD)
    per_in, _, per_image = OPENROUTER.price(PAYLOAD["model"])
    assert per_image > 0 and done.usage.cost_usd == pytest.approx(per_in + per_image)


def test_the_providers_own_cost_wins_over_the_estimate():
    usage = {"prompt_tokens": 10, "completion_tokens": 1, "cost": 0.5}
    assert completion_from_body(body(choices=choice("ok"), usage=usage), OPENROUTER,
                                PAYLOAD).usage.cost_usd == 0.5


def test_content_given_as_parts_is_joined():
    parts = [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]
    assert completion_from_body(body(choices=choice(parts)), LOCAL, PAYLOAD).text == "two parts"


def test_an_error_body_with_status_200_is_the_providers_error():
    with pytest.raises(RateLimited):
        completion_from_body(body(error={"message": "slow down", "code": 429}), LOCAL, PAYLOAD)


def test_a_body_without_choices_or_not_json_is_a_provider_error():
    with pytest.raises(ProviderError, match="without any choices"):
        completion_from_body(body(choices=[]), LOCAL, PAYLOAD)
    with pytest.raises(ProviderError, match="not the expected JSON: '<html>oops'"):
        completion_from_body(b"<html>oops", LOCAL, PAYLOAD)


def test_a_filtered_answer_is_refused_and_keeps_what_it_cost():
    with pytest.raises(RefusedError) as caught:
        completion_from_body(body(choices=choice("", "content_filter"),
                                  usage={"prompt_tokens": 7, "completion_tokens": 0}),
                             LOCAL, PAYLOAD)
    assert caught.value.usage.prompt_tokens == 7


def test_an_empty_answer_is_a_provider_error_naming_the_finish_reason():
    with pytest.raises(ProviderError, match=r"empty answer \(finish_reason length\)"):
        completion_from_body(body(choices=choice("  ", "length")), LOCAL, PAYLOAD)


def test_a_stream_of_chunks_becomes_one_answer_with_the_usage_that_came_last():
    done = completion_from_events(events(
        delta("A red"), delta(" ball."), delta(finish="stop"),
        {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 3}}, "[DONE]"),
        LOCAL, PAYLOAD)
    assert done.text == "A red ball." and done.finish_reason == "stop"
    assert done.usage.prompt_tokens == 30


def test_a_stream_that_stops_before_finishing_is_a_network_error_not_an_answer():
    with pytest.raises(NetworkError, match="ended before the answer was complete"):
        completion_from_events(events(delta("A red"), delta(" ba")), LOCAL, PAYLOAD)


def test_a_stream_with_an_error_chunk_fails():
    with pytest.raises(ProviderError, match="upstream fell over"):
        completion_from_events(events(delta("A red"),
                                      {"error": {"message": "upstream fell over", "code": 502}}),
                               LOCAL, PAYLOAD)


def test_a_model_list_keeps_the_model_objects_and_a_body_without_one_is_an_error():
    assert model_list([{"id": "a"}, "junk"], b"", LOCAL) == [{"id": "a"}]
    with pytest.raises(ProviderError, match="not the expected JSON: '{}'"):
        model_list(None, b"{}", LOCAL)
