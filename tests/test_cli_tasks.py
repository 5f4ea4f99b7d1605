"""Every task through every provider: the installed command against a loopback server."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

from fakeserver import FakeServer, Reply
from support.cli import invoke as llamavis  # in this process: output and exit code are checked
from support.cli import llamavis as installed_llamavis

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROVIDERS = ["openrouter", "novita", "deepinfra", "ollama", "local"]
KEY = "sk-test-SENTINEL-7f3a9c"


def key_env(provider: str) -> dict[str, str]:
    var = {"openrouter": "OPENROUTER_API_KEY", "novita": "NOVITA_API_KEY",
           "deepinfra": "DEEPINFRA_API_KEY", "local": "LLAMAVIS_API_KEY"}.get(provider)
    return {var: KEY} if var else {}


TASK_CASES = [
    ("caption", [], "A red ball on green grass.", "A red ball on green grass."),
    ("detailed-caption", [], "A red ball lies on grass under a blue sky.", "A red ball lies on grass under a blue sky."),
    ("ocr", [], "STOP", "STOP"),
    ("vqa", ["-q", "What colour is the ball?"], "Red.", "Red."),
    ("classify", ["-c", "indoor,outdoor"], "Outdoor", "outdoor"),
    ("multi-classify", ["-c", "ball,sky,car"], '["ball", "sky"]', ["ball", "sky"]),
    ("structured", ["--field", "colour=colour of the ball"], '{"colour": "red"}', {"colour": "red"}),
    ("prompt", ["-p", "Say hi"], "hi", "hi"),
]


def image_parts(body: dict) -> list[dict]:
    return [p for m in body["messages"] for p in (m["content"] if isinstance(m["content"], list) else [])
            if p.get("type") == "image_url"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("task", "args", "answer", "expected"), TASK_CASES, ids=[c[0] for c in TASK_CASES])
def test_every_task_answers_through_every_provider(provider, task, args, answer, expected):
    with FakeServer(answer) as server:
        proc = llamavis(task, str(EXAMPLES / "shapes.jpg"), *args, "-P", provider,
                        "--base-url", server.url, "--json", "--no-cache", env=key_env(provider))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["output"] == expected
    assert doc["provider"] == provider and doc["task"] == task and doc["error"] is None
    assert doc["attempts"] == 1 and doc["cached"] is False
    body = server.requests[0]
    # The layout Llama 3.2 Vision was trained on: one user turn, one image, image first.
    assert [m["role"] for m in body["messages"]] == ["user"]
    content = body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url", "text"]
    assert body["max_tokens"] > 0
    if provider in ("openrouter", "novita", "deepinfra", "local"):
        assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in proc.stdout + proc.stderr


@pytest.mark.parametrize("answer", ["class-a", "class-b", "Class: class-b"])
def test_classify_class_a_class_b_takes_the_exact_class_at_the_first_attempt(answer):
    with FakeServer(answer) as server:
        proc = llamavis("classify", str(EXAMPLES / "shapes.jpg"), "-c", "class-a,class-b",
                        "-P", "local", "--base-url", server.url, "--json", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["output"] == answer.rsplit(" ", 1)[-1] and doc["attempts"] == 1
    assert len(server.requests) == 1


def test_model_aliases_map_to_each_providers_ids():
    seen = {}
    with FakeServer("ok") as server:
        for provider in PROVIDERS:
            for model in ("11b", "90b"):
                proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "-P", provider, "-m", model,
                                "--base-url", server.url, "--no-cache", env=key_env(provider))
                assert proc.returncode == 0, proc.stderr
                seen[(provider, model)] = server.requests[-1]["model"]
    assert seen[("openrouter", "11b")] == "meta-llama/llama-3.2-11b-vision-instruct"
    assert seen[("openrouter", "90b")] == "meta-llama/llama-3.2-90b-vision-instruct"
    assert seen[("deepinfra", "90b")] == "meta-llama/Llama-3.2-90B-Vision-Instruct"
    assert seen[("ollama", "11b")] == "llama3.2-vision:11b"
    assert seen[("local", "11b")] == "meta-llama/Llama-3.2-11B-Vision-Instruct"


def test_roboflow_model_version_is_accepted():
    with FakeServer("ok") as server:
        proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "-m", "90B (Free) - OpenRouter",
                        "--base-url", server.url, env=key_env("openrouter"))
    assert proc.returncode == 0, proc.stderr
    assert server.requests[0]["model"] == "meta-llama/llama-3.2-90b-vision-instruct"


def test_large_photo_reaches_the_server_at_most_1120px(tmp_path):
    from PIL import Image

    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(path, quality=80)
    with FakeServer("a blue picture") as server:
        proc = llamavis("caption", str(path), "--base-url", server.url, "-P", "local")
    assert proc.returncode == 0, proc.stderr
    url = image_parts(server.requests[0])[0]["image_url"]["url"]
    header, b64 = url.split(",", 1)
    assert header.startswith("data:image/")
    sent = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert max(sent.size) == 1120 and sent.size == (1120, 840)


def test_piped_single_image_prints_only_the_answer():
    with FakeServer("A red ball.") as server:
        proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url, "-P", "local")
    assert proc.returncode == 0
    assert proc.stdout == "A red ball.\n"


def test_piped_several_images_print_path_tab_answer_lines():
    images = [str(EXAMPLES / "shapes.jpg"), str(EXAMPLES / "sign.png")]
    with FakeServer("line one\nline two") as server:
        proc = llamavis("caption", *images, "--base-url", server.url, "-P", "local", "--ordered")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [f"{images[0]}\tline one\\nline two", f"{images[1]}\tline one\\nline two"]


def test_dry_run_sends_nothing_and_shows_no_key():
    proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--dry-run", "--base-url", "http://127.0.0.1:9/v1",
                    env={"OPENROUTER_API_KEY": KEY})
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["request_count"] == 1
    req = doc["requests"][0]
    assert req["url"] == "http://127.0.0.1:9/v1/chat/completions"
    assert "***" in req["headers"]["Authorization"]
    url = req["json"]["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/") and len(url) < 200
    assert doc["estimated_cost_usd"] is not None


def test_dry_run_works_without_any_key():
    proc = llamavis("classify", str(EXAMPLES / "shapes.jpg"), "-c", "a,b", "--dry-run", "-P", "openrouter")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["request_count"] == 1


def test_missing_key_exits_3_with_hint():
    proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "-P", "openrouter")
    assert proc.returncode == 3
    assert "OPENROUTER_API_KEY" in proc.stderr and "llamavis keys set openrouter" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_provider_at_all_exits_3_and_says_how_to_set_one_up():
    proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"))
    assert proc.returncode == 3
    # it points at the routes that still serve the model (OpenRouter lists it with no endpoint)
    assert "NVIDIA_API_KEY" in proc.stderr and "keys set" in proc.stderr
    assert "OPENROUTER_API_KEY" not in proc.stderr
    assert "llamavis doctor" in proc.stderr


def test_stored_key_is_used_and_never_printed(tmp_path):
    proc = llamavis("keys", "set", "openrouter", input=(KEY + "\n").encode())
    assert proc.returncode == 0, proc.stderr
    keys_file = Path(llamavis("keys", "path").stdout.strip())
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    assert llamavis("keys", "list").stdout.split() == ["openrouter"]
    with FakeServer("ok") as server:
        proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in proc.stdout + proc.stderr


def test_environment_key_beats_keys_file_and_api_key_beats_both():
    llamavis("keys", "set", "openrouter", input=b"stored-key\n")
    with FakeServer("ok") as server:
        llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url,
                 env={"OPENROUTER_API_KEY": "env-key"})
        llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url, "--no-cache",
                 "--api-key", "flag-key", env={"OPENROUTER_API_KEY": "env-key"})
    assert [h["Authorization"] for h in server.headers] == ["Bearer env-key", "Bearer flag-key"]


def test_openrouter_sends_attribution_headers():
    with FakeServer("ok") as server:
        llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url, env=key_env("openrouter"))
    headers = {k.lower(): v for k, v in server.headers[0].items()}
    assert headers["http-referer"] and headers["x-openrouter-title"] == "llamavis"


@pytest.mark.parametrize(("args", "needle"), [
    (["vqa"], "--question"),
    (["classify"], "--classes"),
    (["structured"], "--field"),
    (["structured", "--field", "novalue"], "--field"),
    (["prompt"], "--prompt"),
    (["caption", "-P", "nosuch"], "unknown provider"),
])
def test_usage_errors_exit_2_with_one_line(args, needle):
    proc = llamavis(*args[:1], str(EXAMPLES / "shapes.jpg"), *args[1:], env=key_env("openrouter"))
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.subprocess
def test_version_and_module_entry_point():
    proc = installed_llamavis("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("llamavis ")


def test_template_override_from_config_dir(tmp_path):
    prompts_dir = Path(os.environ["LLAMAVIS_CONFIG_DIR"]) / "prompts"
    prompts_dir.mkdir(parents=True)
    (prompts_dir / "caption.toml").write_text(
        'name = "caption"\nuser = "Caption it in French."\nvariables = []\n[defaults]\nmax_tokens = 33\n')
    with FakeServer("Une balle rouge.") as server:
        proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url, "-P", "local")
    assert proc.returncode == 0, proc.stderr
    body = server.requests[0]
    assert body["messages"][0]["content"][1]["text"] == "Caption it in French."
    assert body["max_tokens"] == 33


def test_template_option_runs_a_command_with_another_template():
    with FakeServer("long text") as server:
        proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--template", "detailed-caption",
                        "--base-url", server.url, "-P", "local")
    assert proc.returncode == 0, proc.stderr
    assert "Describe this image in detail" in server.requests[0]["messages"][0]["content"][1]["text"]


def test_stdin_image_bytes():
    data = (EXAMPLES / "shapes.jpg").read_bytes()
    with FakeServer("from stdin") as server:
        proc = llamavis("caption", "-", "--base-url", server.url, "-P", "local", "--json", input=data)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image"] == "-"


def test_provider_error_is_one_line_and_exit_1():
    body = {"error": {"message": "Provider returned error", "code": 502,
                      "metadata": {"raw": "{\"error\": \"model overloaded\"}", "provider_name": "DeepInfra"}}}
    with FakeServer(Reply(status=400, body=body)) as server:
        proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url, "-P", "openrouter",
                        env=key_env("openrouter"))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model overloaded" in lines[0] and "Traceback" not in proc.stderr


def test_rejected_key_exits_3():
    body = {"error": {"message": "User not found.", "code": 401}}
    with FakeServer(Reply(status=401, body=body)) as server:
        proc = llamavis("caption", str(EXAMPLES / "shapes.jpg"), "--base-url", server.url,
                        env=key_env("openrouter"))
    assert proc.returncode == 3
    assert "User not found" in proc.stderr and KEY not in proc.stderr


def test_admin_commands_list_providers_models_and_prompts():
    providers = llamavis("providers", "--json", env={"DEEPINFRA_TOKEN": KEY})
    rows = {r["provider"]: r for r in json.loads(providers.stdout)}
    assert set(rows) == {*PROVIDERS, "nvidia", "cloudflare", "azure", "langmart", "transformers"}
    assert rows["deepinfra"]["key"].startswith("set")
    assert rows["transformers"]["key"] == "not needed"  # in-process: no server, no key
    assert KEY not in providers.stdout
    # (-P ollama and -P local ask the server: tests/test_providers_routes.py)
    models = json.loads(llamavis("models", "-P", "novita", "--json").stdout)
    assert {m["model"] for m in models} == {"meta-llama/llama-3.2-11b-vision-instruct",
                                            "meta-llama/llama-3.2-90b-vision-instruct"}
    names = llamavis("prompts").stdout
    for task in ("caption", "detailed-caption", "ocr", "vqa", "classify", "multi-classify", "structured", "prompt"):
        assert task in names
    assert "$question" in llamavis("prompts", "vqa").stdout
