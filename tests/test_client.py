"""ChatClient and the request body: what goes on the wire and what comes back."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
import respx

from llamavis.backends.client import ChatClient, build_payload, redact_payload
from llamavis.backends.providers import PROVIDERS
from llamavis.errors import (
    AuthError,
    ConfigError,
    LlamavisError,
    NetworkError,
    ProviderError,
    ProviderTimeout,
    RefusedError,
    UsageError,
)
from llamavis.types import GenParams

BASE = "http://llm.test/v1"
CHAT = f"{BASE}/chat/completions"
IMAGE_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 3000).decode()
MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
            {"type": "text", "text": "Caption this."},
        ],
    }
]
SENTINEL = "sk-or-v1-SENTINEL-KEY-0123456789abcdef"


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def client(provider="local", *, api_key=None, sleeps=None, **kw) -> ChatClient:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    kw.setdefault("base_url", BASE)
    return ChatClient(PROVIDERS[provider], api_key=api_key, sleep=sleep, **kw)


def chat(c: ChatClient, payload: dict, **kw):
    async def go():
        async with c:
            return await c.chat(payload, **kw)

    return asyncio.run(go())


def answer(text="A red square.", finish="stop", usage=None, **extra) -> dict:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 4},
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        **extra,
    }


def sse(*chunks: dict | str) -> bytes:
    return b"".join(
        f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks
    )


def delta(content=None, finish=None) -> dict:
    d = {} if content is None else {"content": content}
    return {"id": "gen-1", "model": "m", "choices": [{"delta": d, "finish_reason": finish}]}


def stream_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def payload(provider="local", **kw) -> dict:
    spec = PROVIDERS[provider]
    return build_payload(
        spec,
        spec.model_id("11b"),
        MESSAGES,
        GenParams(**kw.pop("params", {})),
        stream=kw.pop("stream", False),
        **kw,
    )


# -- the request body ---------------------------------------------------------------------


def test_payload_always_has_max_tokens_and_never_stop():
    body = payload()
    assert body["max_tokens"] == 1024 and "stop" not in body and "temperature" not in body
    assert body["messages"] is MESSAGES
    assert payload(params={"max_tokens": 50, "temperature": 0.2})["max_tokens"] == 50


def test_payload_seed_only_where_the_provider_takes_it():
    from dataclasses import replace

    spec = replace(PROVIDERS["local"], supports_seed=False)
    assert "seed" not in build_payload(spec, "m", MESSAGES, GenParams(seed=3), stream=False)
    assert payload(params={"seed": 3})["seed"] == 3


def test_stream_payload_asks_for_usage():
    body = payload(stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "stream" not in payload()


def test_openrouter_json_schema_requires_parameters():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = payload("openrouter", json_schema=schema)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "strict": False, "schema": schema},
    }
    assert body["provider"] == {"require_parameters": True}
    assert "provider" not in payload("openrouter")


def test_deepinfra_gets_json_object_and_novita_prompt_only():
    schema = {"type": "object"}
    assert payload("deepinfra", json_schema=schema)["response_format"] == {"type": "json_object"}
    assert payload("deepinfra", json_wanted=True)["response_format"] == {"type": "json_object"}
    assert "response_format" not in payload("novita", json_schema=schema)
    assert "response_format" not in payload("deepinfra")


def test_redact_payload_shortens_image_data():
    shown = redact_payload(payload())
    url = shown["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith(IMAGE_URL[:32]) and url.endswith("…(3004 bytes)") and len(url) < 60
    assert payload()["messages"][0]["content"][0]["image_url"]["url"] == IMAGE_URL


def test_openrouter_headers_carry_attribution_and_bearer():
    c = client("openrouter", api_key=SENTINEL, base_url=None)
    headers = c.headers()
    assert headers["Authorization"] == f"Bearer {SENTINEL}"
    assert headers["HTTP-Referer"] and headers["X-Title"] == "llamavis"
    assert headers["User-Agent"].startswith("llamavis/")
    assert c.headers(redact=True)["Authorization"] == "Bearer ***"
    assert c.base_url == PROVIDERS["openrouter"].base_url
    assert "Authorization" not in client("ollama").headers()


def test_base_url_override_drops_trailing_slash(router):
    route = router.post(CHAT).respond(json=answer())
    chat(client("openrouter", api_key=SENTINEL, base_url=BASE + "/"), payload("openrouter"))
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {SENTINEL}"
    assert request.headers["x-openrouter-title"] == "llamavis"
    assert json.loads(request.content) == payload("openrouter")


# -- answers ------------------------------------------------------------------------------


def test_plain_answer_with_provider_cost(router):
    router.post(CHAT).respond(
        json=answer(usage={"prompt_tokens": 1622, "completion_tokens": 2, "cost": 0.0000981})
    )
    done = chat(client("openrouter"), payload("openrouter"))
    assert (done.text, done.finish_reason, done.id) == ("A red square.", "stop", "chatcmpl-1")
    assert done.usage.prompt_tokens == 1622 and done.usage.cost_usd == 0.0000981


def test_deepinfra_estimated_cost_is_used(router):
    router.post(CHAT).respond(
        json=answer(usage={"prompt_tokens": 5, "completion_tokens": 5, "estimated_cost": 0.002})
    )
    assert chat(client("deepinfra"), payload("deepinfra")).usage.cost_usd == 0.002


def test_cost_estimated_from_price_table_counts_the_image(router):
    router.post(CHAT).respond(
        json=answer(usage={"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000})
    )
    spec = PROVIDERS["openrouter"]
    body = build_payload(spec, spec.model_id("90b"), MESSAGES, GenParams(), stream=False)
    assert chat(client("openrouter"), body).usage.cost_usd == pytest.approx(0.75 + 0.0005058)


def test_unknown_price_gives_no_cost(router):
    router.post(CHAT).respond(json=answer())
    assert chat(client("local"), payload()).usage.cost_usd is None


def test_length_finish_is_returned_as_is(router):
    router.post(CHAT).respond(json=answer("A red squ", finish="length"))
    assert chat(client(), payload()).finish_reason == "length"


def test_empty_answer_is_a_provider_error(router):
    router.post(CHAT).respond(json=answer(""))
    with pytest.raises(ProviderError, match="empty answer") as info:
        chat(client(), payload())
    assert info.value.kind == "provider"


def test_finish_reason_error_in_a_200_answer(router):
    body = answer("")
    body["choices"][0].update(finish_reason="error", error={"code": 400, "message": "bad image"})
    router.post(CHAT).respond(json=body)
    with pytest.raises(ProviderError, match="bad image"):
        chat(client(max_retries=0), payload())


def test_streamed_answer_calls_on_delta_per_piece(router):
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "cost": 0.5}
    router.post(CHAT).mock(
        return_value=stream_response(
            b": OPENROUTER PROCESSING\n\n"
            + sse(
                delta("A "),
                delta("cat"),
                delta(finish="stop"),
                {"choices": [], "usage": usage},
                "[DONE]",
            )
        )
    )
    pieces: list[str] = []
    done = chat(client("openrouter"), payload("openrouter", stream=True), on_delta=pieces.append)
    assert pieces == ["A ", "cat"] and done.text == "A cat" and done.usage.cost_usd == 0.5


def test_stream_without_done_ending_after_finish_reason_is_complete(router):
    router.post(CHAT).mock(
        return_value=stream_response(
            sse(
                {"choices": [{"delta": {"role": "assistant"}}]},
                delta("ok"),
                {
                    "choices": [{"delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3},
                },
            )
        )
    )
    assert chat(client(), payload(stream=True)).text == "ok"


def test_stream_that_finishes_but_never_closes_still_answers(router, monkeypatch):
    # The answer and its finish_reason arrived; the server then neither sends usage or
    # [DONE] nor closes. Waiting for it must not turn a complete answer into a timeout.
    import llamavis.backends.client as client_module

    monkeypatch.setattr(client_module, "AFTER_FINISH_S", 0.05)

    class Hanging(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield sse(delta("A whole"), delta(" answer."), delta(finish="stop"))
            await asyncio.Event().wait()  # never closes

    router.post(CHAT).mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Hanging()))
    done = chat(client(timeout=30), payload(stream=True))
    assert done.text == "A whole answer." and done.finish_reason == "stop"


def test_stream_answered_with_plain_json_is_accepted(router):
    router.post(CHAT).respond(json=answer("not streamed"))
    assert chat(client(), payload(stream=True)).text == "not streamed"


@pytest.mark.parametrize(
    "body",
    [sse(delta("half")), b": OPENROUTER PROCESSING\n\n" * 3],
    ids=["eof-before-finish", "only-comments"],
)
def test_stream_ending_early_is_a_network_failure(router, body):
    router.post(CHAT).mock(return_value=stream_response(body))
    with pytest.raises(NetworkError, match="stream ended before the answer was complete"):
        chat(client(max_retries=0), payload(stream=True))


def test_error_chunk_in_stream_is_a_provider_error_and_response_closed(router):
    closed = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield sse(delta("par"))
            yield sse(
                {
                    "error": {"code": 400, "message": "Content blocked upstream"},
                    "choices": [{"delta": {"content": ""}, "finish_reason": "error"}],
                }
            )

        async def aclose(self):
            closed.append(True)

    router.post(CHAT).mock(
        return_value=httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Body()
        )
    )
    with pytest.raises(ProviderError, match="Content blocked upstream"):
        chat(client(), payload(stream=True))
    assert closed


def test_http_error_status_is_mapped(router):
    router.post(CHAT).respond(401, json={"error": {"message": "User not found.", "code": 401}})
    with pytest.raises(AuthError, match="openrouter HTTP 401: User not found."):
        chat(client("openrouter"), payload("openrouter"))


@pytest.mark.parametrize(
    "exc, cls, kind",
    [
        (httpx.ConnectError("Connection refused"), NetworkError, "network"),
        (httpx.ReadError("reset by peer"), NetworkError, "network"),
        (httpx.RemoteProtocolError("peer closed connection"), NetworkError, "network"),
        (httpx.ReadTimeout("timed out"), ProviderTimeout, "timeout"),
        (httpx.ConnectTimeout("timed out"), ProviderTimeout, "timeout"),
    ],
)
def test_httpx_exceptions_never_escape(router, exc, cls, kind):
    router.post(CHAT).mock(side_effect=exc)
    with pytest.raises(LlamavisError) as info:
        chat(client(max_retries=0), payload())
    assert type(info.value) is cls and info.value.kind == kind


@pytest.mark.parametrize("url", ["localhost:8000/v1", "ftp://host/v1", "http:///v1"])
def test_bad_base_url_is_a_usage_error(url):
    with pytest.raises(UsageError, match="bad base URL"):
        client(base_url=url)


def test_list_models_returns_the_data_list(router):
    router.get(f"{BASE}/models").respond(
        json={"object": "list", "data": [{"id": "llama3.2-vision:11b", "object": "model"}]}
    )

    async def go():
        async with client("ollama") as c:
            return await c.list_models()

    assert asyncio.run(go()) == [{"id": "llama3.2-vision:11b", "object": "model"}]


# -- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status, cls", [(401, AuthError), (400, ProviderError)])
def test_key_never_in_messages_debug_output_or_repr(router, status, cls):
    echo = {"error": {"message": f"Incorrect API key provided: {SENTINEL}", "code": status}}
    router.post(CHAT).respond(status, json=echo)
    lines: list[str] = []
    c = client("openrouter", api_key=SENTINEL, debug=lines.append)
    with pytest.raises(cls) as info:
        chat(c, payload("openrouter"))
    shown = [str(info.value), repr(info.value), repr(vars(info.value)), repr(c), *lines]
    assert lines and all(SENTINEL not in text for text in shown)
    assert "Bearer ***" in "\n".join(lines) and "…(" in "\n".join(lines)


def test_key_not_in_debug_output_across_retries(router):
    router.post(CHAT).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=answer())])
    lines: list[str] = []
    chat(
        client("openrouter", api_key=SENTINEL, debug=lines.append, sleeps=[]), payload("openrouter")
    )
    assert any("retry 1/2" in line for line in lines)
    assert all(SENTINEL not in line for line in lines)


def test_key_that_cannot_be_a_header_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        client("openrouter", api_key="sk-or-v1-caf\u00e9-0123456789")
    assert "caf" not in str(info.value)


def test_content_filtered_stream_is_refused_never_the_partial_answer(router):
    route = router.post(CHAT).mock(
        return_value=stream_response(sse(delta("The person in"), delta(finish="content_filter")))
    )
    with pytest.raises(RefusedError, match="content filter") as info:
        chat(client(), payload(stream=True))
    assert info.value.kind == "refused" and info.value.raw == "The person in"
    assert route.call_count == 1  # a filter says the same again: not retried


def test_content_filtered_empty_answer_is_refused(router):
    router.post(CHAT).respond(json=answer("", finish="content_filter"))
    with pytest.raises(RefusedError):
        chat(client(), payload())


def test_an_endpoint_refusing_response_format_is_asked_again_without_it_and_remembered(router):
    # The client decides this, not the orchestrator: it resends the same request without
    # response_format (and OpenRouter's require_parameters), and leaves both out from then on.
    refusal = httpx.Response(404, json={"error": {
        "message": "No endpoints found that can handle the requested parameters.", "code": 404}})
    route = router.post(CHAT).mock(side_effect=[refusal, *[httpx.Response(200, json=answer("{}"))] * 2])
    body = {**payload(), "response_format": {"type": "json_object"},
            "provider": {"require_parameters": True}}

    async def go():
        async with client("openrouter", api_key="sk-or-test") as c:
            return [await c.chat(body), await c.chat(body)]

    assert [c.text for c in asyncio.run(go())] == ["{}", "{}"]
    sent = [json.loads(call.request.content) for call in route.calls]
    assert "response_format" in sent[0] and "provider" in sent[0]
    assert all("response_format" not in s and "provider" not in s for s in sent[1:])
    assert len(sent) == 3  # one refusal, then one request per answer


def test_a_400_about_something_else_is_not_taken_for_a_response_format_refusal(router):
    route = router.post(CHAT).mock(return_value=httpx.Response(
        400, json={"error": {"message": "context length exceeded", "code": 400}}))
    with pytest.raises(ProviderError, match="context length"):
        chat(client(), {**payload(), "response_format": {"type": "json_object"}})
    assert route.call_count == 1
