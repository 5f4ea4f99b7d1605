"""The scripts in examples/ run as their headers say, against a loopback server."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fakeserver import FakeServer, Reply

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(shutil.which("bash") is None, reason="the examples are bash scripts"),
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.sh"))
RECEIPT = {"shop": "CORNER SHOP", "date": "2024-05-01",
           "items": [{"name": "Bread", "price": 2.5}, {"name": "Milk", "price": 1.2}],
           "total": 18.55, "currency": "EUR"}


@pytest.fixture
def run_example(tmp_path: Path):
    """Run examples/NAME with BASE_URL set and `llamavis` on PATH (this interpreter's)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "llamavis"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m llamavis "$@"\n')
    shim.chmod(0o755)

    def run(name: str, *args: str, server: FakeServer, **env: str) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "BASE_URL": server.url, **env}
        return subprocess.run(["bash", str(EXAMPLES / name), *args], cwd=tmp_path, env=full_env,
                              capture_output=True, text=True, timeout=120)

    return run


def folder(tmp_path: Path, name: str, *images: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    for image in images:
        shutil.copy(EXAMPLES / image, path / image)
    return path


def sent_image_size(body: dict) -> tuple[int, int]:
    from PIL import Image

    url = body["messages"][0]["content"][0]["image_url"]["url"]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_says_how_to_run_it_and_is_in_the_readme(name):
    script = EXAMPLES / name
    header = script.read_text().split("set -euo pipefail")[0]
    assert f"BASE_URL=http://127.0.0.1:8000/v1 examples/{name}" in header
    assert script.stat().st_mode & stat.S_IXUSR
    assert f"`{name}`" in (EXAMPLES / "README.md").read_text()
    assert "--base-url" in script.read_text()


def test_caption_folder_writes_a_sidecar_beside_each_image(tmp_path, run_example):
    photos = folder(tmp_path, "photos", "shapes.jpg", "sign.png")
    (photos / "more").mkdir()
    shutil.copy(EXAMPLES / "shapes.jpg", photos / "more" / "ball.jpg")
    with FakeServer("A red ball on green grass.") as server:
        proc = run_example("caption_folder.sh", "photos", server=server)
        again = run_example("caption_folder.sh", "photos", server=server)
    assert proc.returncode == 0, proc.stderr
    for sidecar in ("shapes.txt", "sign.txt", "more/ball.txt"):
        assert (photos / sidecar).read_text() == "A red ball on green grass.\n"
    assert "3 .txt files in photos" in proc.stderr
    # more/ball.jpg is a byte copy of shapes.jpg: asked once; the rerun skips the done ones
    assert again.returncode == 0 and len(server.requests) == 2


def test_ocr_folder_writes_one_jsonl_in_folder_order(tmp_path, run_example):
    folder(tmp_path, "scans", "receipt.png", "sign.png")
    with FakeServer("CORNER SHOP\nTOTAL 18.55") as server:
        proc = run_example("ocr_folder.sh", "scans", "text.jsonl", server=server)
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in (tmp_path / "text.jsonl").read_text().splitlines()]
    assert [Path(d["image"]).name for d in docs] == ["receipt.png", "sign.png"]
    assert {d["output"] for d in docs} == {"CORNER SHOP\nTOTAL 18.55"}
    assert "2 scans in text.jsonl" in proc.stderr


def test_screenshot_gate_fails_when_one_looks_broken(tmp_path, run_example):
    from PIL import Image

    shots = folder(tmp_path, "shots", "screenshot_ok.png")
    Image.new("RGB", (300, 200), (255, 0, 255)).save(shots / "checkout page.png")

    def judge(body):
        return "Broken" if sent_image_size(body) == (300, 200) else "ok"

    with FakeServer(judge) as server:
        failing = run_example("screenshot_gate.sh", "shots", server=server)
        (shots / "checkout page.png").unlink()
        passing = run_example("screenshot_gate.sh", "shots", server=server)
    assert failing.returncode == 1, failing.stderr
    assert "FAILED" in failing.stderr and "shots/checkout page.png" in failing.stderr
    assert "screenshot_ok.png" not in failing.stderr.split("FAILED", 1)[1]
    assert passing.returncode == 0, passing.stderr
    assert "all 1 screenshots look ok" in passing.stderr
    report = [json.loads(line) for line in (tmp_path / "screenshot-report.jsonl").read_text().splitlines()]
    assert [d["output"] for d in report] == ["ok"]


def test_screenshot_gate_fails_when_a_screenshot_cannot_be_checked(tmp_path, run_example):
    shots = folder(tmp_path, "shots", "screenshot_ok.png")
    (shots / "truncated.png").write_bytes((EXAMPLES / "screenshot_ok.png").read_bytes()[:100])
    with FakeServer("ok") as server:
        proc = run_example("screenshot_gate.sh", "shots", server=server)
    assert proc.returncode == 1
    assert "truncated.png" in proc.stderr and "could not be checked" in proc.stderr


def test_receipt_fields_extracts_objects_that_follow_the_schema(tmp_path, run_example):
    folder(tmp_path, "receipts", "receipt.png")
    with FakeServer(json.dumps(RECEIPT)) as server:
        proc = run_example("receipt_fields.sh", "receipts", "out.jsonl", server=server)
    assert proc.returncode == 0, proc.stderr
    (doc,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert doc["output"] == RECEIPT and doc["error"] is None
    prompt = server.requests[0]["messages"][0]["content"][1]["text"]
    assert "total" in prompt and "currency" in prompt


def test_receipt_fields_asks_again_when_an_answer_breaks_the_schema(tmp_path, run_example):
    folder(tmp_path, "receipts", "receipt.png")
    replies = [Reply(text=json.dumps({**RECEIPT, "total": "a lot"})), Reply(text=json.dumps(RECEIPT))]
    with FakeServer(replies) as server:
        proc = run_example("receipt_fields.sh", "receipts", server=server)
    assert proc.returncode == 0, proc.stderr
    (doc,) = [json.loads(line) for line in (tmp_path / "receipts.jsonl").read_text().splitlines()]
    assert doc["output"] == RECEIPT and doc["attempts"] == 2 and len(server.requests) == 2


def test_no_doc_offers_a_server_that_cannot_run_llama_3_2_vision():
    # ../shared/providers.md: llama.cpp's server never supported mllama; LM Studio is no
    # route either. A paragraph may name them only to say so.
    docs = [ROOT / "README.md", *(ROOT / "examples").glob("*.md"), *(ROOT / "examples").glob("*.sh"),
            *(ROOT / "docs").glob("*.md")]
    offered = []
    for doc in docs:
        for paragraph in re.split(r"\n\s*\n", doc.read_text(encoding="utf-8")):
            low = " ".join(paragraph.lower().split())
            said_no = re.search(r"\b(never|not|cannot|no|unsupported|removed)\b", low)
            if ("llama.cpp" in low or "lm studio" in low) and not said_no:
                offered.append(f"{doc.relative_to(ROOT)}: {low[:120]}")
    assert offered == []
