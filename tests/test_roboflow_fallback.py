"""`llamavis roboflow --fallback`: a step whose OpenRouter route is dead, answered elsewhere.

The installed command against loopback servers: OpenRouter answers 404 "No endpoints found"
(providers.md section 10), DeepInfra's endpoint is set by LLAMAVIS_DEEPINFRA_BASE_URL. The
step's own api_key is OpenRouter's: it must reach OpenRouter and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_cli_roboflow import KEY, OTHER_KEY, documented_step, write
from test_routes import DEAD, NO_ENDPOINTS, image_of

from fakeserver import FakeServer
from test_cli_tasks import llamavis

STEP = "<your_step_name_here>"
CLASSES = ["cat", "dog"]
ID_11B_DEEPINFRA = "meta-llama/Llama-3.2-11B-Vision-Instruct"


def class_for(image: bytes) -> str:
    """The class a provider gives an image: its own, read from the bytes it was sent."""
    return CLASSES[hashlib.sha256(image).digest()[0] % 2]


def classify_by_image(body: dict) -> str:
    return class_for(image_of(body))


@pytest.fixture
def photos(make_image) -> list[Path]:
    """Six small PNGs (sent as they are, so the server sees each file's own bytes)."""
    return [make_image(f"photos/p{i}.png", color=(i * 40, 200 - i * 30, 90)) for i in range(6)]


def rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_a_dead_openrouter_step_is_answered_by_the_deepinfra_fallback(tmp_path, photos):
    step = write(tmp_path, documented_step(task_type="classification", api_key=KEY, classes=CLASSES,
                                           model_version="11B (Regular) - OpenRouter"))
    jobs = 2
    with FakeServer(DEAD) as openrouter, FakeServer(classify_by_image) as deepinfra:
        proc = llamavis("roboflow", step, str(tmp_path / "photos"), "--jsonl", "--no-cache",
                        "-j", str(jobs), "--base-url", openrouter.url, "--fallback", "deepinfra",
                        env={"DEEPINFRA_API_KEY": OTHER_KEY,
                             "LLAMAVIS_DEEPINFRA_BASE_URL": deepinfra.url})
    assert proc.returncode == 0, proc.stderr
    results = rows(proc.stdout)
    assert sorted(r["image"] for r in results) == sorted(map(str, photos))
    for row in results:
        entry = row[STEP]
        assert entry["provider"] == "deepinfra" and entry["model"] == ID_11B_DEEPINFRA
        assert entry["error"] is None and entry["classes"] == CLASSES
        assert entry["parsed"] == class_for(Path(row["image"]).read_bytes())  # its own image's
    # The step's key went to the route its model_version names, and only there.
    assert {h["Authorization"] for h in openrouter.headers} == {f"Bearer {KEY}"}
    assert {h["Authorization"] for h in deepinfra.headers} == {f"Bearer {OTHER_KEY}"}
    assert not any(KEY in json.dumps(h) for h in deepinfra.headers)
    assert not any(KEY in json.dumps(b) for b in deepinfra.requests)
    # Dropped as soon as it failed: at most the requests already in flight reached it.
    assert 1 <= len(openrouter.requests) <= jobs
    assert len(deepinfra.requests) == len(photos)
    assert proc.stderr.count("dropped for the rest of the run") == 1 and NO_ENDPOINTS in proc.stderr
    assert KEY not in proc.stdout + proc.stderr and OTHER_KEY not in proc.stdout + proc.stderr


def test_fallback_from_the_environment_applies_to_roboflow_steps(tmp_path, photos):
    step = write(tmp_path, documented_step(task_type="classification", api_key=KEY, classes=CLASSES))
    with FakeServer(DEAD) as openrouter, FakeServer(classify_by_image) as deepinfra:
        proc = llamavis("roboflow", step, str(photos[0]), "--json", "--no-cache",
                        "--base-url", openrouter.url,
                        env={"DEEPINFRA_API_KEY": OTHER_KEY, "LLAMAVIS_FALLBACK": "deepinfra",
                             "LLAMAVIS_DEEPINFRA_BASE_URL": deepinfra.url})
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(proc.stdout)[STEP]
    assert entry["provider"] == "deepinfra" and entry["parsed"] == class_for(photos[0].read_bytes())
    assert KEY not in proc.stdout + proc.stderr


def test_the_steps_key_is_not_lent_to_a_fallback_route_without_its_own(tmp_path, photos):
    step = write(tmp_path, documented_step(task_type="classification", api_key=KEY, classes=CLASSES))
    with FakeServer(DEAD) as openrouter, FakeServer(classify_by_image) as deepinfra:
        proc = llamavis("roboflow", step, str(photos[0]), "--json", "--no-cache",
                        "--base-url", openrouter.url, "--fallback", "deepinfra",
                        env={"DEEPINFRA_API_KEY": "", "LLAMAVIS_DEEPINFRA_BASE_URL": deepinfra.url})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("fallback deepinfra skipped") == 1 and "DEEPINFRA_API_KEY" in proc.stderr
    assert deepinfra.requests == []
    entry = json.loads(proc.stdout)[STEP]
    assert entry["parsed"] is None and entry["error"] is not None
    assert KEY not in proc.stdout + proc.stderr


def test_print_commands_carries_the_fallback(tmp_path):
    step = write(tmp_path, documented_step(task_type="classification", api_key=KEY, classes=CLASSES))
    proc = llamavis("roboflow", step, "--print-commands", "--fallback", "deepinfra")
    assert proc.returncode == 0, proc.stderr
    command = proc.stdout.splitlines()[1]
    assert command == "llamavis classify IMAGE... -c cat,dog -P openrouter -m 11b --fallback deepinfra"
    assert KEY not in proc.stdout + proc.stderr
