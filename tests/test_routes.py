"""--fallback and dead routes: the installed command against loopback providers.

OpenRouter's route for Llama 3.2 Vision answers 404 "No endpoints found for ..." (providers.md
section 10); these tests play that, and check that an image moves to the next route only for
failures another route can fix, that the dead route is dropped at once, and that each answer
is its own image's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from llamavis.errors import (
    AuthError,
    ConfigError,
    ImageError,
    InvalidOutputError,
    ModelUnavailable,
    NetworkError,
    ProviderError,
    RateLimited,
    RefusedError,
)
from llamavis.providers.resolve import RouteSpec, parse_routes
from llamavis.run.fallback import route_failure

from fakeserver import FakeServer, Reply
from support.cli import invoke as llamavis
from support.cli import llamavis as installed

KEY_OR = "sk-or-test-SENTINEL-1a2b3c"
KEY_DI = "di-test-SENTINEL-4d5e6f"
NO_ENDPOINTS = "No endpoints found for meta-llama/llama-3.2-11b-vision-instruct."
DEAD = Reply(status=404, body={"error": {"message": NO_ENDPOINTS, "code": 404}})


def image_of(body: dict) -> bytes:
    for message in body["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part.get("type") == "image_url":
                return base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    return b""


def answer_for(image: bytes) -> str:
    return f"Picture {hashlib.sha256(image).hexdigest()[:10]}."


def own_answer(body: dict) -> str:
    """A provider whose answer names the image it was sent."""
    return answer_for(image_of(body))


@pytest.fixture
def images(make_image) -> list[Path]:
    """20 different small PNGs."""
    return [make_image(f"batch/img{i:02d}.png", color=(i * 12, 255 - i * 12, 40)) for i in range(20)]


def env_for(deepinfra: FakeServer | None = None, **extra: str) -> dict[str, str]:
    env = {"OPENROUTER_API_KEY": KEY_OR, "DEEPINFRA_API_KEY": KEY_DI, **extra}
    if deepinfra is not None:
        env["LLAMAVIS_DEEPINFRA_BASE_URL"] = deepinfra.url
    return env


def rows(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


# -- the must-show: a dead OpenRouter, DeepInfra behind it ------------------------------


def test_dead_openrouter_with_deepinfra_fallback_answers_all_20_from_deepinfra(images):
    jobs = 4
    with FakeServer(DEAD) as openrouter, FakeServer(own_answer) as deepinfra:
        proc = llamavis("caption", *map(str, images), "-P", "openrouter", "--base-url",
                        openrouter.url, "--fallback", "deepinfra", "-j", str(jobs), "--jsonl",
                        "--no-cache", env=env_for(deepinfra))
    assert proc.returncode == 0, proc.stderr
    results = rows(proc)
    assert len(results) == 20
    for result in results:
        assert result["provider"] == "deepinfra"
        assert result["model"] == "meta-llama/Llama-3.2-11B-Vision-Instruct"
        assert result["error"] is None
        # Its own image's answer: small PNGs go as they are, and the answer names the bytes.
        assert result["output"] == answer_for(Path(result["image"]).read_bytes())
    assert len({r["image"] for r in results}) == 20
    # Dropped as soon as it failed: at most the requests already in flight reached it.
    assert 1 <= len(openrouter.requests) <= jobs
    assert proc.stderr.count("dropped for the rest of the run") == 1
    assert NO_ENDPOINTS in proc.stderr
    assert KEY_OR not in proc.stderr + proc.stdout and KEY_DI not in proc.stderr + proc.stdout


def test_caption_on_a_dead_route_exits_1_with_the_providers_words_and_next_steps(make_image):
    with FakeServer(DEAD) as openrouter:
        proc = llamavis("caption", str(make_image()), "-P", "openrouter", "--base-url",
                        openrouter.url, "--no-cache", env=env_for())
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert NO_ENDPOINTS in line
    assert "llamavis doctor" in line and "--fallback nvidia" in line


def test_fallback_from_the_environment_and_the_alias_follows_to_the_next_route(make_image):
    with FakeServer(DEAD) as openrouter, FakeServer(own_answer) as deepinfra:
        proc = llamavis("caption", str(make_image()), "-P", "openrouter", "-m", "90b",
                        "--base-url", openrouter.url, "--json", "--no-cache",
                        env=env_for(deepinfra, LLAMAVIS_FALLBACK="deepinfra"))
    assert proc.returncode == 0, proc.stderr
    assert openrouter.requests[0]["model"] == "meta-llama/llama-3.2-90b-vision-instruct"
    assert deepinfra.requests[0]["model"] == "meta-llama/Llama-3.2-90B-Vision-Instruct"
    assert json.loads(proc.stdout)["model"] == "meta-llama/Llama-3.2-90B-Vision-Instruct"


def test_a_fallback_route_with_no_key_is_skipped_with_one_note(images):
    with FakeServer(DEAD) as openrouter:
        proc = llamavis("caption", *map(str, images[:3]), "-P", "openrouter", "--base-url",
                        openrouter.url, "--fallback", "novita", "--jsonl", "--no-cache",
                        env={"OPENROUTER_API_KEY": KEY_OR})
    assert proc.returncode == 1
    assert proc.stderr.count("fallback novita skipped") == 1
    assert "NOVITA_API_KEY" in proc.stderr


def test_a_key_rejected_by_a_fallback_route_does_not_stop_the_batch(images):
    rejected = Reply(status=401, body={"error": {"message": "Invalid API key", "code": 401}})
    with FakeServer(DEAD) as openrouter, FakeServer(rejected) as novita, \
            FakeServer(own_answer) as deepinfra:
        proc = llamavis("caption", *map(str, images[:8]), "-P", "openrouter", "--base-url",
                        openrouter.url, "--fallback", "novita,deepinfra", "-j", "2", "--jsonl",
                        "--no-cache", env=env_for(deepinfra, NOVITA_API_KEY="nv-key-123456",
                                                  LLAMAVIS_NOVITA_BASE_URL=novita.url))
    assert proc.returncode == 0, proc.stderr
    results = rows(proc)
    assert len(results) == 8 and {r["provider"] for r in results} == {"deepinfra"}
    assert len(novita.requests) <= 2
    assert "novita" in proc.stderr and "rejected the key" in proc.stderr


def test_when_every_route_is_dead_each_image_fails_without_hammering_them(images):
    with FakeServer(DEAD) as openrouter, FakeServer(Reply(status=503, body={
            "error": {"message": "Service Unavailable"}})) as deepinfra:
        proc = llamavis("caption", *map(str, images[:10]), "-P", "openrouter", "--base-url",
                        openrouter.url, "--fallback", "deepinfra", "-j", "2", "--jsonl",
                        "--no-cache", "--max-retries", "0", env=env_for(deepinfra))
    assert proc.returncode == 1
    results = rows(proc)
    assert len(results) == 10 and all(r["error"] for r in results)
    assert all("no route could answer" in r["error"]["message"] for r in results)
    assert NO_ENDPOINTS in results[0]["error"]["message"]
    # each route dropped at its first failure: at most -j requests each
    assert len(openrouter.requests) <= 2 and len(deepinfra.requests) <= 2


def test_an_images_own_failure_does_not_move_to_the_fallback(tmp_path):
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"this is text, not a JPEG")
    with FakeServer("A caption.") as primary, FakeServer(own_answer) as deepinfra:
        proc = llamavis("caption", str(bad), "-P", "local", "--base-url", primary.url,
                        "--fallback", "deepinfra", "--json", "--no-cache", env=env_for(deepinfra))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["kind"] == "bad_image"
    assert deepinfra.requests == []


def test_an_answer_that_never_validates_stays_on_its_route(make_image):
    with FakeServer("banana") as primary, FakeServer(own_answer) as deepinfra:
        proc = llamavis("classify", str(make_image()), "-c", "cat,dog", "-P", "local",
                        "--base-url", primary.url, "--fallback", "deepinfra", "--json",
                        "--no-cache", "--max-retries", "1", env=env_for(deepinfra))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["kind"] == "invalid_output"
    assert deepinfra.requests == []


def test_usage_and_attempts_add_up_across_routes(make_image):
    # The first route answers (and is paid for), then fails with server errors on the re-ask.
    first = [Reply(text="not json at all", usage={"prompt_tokens": 100, "completion_tokens": 7}),
             Reply(status=502, body={"error": {"message": "upstream died"}})]
    good = Reply(text='{"colour": "red"}', usage={"prompt_tokens": 50, "completion_tokens": 5})
    with FakeServer(first) as primary, FakeServer(good) as deepinfra:
        proc = llamavis("structured", str(make_image()), "--field", "colour=main colour",
                        "-P", "local", "--base-url", primary.url, "--fallback", "deepinfra",
                        "--json", "--no-cache", "--max-retries", "1", env=env_for(deepinfra))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert doc["output"] == {"colour": "red"} and doc["provider"] == "deepinfra"
    assert doc["usage"]["prompt_tokens"] == 150 and doc["usage"]["completion_tokens"] == 12
    # every request sent: the first and the re-ask on the first route (502, retried: 3
    # requests), then one on deepinfra (issue 18: attempts counts retries too)
    assert len(primary.requests) == 3 and len(deepinfra.requests) == 1
    assert doc["attempts"] == 4


def test_the_cache_stays_per_route(images):
    with FakeServer(DEAD) as openrouter, FakeServer(own_answer) as deepinfra:
        args = ("caption", *map(str, images[:5]), "-P", "openrouter", "--base-url",
                openrouter.url, "--fallback", "deepinfra", "--jsonl")
        first = llamavis(*args, env=env_for(deepinfra))
        asked = len(deepinfra.requests)
        second = llamavis(*args, env=env_for(deepinfra))
    assert first.returncode == second.returncode == 0, second.stderr
    assert asked == 5 and len(deepinfra.requests) == 5  # the second run asked deepinfra nothing
    assert all(r["cached"] and r["provider"] == "deepinfra" for r in rows(second))


def test_a_fallback_routes_cached_answers_are_given_under_max_cost_0(images):
    with FakeServer(DEAD) as openrouter, FakeServer(own_answer) as deepinfra:
        args = ("caption", *map(str, images[:3]), "-P", "openrouter", "--base-url",
                openrouter.url, "--fallback", "deepinfra", "--jsonl")
        first = llamavis(*args, env=env_for(deepinfra))
        free = llamavis(*args, "--max-cost", "0", env=env_for(deepinfra))
    assert first.returncode == free.returncode == 0, free.stderr
    assert len(deepinfra.requests) == 3  # nothing asked under the zero budget
    assert len(rows(free)) == 3 and all(r["cached"] for r in rows(free))


# -- which failures move an image --------------------------------------------------------


@pytest.mark.parametrize(("exc", "moves"), [
    (ModelUnavailable("openrouter HTTP 404: No endpoints found", status=404), True),
    (ProviderError("HTTP 502", status=502), True),
    (ProviderError("HTTP 402: more credits", status=402), True),
    (NetworkError("cannot connect"), True),
    (AuthError("HTTP 401", status=401), True),
    (ConfigError("licence not accepted"), True),
    (ProviderError("HTTP 400: bad request", status=400), False),
    (RateLimited("HTTP 429", status=429), False),
    (ImageError("not an image"), False),
    (RefusedError("refused"), False),
    (InvalidOutputError("never valid"), False),
])
def test_only_failures_another_route_can_fix_move_an_image(exc, moves):
    assert (route_failure(exc) is not None) is moves


def test_routes_parse_provider_and_optional_model():
    assert parse_routes("deepinfra, cloudflare:11b,,") == [
        RouteSpec("deepinfra"), RouteSpec("cloudflare", "11b")]
    assert parse_routes(["azure", "langmart:90b"]) == [RouteSpec("azure"), RouteSpec("langmart", "90b")]
    assert parse_routes(None) == []


def test_an_unknown_fallback_provider_exits_2(make_image):
    proc = llamavis("caption", str(make_image()), "-P", "local", "--base-url",
                    "http://127.0.0.1:9/v1", "--fallback", "nowhere")
    assert proc.returncode == 2
    assert "unknown provider 'nowhere'" in proc.stderr


def test_when_every_route_rejects_its_key_the_run_stops_with_exit_3(images):
    rejected = Reply(status=401, body={"error": {"message": "User not found.", "code": 401}})
    with FakeServer(rejected) as openrouter, FakeServer(rejected) as deepinfra:
        proc = llamavis("caption", *map(str, images[:4]), "-P", "openrouter", "--base-url",
                        openrouter.url, "--fallback", "deepinfra", "-j", "1", "--jsonl",
                        "--no-cache", env=env_for(deepinfra))
    assert proc.returncode == 3
    assert "User not found." in proc.stderr
    assert len(openrouter.requests) == 1 and len(deepinfra.requests) == 1


@pytest.mark.subprocess
def test_an_image_on_standard_input_reaches_the_fallback_whole(make_image):
    data = make_image("stdin.png", color=(1, 2, 3)).read_bytes()
    with FakeServer(DEAD) as openrouter, FakeServer(own_answer) as deepinfra:
        proc = installed("caption", "-", "-P", "openrouter", "--base-url", openrouter.url,
                         "--fallback", "deepinfra", "--no-cache", input=data, env=env_for(deepinfra))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == answer_for(data)
