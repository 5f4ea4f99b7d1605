"""`llamavis eval`: the installed command against loopback servers whose answers are known."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from fakeserver import FakeServer
from test_cli_tasks import KEY, llamavis

pytestmark = pytest.mark.subprocess

# Ten images, each a solid colour the fake server recognises (it answers by image).
COLOURS = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (230, 230, 30), (30, 230, 230),
           (230, 30, 230), (120, 60, 20), (250, 150, 150), (20, 90, 120), (140, 140, 140)]
ENV = {"OPENROUTER_API_KEY": KEY, "DEEPINFRA_API_KEY": KEY}


def draw_set(folder: Path, n: int = 10) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img-{i}.png"
        Image.new("RGB", (96, 96), COLOURS[i]).save(folder / name)
        names.append(name)
    return names


def image_index(body: dict) -> int:
    """Which of COLOURS the request's image shows (nearest colour, after any re-encoding)."""
    part = next(p for m in body["messages"] for p in m["content"]
                if isinstance(p, dict) and p.get("type") == "image_url")
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    pixel = Image.open(io.BytesIO(data)).convert("RGB").getpixel((48, 48))
    return min(range(len(COLOURS)), key=lambda i: sum((a - b) ** 2 for a, b in
                                                      zip(COLOURS[i], pixel, strict=True)))


def answering(answers: list[str]):
    return lambda body: answers[image_index(body)]


GOLD = ["cat", "dog", "bird", "cat", "dog", "bird", "cat", "dog", "bird", "cat"]
# the server agrees with the gold on 7 of 10: img-1 dog->cat, img-2 bird->dog, img-5 bird->dog
SAID = ["cat", "cat", "dog", "cat", "dog", "dog", "cat", "dog", "bird", "cat"]


def write_csv(path: Path, names: list[str], column: str, values: list[str]) -> Path:
    lines = [f"file_name,{column}"] + [f"{n},{v}" for n, v in zip(names, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def eval_cmd(*args: str, env: dict[str, str] | None = None):
    return llamavis("eval", *args, "--no-cache", env={**ENV, **(env or {})}, timeout=120)


def test_classify_with_7_of_10_right_reports_accuracy_0_7_and_the_confusion_counts(tmp_path):
    names = draw_set(tmp_path / "photos")
    labels = write_csv(tmp_path / "labels.csv", names, "label", GOLD)
    with FakeServer(answering(SAID)) as server:
        proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(labels),
                        "-c", "cat,dog,bird", "-P", "openrouter", "--base-url", server.url,
                        "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    route = report["routes"][0]
    assert route["route"] == "openrouter" and route["error"] is None
    assert route["metrics"]["accuracy"] == 0.7
    confusion = route["metrics"]["confusion"]
    assert confusion["cat"] == {"cat": 4, "dog": 0, "bird": 0, "(no answer)": 0}
    assert confusion["dog"] == {"cat": 1, "dog": 2, "bird": 0, "(no answer)": 0}
    assert confusion["bird"] == {"cat": 0, "dog": 2, "bird": 1, "(no answer)": 0}
    assert route["metrics"]["per_class"]["bird"] == {"precision": 1.0, "recall": 0.3333,
                                                     "f1": 0.5, "support": 3}
    run = route["run"]
    assert (run["answered"], run["failed"], run["invalid"], run["images"]) == (10, 0, 0, 10)
    assert run["attempts_per_image"] == 1.0 and run["prompt_tokens"] == 16100
    assert run["latency_p50_s"] is not None and run["latency_p95_s"] >= run["latency_p50_s"]


def test_classify_text_table_shows_accuracy_and_confusion(tmp_path):
    names = draw_set(tmp_path / "photos")
    labels = write_csv(tmp_path / "labels.csv", names, "label", GOLD)
    with FakeServer(answering(SAID)) as server:
        proc = eval_cmd("classify", str(tmp_path / "photos"), "--labels", str(labels),
                        "-c", "cat,dog,bird", "-P", "openrouter", "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "0.7" in proc.stdout
    assert "confusion, openrouter" in proc.stdout
