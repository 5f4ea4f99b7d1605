"""Wire facts of `transformers serve` (tiny mllama) that llamavis relies on, pinned with httpx.

These talk to the real server directly, without llamavis, so that a change in the server's
behaviour shows up here first, named, rather than as a puzzling CLI failure.

What changed in transformers 5.25 (the server `.ci/run` installs with `transformers[serving]>=5`),
against 5.23/5.24 that these tests were first written for:
- a stream carries `usage` only when asked with `stream_options.include_usage` (as OpenAI and
  vLLM do), and then in a chunk of its own after the finish_reason chunk, with `choices: []`;
  before, the finish_reason chunk carried `usage` always. llamavis asks for it on the `local`
  provider (ProviderSpec.stream_usage) and its stream parser tolerates `choices: []`.
- a request whose image it cannot read (bad base64, bytes that are no image) and `max_tokens: 0`
  are now a 400 with a JSON `{"detail": "..."}` body and an `x-request-id`, not a bare 500.
  `stop` with a vision model, an unknown model and a system message beside an image are still
  bare 500s.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = [pytest.mark.realserver, pytest.mark.subprocess]

SYSTEM_WITH_IMAGE_ERROR = "Prompting with images is incompatible with system messages."


def png_data_url(size: tuple[int, int] = (64, 48), color=(200, 30, 30)) -> str:
    """A PNG made with Pillow, as a data URL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_messages(text: str = "Describe the image.", url: str | None = None) -> list[dict]:
    """One user turn: the image part first, then the text, as llamavis sends it."""
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url or png_data_url()}},
        {"type": "text", "text": text},
    ]}]


@pytest.fixture
def client():
    """An httpx client that ignores proxy settings (loopback only)."""
    with httpx.Client(trust_env=False, timeout=60.0) as c:
        yield c


def chat(client: httpx.Client, server, **body) -> httpx.Response:
    """POST /chat/completions with the tiny model and a short answer unless overridden."""
    payload = {"model": server.model, "messages": image_messages(), "max_tokens": 8, **body}
    return client.post(f"{server.base_url}/chat/completions", json=payload)


def sse_events(client: httpx.Client, server, **body) -> tuple[httpx.Response, list[str]]:
    """Stream a chat request; return the response and the raw `data:` payloads in order."""
    payload = {"model": server.model, "messages": image_messages(), "max_tokens": 6,
               "stream": True, **body}
    with client.stream("POST", f"{server.base_url}/chat/completions", json=payload) as resp:
        lines = list(resp.iter_lines())
    return resp, [line[len("data: "):] for line in lines if line.startswith("data: ")]


def test_models_lists_the_tiny_model_without_revision_suffix(realserver, client):
    resp = client.get(f"{realserver.base_url}/models")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["object"] == "list"
    entry = next(m for m in body["data"] if m["id"] == realserver.model)
    assert entry["object"] == "model"
    assert entry["owned_by"] == "llamavis-test"
    # transformers serve 5.23 sent a float, 5.24 an int (as OpenAI does): llamavis reads either.
    assert isinstance(entry["created"], (int, float)) and entry["created"] > 0


def test_one_image_then_text_answers_200_with_text(realserver, client):
    resp = chat(client, realserver, temperature=0)
    assert resp.status_code == 200, realserver.log_tail()
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    uuid.UUID(body["id"])  # a bare UUID, no "chatcmpl-" prefix
    assert resp.headers["x-request-id"] == body["id"]
    assert body["object"] == "chat.completion"
    assert body["model"] == realserver.model + "@main"  # echoed with the revision appended
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "cost" not in usage


def test_model_with_at_main_suffix_is_the_same_model(realserver, client):
    plain = chat(client, realserver, temperature=0)
    suffixed = chat(client, realserver, model=realserver.model + "@main", temperature=0)
    assert suffixed.status_code == 200
    assert suffixed.json()["choices"][0]["message"] == plain.json()["choices"][0]["message"]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_limit_is_honoured(realserver, client, field):
    resp = client.post(f"{realserver.base_url}/chat/completions", json={
        "model": realserver.model, "messages": image_messages(), field: 3, "temperature": 0})
    assert resp.status_code == 200
    body = resp.json()
    assert body["usage"]["completion_tokens"] <= 3
    if body["usage"]["completion_tokens"] == 3:
        assert body["choices"][0]["finish_reason"] == "length"


def test_stream_ends_after_finish_reason_and_usage_without_done(realserver, client):
    resp, events = sse_events(client, realserver, temperature=0)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in events  # the stream just ends
    chunks = [json.loads(e) for e in events]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert last["choices"][0]["delta"] == {}
    assert not any("usage" in c for c in chunks)  # 5.25: usage only when asked for
    assert all(c["choices"][0].get("finish_reason") is None for c in chunks[:-1])


def test_stream_options_include_usage_adds_a_usage_chunk_with_no_choices(realserver, client):
    resp, events = sse_events(client, realserver, stream_options={"include_usage": True})
    assert resp.status_code == 200
    assert "[DONE]" not in events
    chunks = [json.loads(e) for e in events]
    finish, last = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] in ("stop", "length")
    assert "usage" not in finish
    assert last["choices"] == []  # the usage chunk stands alone after the finish chunk
    assert last["usage"]["completion_tokens"] <= 6
    usage = last["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_streamed_text_is_a_prefix_of_the_whole_answer(realserver, client):
    """The stream withholds undecodable trailing bytes that the whole answer shows as U+FFFD."""
    whole = chat(client, realserver, temperature=0, max_tokens=24).json()
    _, events = sse_events(client, realserver, temperature=0, max_tokens=24,
                           stream_options={"include_usage": True})
    chunks = [json.loads(e) for e in events]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                       if c["choices"])
    text = whole["choices"][0]["message"]["content"]
    assert text.startswith(streamed)
    assert set(text[len(streamed):]) <= {"\ufffd"}
    assert chunks[-1]["usage"] == whole["usage"]  # same tokens, fewer characters


def test_temperature_0_is_deterministic_and_seed_is_accepted(realserver, client):
    greedy = [chat(client, realserver, temperature=0).json() for _ in range(2)]
    assert greedy[0]["choices"][0]["message"] == greedy[1]["choices"][0]["message"]
    seeded = [chat(client, realserver, temperature=0.7, seed=7) for _ in range(2)]
    assert [r.status_code for r in seeded] == [200, 200]
    # `seed` reseeds torch globally: with one request at a time, the same seed, the same text
    assert seeded[0].json()["choices"][0] == seeded[1].json()["choices"][0]


@pytest.mark.parametrize("response_format", [
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
        "type": "object", "properties": {"label": {"type": "string"}},
        "required": ["label"], "additionalProperties": False}}},
])
def test_response_format_is_accepted_and_ignored(realserver, client, response_format):
    plain = chat(client, realserver, temperature=0)
    constrained = chat(client, realserver, temperature=0, response_format=response_format)
    assert constrained.status_code == 200
    assert constrained.json()["choices"][0]["message"] == plain.json()["choices"][0]["message"]


def test_text_only_turns_work_for_reasks(realserver, client):
    messages = image_messages() + [
        {"role": "assistant", "content": "{not json"},
        {"role": "user", "content": "Return only valid JSON."},
    ]
    assert chat(client, realserver, messages=messages).status_code == 200
    no_image = [{"role": "user", "content": [{"type": "text", "text": "Return only JSON."}]}]
    assert chat(client, realserver, messages=no_image).status_code == 200


def log_mentions(server, text: str, within_s: float = 5.0) -> bool:
    """Whether the server log shows `text` (the traceback lands just after the response)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if text in server.log_path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def assert_plain_500(resp: httpx.Response) -> None:
    """The server's answer to most request mistakes: a bare 500 with no JSON body."""
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "Internal Server Error"
    assert "x-request-id" not in resp.headers


@pytest.mark.parametrize("stream", [False, True])
def test_system_message_beside_image_is_a_plain_500(realserver, client, stream):
    messages = [{"role": "system", "content": "Be brief."}, *image_messages()]
    resp = chat(client, realserver, messages=messages, stream=stream)
    assert_plain_500(resp)  # before any SSE byte, even when streaming
    assert log_mentions(realserver, SYSTEM_WITH_IMAGE_ERROR)  # the cause is only in the log


def test_system_message_without_image_is_fine(realserver, client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert chat(client, realserver, messages=messages).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_a_plain_500(realserver, client, stream):
    assert_plain_500(chat(client, realserver, model="llamavis-test/no-such-model", stream=stream))


def test_stop_with_a_vision_model_is_a_plain_500(realserver, client):
    # a transformers bug with vision models: send `stop` only when asked
    assert_plain_500(chat(client, realserver, stop=["\n"]))


@pytest.mark.parametrize(("body", "detail"), [
    ({"max_tokens": 0}, ""),
    ({"messages": image_messages(url="data:image/png;base64,!!!not-base64")},
     "Incorrect image source"),
    ({"messages": image_messages(url="data:image/png;base64," + base64.b64encode(b"hi").decode())},
     "Incorrect image source"),
], ids=["max_tokens_0", "bad_base64", "not_an_image"])
def test_request_mistakes_are_400_json_detail(realserver, client, body, detail):
    """transformers 5.25: these were bare 500s in 5.23/5.24; now a 400 that says why."""
    resp = chat(client, realserver, **body)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/json")
    assert isinstance(resp.json()["detail"], str) and detail in resp.json()["detail"]
    assert "x-request-id" in resp.headers


def test_unknown_field_is_422_json_detail(realserver, client):
    resp = chat(client, realserver, foo=1)
    assert resp.status_code == 422
    assert resp.json() == {"detail": "Unexpected fields in the request: {'foo'}"}


def test_openai_fields_it_does_not_support_are_ignored_not_rejected(realserver, client):
    resp = chat(client, realserver, n=1, user="llamavis", logprobs=False, top_p=0.9,
                frequency_penalty=0.1)
    assert resp.status_code == 200


def test_a_500_closes_the_connection(realserver):
    """After a 500 the server drops the keep-alive connection: a pooled retry must reconnect."""
    parts = urlsplit(realserver.base_url)
    body = json.dumps({"model": "llamavis-test/no-such-model", "messages": image_messages(),
                       "max_tokens": 2}).encode()
    head = (f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 500")
    assert b"connection: close" not in received.lower()  # closed without saying so
