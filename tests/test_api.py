"""The Python API: llamavis.analyze and friends, with HTTP mocked in-process by respx."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import respx

import llamavis

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = "http://127.0.0.1:8000/v1"


def answer(text: str, finish: str = "stop") -> httpx.Response:
    return httpx.Response(200, json={
        "id": "x", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1610, "completion_tokens": 3},
    })


@respx.mock(assert_all_called=True)
def test_analyze_returns_a_result_with_the_spec_fields(respx_mock):
    route = respx_mock.post(f"{BASE}/chat/completions").mock(return_value=answer("A red ball."))
    result = llamavis.analyze(str(EXAMPLES / "shapes.jpg"), task="caption", provider="local", base_url=BASE)
    assert result.ok and result.output == "A red ball."
    assert set(result.to_dict()) >= {"image", "task", "provider", "model", "output", "raw", "usage",
                                     "attempts", "cached", "elapsed_s", "error"}
    sent = json.loads(route.calls[0].request.content)
    assert [p["type"] for p in sent["messages"][0]["content"]] == ["image_url", "text"]


@respx.mock
def test_analyze_classify_lands_in_the_given_classes(respx_mock):
    respx_mock.post(f"{BASE}/chat/completions").mock(return_value=answer("The image shows DOGS."))
    result = llamavis.analyze(str(EXAMPLES / "shapes.jpg"), task="classify", classes=["cat", "Dog"],
                              provider="local", base_url=BASE)
    assert result.output == "Dog"


def test_analyze_reports_a_bad_image_in_the_result(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = llamavis.analyze(str(bad), provider="local", base_url=BASE)
    assert result.output is None and result.error["kind"] == "bad_image" and "bad.jpg" in result.error["message"]


def test_analyze_without_a_key_raises_config_error():
    with pytest.raises(llamavis.ConfigError, match="OPENROUTER_API_KEY"):
        llamavis.analyze(str(EXAMPLES / "shapes.jpg"), provider="openrouter")


@respx.mock
def test_analyze_many_keeps_input_order(respx_mock):
    respx_mock.post(f"{BASE}/chat/completions").mock(return_value=answer("ok"))
    images = [str(EXAMPLES / n) for n in ("shapes.jpg", "sign.png", "receipt.png")]
    results = llamavis.analyze_many(images, provider="local", base_url=BASE, concurrency=3, cache=False)
    assert [r.image for r in results] == images and all(r.ok for r in results)


@pytest.mark.subprocess
def test_importing_llamavis_loads_no_cli_or_heavy_modules():
    code = ("import sys, llamavis; heavy = {'typer', 'rich', 'httpx', 'PIL', 'pydantic', 'jsonschema'};"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@respx.mock
def test_structured_falls_back_to_prompt_only_json_when_the_endpoint_refuses_response_format(respx_mock):
    refusal = httpx.Response(404, json={"error": {
        "message": "No endpoints found that can handle the requested parameters.", "code": 404}})
    route = respx_mock.post("https://openrouter.ai/api/v1/chat/completions").mock(
        side_effect=[refusal, answer('{"colour": "red"}')])
    result = llamavis.analyze(str(EXAMPLES / "shapes.jpg"), task="structured", provider="openrouter",
                              api_key="sk-or-test", schema={"type": "object",
                                                            "properties": {"colour": {"type": "string"}},
                                                            "required": ["colour"]})
    assert result.ok and result.output == {"colour": "red"}
    first, second = (json.loads(c.request.content) for c in route.calls)
    assert first["response_format"]["type"] == "json_schema" and first["provider"] == {"require_parameters": True}
    assert "response_format" not in second and "provider" not in second


@respx.mock
def test_analyze_works_inside_a_running_event_loop_as_in_a_notebook(respx_mock):
    respx_mock.post(f"{BASE}/chat/completions").mock(return_value=answer("A red ball."))
    image = str(EXAMPLES / "shapes.jpg")

    async def notebook_cell():
        one = llamavis.analyze(image, provider="local", base_url=BASE)
        many = llamavis.analyze_many([image], provider="local", base_url=BASE, cache=False)
        return one, many

    one, many = asyncio.run(notebook_cell())
    assert one.output == "A red ball." and [r.output for r in many] == ["A red ball."]


@respx.mock
def test_usage_of_answers_given_is_kept_when_a_later_reask_fails(respx_mock):
    failed = httpx.Response(400, json={"error": {"message": "context length exceeded", "code": 400}})
    respx_mock.post(f"{BASE}/chat/completions").mock(side_effect=[answer('{"shade": "red"}'), failed])
    result = llamavis.analyze(str(EXAMPLES / "shapes.jpg"), task="structured", provider="local",
                              base_url=BASE, schema={"type": "object", "required": ["colour"],
                                                     "properties": {"colour": {"type": "string"}}})
    assert result.error["kind"] == "provider" and result.attempts == 2
    assert result.usage.prompt_tokens == 1610 and result.usage.completion_tokens == 3


@respx.mock
def test_usage_adds_up_when_a_reask_is_stopped_by_the_content_filter(respx_mock):
    respx_mock.post(f"{BASE}/chat/completions").mock(
        side_effect=[answer('{"shade": "red"}'), answer("", finish="content_filter")])
    result = llamavis.analyze(str(EXAMPLES / "shapes.jpg"), task="structured", provider="local",
                              base_url=BASE, schema={"type": "object", "required": ["colour"],
                                                     "properties": {"colour": {"type": "string"}}})
    assert result.error["kind"] == "refused" and result.attempts == 2
    assert result.usage.prompt_tokens == 2 * 1610
