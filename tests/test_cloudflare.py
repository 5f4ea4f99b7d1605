"""Cloudflare Workers AI through its native API, and `llamavis agree cloudflare`.

In-process tests use respx; the command is run against tests/cfserver.py, which speaks the
native API as Cloudflare's model page and error table describe it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
import respx

from llamavis.backends.cloudflare import CloudflareClient, native_input
from llamavis.backends.providers import PROVIDERS, resolve_base_url
from llamavis.errors import ConfigError, ModelUnavailable, NetworkError

from cfserver import ACCOUNT, AGREE_5016, MODEL, CloudflareServer, envelope, image_answer
from support.cli import invoke as llamavis

TOKEN = "cf-test-SENTINEL-token-8e7d6c"
SPEC = PROVIDERS["cloudflare"]
BASE = f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/ai"
RUN = f"{BASE}/run/{MODEL}"
PNG = b"\x89PNG\r\n\x1a\nfake-image-bytes"
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def payload(**extra) -> dict:
    return {"model": MODEL, "max_tokens": 80, "temperature": 0.2, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": DATA_URL}},
                                     {"type": "text", "text": "Caption this."}]}], **extra}


def client(**kw) -> CloudflareClient:
    async def no_sleep(_s: float) -> None:
        return None

    return CloudflareClient(SPEC, api_key=TOKEN, base_url=BASE, sleep=no_sleep, **kw)


# -- the wire ----------------------------------------------------------------------------


def test_the_image_goes_as_a_list_of_byte_values_with_the_prompt():
    body = native_input(payload())
    assert body["image"] == list(PNG)
    assert body["prompt"] == "Caption this."
    assert body["max_tokens"] == 80 and body["temperature"] == 0.2
    assert "messages" not in body and "model" not in body


def test_a_text_only_reask_goes_as_messages_with_string_contents():
    reask = payload()
    reask["messages"] += [{"role": "assistant", "content": "{bad json"},
                          {"role": "user", "content": "Fix the JSON."}]
    body = native_input(reask)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert all(isinstance(m["content"], str) for m in body["messages"])
    assert body["image"] == list(PNG)


def test_the_default_base_url_takes_the_account_from_the_environment():
    assert resolve_base_url(SPEC, environ={"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}) == BASE
    with pytest.raises(ConfigError, match="CLOUDFLARE_ACCOUNT_ID"):
        resolve_base_url(SPEC, environ={})
    # --base-url replaces it whole
    assert resolve_base_url(SPEC, "http://proxy/ai/", environ={}) == "http://proxy/ai"


@respx.mock
def test_an_answer_is_read_from_result_response():
    route = respx.post(RUN).respond(200, json={
        "result": {"response": "A red square.", "usage": {"prompt_tokens": 12, "completion_tokens": 4}},
        "success": True, "errors": [], "messages": []})
    completion = asyncio.run(client().chat(payload()))
    assert completion.text == "A red square."
    assert completion.usage.prompt_tokens == 12 and completion.usage.completion_tokens == 4
    sent = json.loads(route.calls[0].request.content)
    assert sent["image"] == list(PNG)
    assert route.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


@respx.mock
def test_a_stream_of_response_events_is_assembled_until_done():
    events = "".join(f"data: {json.dumps(e)}\n\n" for e in (
        {"response": "A red"}, {"response": " square."},
        {"response": "", "usage": {"prompt_tokens": 9, "completion_tokens": 3}})) + "data: [DONE]\n\n"
    respx.post(RUN).respond(200, content=events.encode(), headers={"Content-Type": "text/event-stream"})
    pieces: list[str] = []
    completion = asyncio.run(client().chat(payload(stream=True), on_delta=pieces.append))
    assert pieces == ["A red", " square."]
    assert completion.text == "A red square." and completion.usage.completion_tokens == 3


@respx.mock
def test_a_stream_cut_before_done_is_not_an_answer():
    respx.post(RUN).respond(200, content=b'data: {"response": "A red"}\n\n',
                            headers={"Content-Type": "text/event-stream"})
    with pytest.raises(NetworkError, match="stream ended before the answer was complete"):
        asyncio.run(client(max_retries=0).chat(payload(stream=True)))


@respx.mock
def test_error_5016_is_a_config_error_saying_to_run_agree_and_keeps_the_key_out():
    respx.post(RUN).respond(403, json=envelope(5016, AGREE_5016 + f" (token {TOKEN})"))
    with pytest.raises(ConfigError) as info:
        asyncio.run(client().chat(payload()))
    assert info.value.exit_code == 3
    assert "llamavis agree cloudflare" in str(info.value)
    assert "you must submit the prompt 'agree'" in str(info.value)
    assert TOKEN not in str(info.value)


@respx.mock
def test_no_such_model_is_a_dead_route():
    respx.post(f"{BASE}/run/@cf/meta/nothing").respond(400, json=envelope(5007, "No such model"))
    with pytest.raises(ModelUnavailable, match="No such model"):
        asyncio.run(client().chat({**payload(), "model": "@cf/meta/nothing"}))


@respx.mock
def test_the_model_list_comes_from_models_search():
    respx.get(f"{BASE}/models/search").respond(200, json={
        "result": [{"id": "1", "name": MODEL}], "success": True, "errors": [], "messages": []})
    assert [m["id"] for m in asyncio.run(client().list_models())] == [MODEL]


# -- the command against a loopback Workers AI --------------------------------------------


def cf_env(cf: CloudflareServer) -> dict[str, str]:
    return {"CLOUDFLARE_API_TOKEN": TOKEN, "LLAMAVIS_CLOUDFLARE_BASE_URL": cf.url}


def test_before_agreeing_a_caption_exits_3_saying_how_and_agrees_nothing(make_image):
    with CloudflareServer(TOKEN) as cf:
        proc = llamavis("caption", str(make_image()), "-P", "cloudflare", "--no-cache",
                        env=cf_env(cf))
    assert proc.returncode == 3
    assert "llamavis agree cloudflare" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert cf.agreements == 0 and not cf.agreed
    assert all(body.get("prompt") != "agree" for body in cf.requests)


def test_agree_yes_agrees_once_then_single_images_and_a_batch_of_20_get_their_own_answers(
        make_image):
    one = make_image("one.png", color=(10, 20, 30))
    batch = [make_image(f"batch/{i}.png", color=(i * 11, 200, 90)) for i in range(20)]
    with CloudflareServer(TOKEN) as cf:
        env = cf_env(cf)
        agreed = llamavis("agree", "cloudflare", "--yes", env=env)
        again = llamavis("agree", "cloudflare", "--yes", env=env)
        single = llamavis("caption", str(one), "-P", "cloudflare", "--no-cache", env=env)
        many = llamavis("caption", *map(str, batch), "-P", "cloudflare", "-j", "4", "--jsonl",
                        "--no-cache", env=env)
    assert agreed.returncode == 0, agreed.stderr
    assert "llama3_2/LICENSE" in agreed.stderr and "USE_POLICY" in agreed.stderr
    assert again.returncode == 0 and "nothing sent" in again.stderr
    assert cf.agreements == 1
    assert single.returncode == 0, single.stderr
    assert single.stdout.strip() == image_answer(one.read_bytes(), "")
    assert many.returncode == 0, many.stderr
    results = [json.loads(line) for line in many.stdout.splitlines()]
    assert len(results) == 20
    for result in results:
        assert result["provider"] == "cloudflare" and result["model"] == MODEL
        assert result["output"] == image_answer(Path(result["image"]).read_bytes(), "")
    assert TOKEN not in agreed.stderr + single.stdout + single.stderr + many.stdout + many.stderr


def test_agree_off_a_terminal_without_yes_exits_2_and_sends_nothing():
    with CloudflareServer(TOKEN) as cf:
        proc = llamavis("agree", "cloudflare", env=cf_env(cf))
    assert proc.returncode == 2
    assert "--yes" in proc.stderr
    assert cf.requests == [] and cf.agreements == 0


def test_agree_takes_base_url_and_api_key_like_every_command():
    with CloudflareServer(TOKEN) as cf:
        proc = llamavis("agree", "cloudflare", "--yes", "--base-url", cf.url, "--api-key", TOKEN,
                        env={})
    assert proc.returncode == 0, proc.stderr
    assert cf.agreements == 1


def test_agree_for_a_provider_without_a_licence_step_exits_2():
    proc = llamavis("agree", "deepinfra", "--yes", env={})
    assert proc.returncode == 2 and "asks for no licence agreement" in proc.stderr


def test_no_account_id_exits_3_naming_the_variable(make_image):
    proc = llamavis("caption", str(make_image()), "-P", "cloudflare",
                    env={"CLOUDFLARE_API_TOKEN": TOKEN})
    assert proc.returncode == 3 and "CLOUDFLARE_ACCOUNT_ID" in proc.stderr


def test_dry_run_shows_the_native_request_with_the_image_shortened(make_image):
    proc = llamavis("caption", str(make_image()), "-P", "cloudflare", "--dry-run",
                    env={"CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_ACCOUNT_ID": ACCOUNT})
    assert proc.returncode == 0, proc.stderr
    request = json.loads(proc.stdout)["requests"][0]
    assert request["url"] == RUN
    assert isinstance(request["json"]["prompt"], str) and "messages" not in request["json"]
    assert len(request["json"]["image"]) < 20  # shortened, not thousands of byte values
    assert TOKEN not in proc.stdout
