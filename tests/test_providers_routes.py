"""The provider table's new routes (azure, langmart), per-provider endpoints, model aliases
and profiles, and `llamavis providers` / `llamavis models`, against loopback servers."""

from __future__ import annotations

import base64
import io
import json
import socket

import pytest

from llamavis.backends.models import LLAMA_4, LLAMA_32_VISION, profile_for
from llamavis.backends.providers import PROVIDERS, resolve_base_url
from llamavis.errors import ConfigError, UsageError
from llamavis.providers.facts import serving_routes

from fakeserver import FakeServer, Reply
from support.cli import invoke as llamavis

KEY = "test-SENTINEL-key-5b4a39"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


# -- providers ---------------------------------------------------------------------------


def test_providers_lists_cloudflare_azure_and_langmart_with_their_variables():
    proc = llamavis("providers")
    assert proc.returncode == 0, proc.stderr
    for name, var in (("cloudflare", "CLOUDFLARE_API_TOKEN"), ("azure", "AZURE_AI_CHAT_KEY"),
                      ("langmart", "LANGMART_API_KEY")):
        line = next(line for line in proc.stdout.splitlines() if line.startswith(name))
        assert var in line
    assert "AZURE_AI_CHAT_ENDPOINT" in proc.stdout and "CLOUDFLARE_ACCOUNT_ID" in proc.stdout
    # the local stacks that still run the model, with how to start them
    assert "vllm serve meta-llama/Llama-3.2-11B-Vision-Instruct" in proc.stdout
    assert "ollama pull llama3.2-vision" in proc.stdout


def test_providers_json_names_base_url_variables_and_local_start_commands():
    rows = {r["provider"]: r for r in json.loads(llamavis("providers", "--json").stdout)}
    assert set(rows) >= {"cloudflare", "azure", "langmart"}
    assert "LLAMAVIS_DEEPINFRA_BASE_URL" in rows["deepinfra"]["base_url_env"]
    assert "AZURE_AI_CHAT_ENDPOINT" in rows["azure"]["base_url_env"]
    stacks = rows["local"]["local_stacks"] + rows["ollama"]["local_stacks"]
    assert all(s["command"] and s["base_url"] and s["model"] for s in stacks)
    assert any("sglang" in s["command"] for s in stacks)


# -- endpoints ---------------------------------------------------------------------------


def test_base_url_precedence_flag_then_provider_variable_then_default():
    spec = PROVIDERS["deepinfra"]
    env = {"LLAMAVIS_DEEPINFRA_BASE_URL": "http://proxy.example/v1/"}
    assert resolve_base_url(spec, "http://flag.example/v1", environ=env) == "http://flag.example/v1"
    assert resolve_base_url(spec, None, environ=env) == "http://proxy.example/v1"
    assert resolve_base_url(spec, None, environ={}) == spec.base_url


def test_provider_base_url_variable_reaches_the_wire_and_llamavis_base_url_wins(make_image):
    image = str(make_image())
    with FakeServer("from the proxy") as proxy, FakeServer("from the flag") as flag:
        by_var = llamavis("caption", image, "-P", "deepinfra", "--no-cache", env={
            "DEEPINFRA_API_KEY": KEY, "LLAMAVIS_DEEPINFRA_BASE_URL": proxy.url})
        by_env = llamavis("caption", image, "-P", "deepinfra", "--no-cache", env={
            "DEEPINFRA_API_KEY": KEY, "LLAMAVIS_DEEPINFRA_BASE_URL": proxy.url,
            "LLAMAVIS_BASE_URL": flag.url})
    assert (by_var.returncode, by_var.stdout.strip()) == (0, "from the proxy"), by_var.stderr
    assert (by_env.returncode, by_env.stdout.strip()) == (0, "from the flag"), by_env.stderr


def test_azure_without_an_endpoint_exits_3_naming_the_variable(make_image):
    proc = llamavis("caption", str(make_image()), "-P", "azure", env={"AZURE_AI_CHAT_KEY": KEY})
    assert proc.returncode == 3
    assert "AZURE_AI_CHAT_ENDPOINT" in proc.stderr and "--base-url" in proc.stderr


def test_azure_caption_with_base_url_sends_the_key_both_ways_and_the_api_version(make_image):
    with FakeServer("A caption from Azure.") as server:
        base = server.url.replace("/v1", "/models")  # a Foundry models endpoint
        proc = llamavis("caption", str(make_image()), "-P", "azure", "--base-url", base,
                        "--json", "--no-cache", env={"AZURE_AI_CHAT_KEY": KEY})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == "A caption from Azure."
    assert server.paths == ["/models/chat/completions?api-version=2024-05-01-preview"]
    assert server.headers[0]["api-key"] == KEY
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert server.requests[0]["model"] == "Llama-3.2-11B-Vision-Instruct"
    assert KEY not in proc.stdout + proc.stderr


def test_azure_endpoint_from_its_sdk_variable_keeps_an_api_version_it_names(make_image):
    with FakeServer("ok") as server:
        proc = llamavis("caption", str(make_image()), "-P", "azure", "--no-cache", env={
            "AZURE_AI_CHAT_KEY": KEY, "AZURE_AI_CHAT_ENDPOINT": server.url + "?api-version=2025-01-01"})
    assert proc.returncode == 0, proc.stderr
    assert server.paths == ["/v1/chat/completions?api-version=2025-01-01"]


def test_langmart_90b_sends_the_90b_id_with_a_bearer_key(make_image):
    with FakeServer("A caption.") as server:
        proc = llamavis("caption", str(make_image()), "-P", "langmart", "-m", "90b",
                        "--no-cache", env={"LANGMART_API_KEY": KEY,
                                           "LLAMAVIS_LANGMART_BASE_URL": server.url})
    assert proc.returncode == 0, proc.stderr
    assert server.requests[0]["model"] == "meta-llama/llama-3.2-90b-vision-instruct"
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"


# -- models, aliases, profiles -------------------------------------------------------------


def test_models_lists_llama_4_beside_llama_32_vision_and_each_routes_status():
    rows = json.loads(llamavis("models", "--json").stdout)
    families = {(r["provider"], r["alias"]): r for r in rows}
    assert families[("deepinfra", "scout")]["family"] == "Llama 4"
    assert families[("deepinfra", "11b")]["family"] == "Llama 3.2 Vision"
    assert families[("openrouter", "maverick")]["model"] == "meta-llama/llama-4-maverick"
    assert families[("novita", "11b")]["status"] == "retired 2025-05-28"
    assert "no endpoint" in families[("openrouter", "11b")]["status"]
    assert all(r["source"] for r in rows if r["status"] != "unknown")
    text = llamavis("models").stdout
    assert "Llama 4" in text and "Llama 3.2 Vision" in text


def test_scout_alias_sends_llama_4_and_a_larger_image_than_llama_32(make_image):
    big = str(make_image("big.jpg", size=(2400, 1600)))
    sizes = {}
    with FakeServer("ok") as server:
        for alias in ("11b", "scout"):
            proc = llamavis("caption", big, "-P", "deepinfra", "-m", alias, "--no-cache",
                            env={"DEEPINFRA_API_KEY": KEY, "LLAMAVIS_DEEPINFRA_BASE_URL": server.url})
            assert proc.returncode == 0, proc.stderr
    from PIL import Image

    for body in server.requests:
        url = body["messages"][0]["content"][0]["image_url"]["url"]
        sizes[body["model"]] = Image.open(io.BytesIO(base64.b64decode(url.split(",")[1]))).size
        assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "text"]
    assert max(sizes["meta-llama/Llama-3.2-11B-Vision-Instruct"]) == LLAMA_32_VISION.max_side == 1120
    assert max(sizes["meta-llama/Llama-4-Scout-17B-16E-Instruct"]) == LLAMA_4.max_side


def test_an_alias_a_provider_does_not_serve_is_a_usage_error(make_image):
    proc = llamavis("caption", str(make_image()), "-P", "cloudflare", "-m", "90b",
                    env={"CLOUDFLARE_API_TOKEN": KEY, "CLOUDFLARE_ACCOUNT_ID": "acc"})
    assert proc.returncode == 2
    assert "cloudflare does not serve 90b" in proc.stderr
    with pytest.raises(UsageError):
        PROVIDERS["novita"].model_id("scout")


def test_profiles_are_data_the_default_is_llama_32_vision():
    assert profile_for(None) is LLAMA_32_VISION
    assert profile_for("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8") is LLAMA_4
    assert profile_for("@cf/meta/llama-3.2-11b-vision-instruct") is LLAMA_32_VISION
    assert LLAMA_32_VISION.max_images == 1 and not LLAMA_32_VISION.system_with_image
    assert LLAMA_4.system_with_image and LLAMA_4.max_images > 1
    assert "openrouter" not in serving_routes("11b") and "nvidia" in serving_routes("11b")
    assert "deepinfra" not in serving_routes("11b")  # unconfirmed since 2026-07-02


# -- models from the server ----------------------------------------------------------------


def test_models_with_base_url_lists_what_the_server_serves_marking_llama_32_vision():
    served = {"/v1/models": {"object": "list", "data": [
        {"id": "meta-llama/Llama-3.2-11B-Vision-Instruct"}, {"id": "Qwen/Qwen2.5-VL-7B"}]}}
    with FakeServer(get=served) as server:
        text = llamavis("models", "--base-url", server.url)
        as_json = llamavis("models", "--base-url", server.url, "--json")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.startswith("meta-llama/Llama-3.2-11B-Vision-Instruct") and "Llama 3.2 Vision"
               in line for line in lines)
    assert any(line.strip() == "Qwen/Qwen2.5-VL-7B" for line in lines)
    rows = {r["model"]: r for r in json.loads(as_json.stdout)}
    assert rows["meta-llama/Llama-3.2-11B-Vision-Instruct"]["llama_3_2_vision"] is True
    assert rows["Qwen/Qwen2.5-VL-7B"]["llama_3_2_vision"] is False
    assert server.requests == []  # listing sends no chat request


def test_models_from_ollama_without_the_model_says_pull_and_which_versions_run_it():
    served = {"/v1/models": {"object": "list", "data": [{"id": "qwen2.5vl:7b"}]}}
    with FakeServer(get=served) as server:
        proc = llamavis("models", "-P", "ollama", "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert "ollama pull llama3.2-vision" in proc.stderr and "0.30" in proc.stderr


def test_models_from_an_unreachable_server_is_one_line_exit_1():
    proc = llamavis("models", "-P", "local", "--base-url", closed_port_url())
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "cannot connect" in proc.stderr and proc.stdout == ""


def test_ollama_model_not_found_says_pull_and_that_030_cannot_run_it(make_image):
    missing = Reply(status=404, body={"error": {
        "message": 'model "llama3.2-vision:11b" not found, try pulling it first',
        "type": "not_found_error", "param": None, "code": None}})
    with FakeServer(missing) as server:
        proc = llamavis("caption", str(make_image()), "-P", "ollama", "--base-url", server.url,
                        "--no-cache", "--max-retries", "0")
    assert proc.returncode == 1
    assert "ollama pull llama3.2-vision" in proc.stderr
    assert "Ollama 0.30 and later cannot run it" in proc.stderr


def test_config_error_for_unset_azure_endpoint_names_both_variables():
    with pytest.raises(ConfigError) as info:
        resolve_base_url(PROVIDERS["azure"], environ={})
    assert "AZURE_AI_CHAT_ENDPOINT" in str(info.value) and "LLAMAVIS_AZURE_BASE_URL" in str(info.value)
