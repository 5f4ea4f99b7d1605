"""examples/ray_batch.py on a local Ray against a loopback OpenAI-compatible server.

Ray takes 10-20 s to start on two cores, so this is one run checked several ways: every
image gets one row with its own answer, one request per image, and the provider saw at
least ``--concurrency`` requests at once.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from fakeserver import FakeServer

pytestmark = [pytest.mark.ray, pytest.mark.subprocess]
pytest.importorskip("ray", reason="needs llamavis[ray]: pip install -e '.[ray]'")

ROOT = Path(__file__).resolve().parent.parent
IMAGES = 200
IN_FLIGHT = 4


def colour(i: int) -> tuple[int, int, int]:
    return (i, 255 - i, (i * 37) % 256)


def caption_of(png: bytes) -> str:
    """What the server says about an image: the colour that fills it."""
    r, g, b = Image.open(io.BytesIO(png)).convert("RGB").getpixel((4, 4))
    return f"a square of #{r:02x}{g:02x}{b:02x}"


class ByContent:
    """Answers each image by its content; holds the first requests until IN_FLIGHT of them
    are in flight at once (or 60 s pass), so reaching that number needs no luck."""

    def __init__(self) -> None:
        self.arrived = 0
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(IN_FLIGHT, timeout=60)

    def __call__(self, body: dict) -> str:
        with self.lock:
            self.arrived += 1
            first = self.arrived <= IN_FLIGHT
        if first:  # if fewer come at once, the barrier breaks and max_in_flight says so
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()
        url = body["messages"][0]["content"][0]["image_url"]["url"]
        return caption_of(base64.b64decode(url.partition(",")[2]))


@pytest.mark.timeout(900)
def test_ray_batch_writes_one_row_per_image_with_its_own_caption(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(IMAGES):
        Image.new("RGB", (16, 16), colour(i)).save(src / f"img{i:03d}.png")
    (src / "notes.txt").write_text("not an image: Ray Data must not read it")
    reply = ByContent()
    with FakeServer(reply=reply) as server:
        run = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "ray_batch.py"), str(src), str(out),
             "--task", "caption", "--provider", "local", "--base-url", server.url,
             "--workers", "2", "--concurrency", str(IN_FLIGHT)],
            capture_output=True, text=True, timeout=840,
            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},  # a local Ray
        )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for f in sorted(out.glob("*.json"))
            for line in f.read_text().splitlines() if line.strip()]
    assert len(rows) == IMAGES
    assert sorted(Path(r["path"]).name for r in rows) == sorted(p.name for p in src.glob("*.png"))
    for row in rows:
        assert row["error"] is None and row["provider"] == "local" and row["model"]
        assert row["output"] == caption_of((src / Path(row["path"]).name).read_bytes())
        assert row["usage"]["prompt_tokens"] == 1610
    assert len(server.requests) == IMAGES  # one request per image
    assert server.max_in_flight >= IN_FLIGHT
