"""`llamavis roboflow` runs on the one core (run/session.Session): the options every task
command takes are checked and honoured the same way (issue 20's roboflow part)."""

from __future__ import annotations

import json

import pytest
from test_cli_roboflow import EXAMPLES, KEY, OTHER_KEY, documented_step, write

from fakeserver import FakeServer
from test_cli_tasks import llamavis

PHOTO = str(EXAMPLES / "shapes.jpg")
STEP = "<your_step_name_here>"


def classification_step(tmp_path) -> str:
    return write(tmp_path, documented_step(task_type="classification", api_key=KEY,
                                           model_version="11B (Regular) - OpenRouter"))


@pytest.mark.parametrize("dry", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_a_bad_device_exits_2_like_caption_before_any_request(tmp_path, dry):
    step = classification_step(tmp_path)
    with FakeServer("class-a") as server:
        caption = llamavis("caption", PHOTO, "-P", "transformers", "--device", "bogus", *dry)
        roboflow = llamavis("roboflow", step, PHOTO, "-P", "transformers", "--device", "bogus",
                            "--base-url", server.url, *dry)
    assert caption.returncode == 2 and roboflow.returncode == 2, roboflow.stderr
    assert "--device must be one of" in roboflow.stderr and "Traceback" not in roboflow.stderr
    assert roboflow.stdout == "" and server.requests == []


def test_dry_run_shows_each_steps_fallback_routes(tmp_path):
    step = classification_step(tmp_path)
    dry = llamavis("roboflow", step, PHOTO, "--dry-run", "--fallback", "deepinfra",
                   env={"DEEPINFRA_API_KEY": OTHER_KEY})
    assert dry.returncode == 0, dry.stderr
    (only,) = json.loads(dry.stdout)["steps"]
    assert [r["provider"] for r in only["routes"]] == ["openrouter", "deepinfra"]
    assert KEY not in dry.stdout + dry.stderr and OTHER_KEY not in dry.stdout + dry.stderr


def test_timeout_and_seed_reach_every_steps_request(tmp_path):
    step = classification_step(tmp_path)
    with FakeServer("class-b") as server:
        proc = llamavis("roboflow", step, PHOTO, "--json", "--no-cache", "--seed", "11",
                        "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[STEP]["parsed"] == "class-b"
    assert server.requests[0]["seed"] == 11
