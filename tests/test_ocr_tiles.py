"""``ocr --tiles auto`` on a 300 dpi A4 page, through the installed command against a
loopback server (issue 22, must show).

The page carries lines of small print; under every word lies a thin bar of a colour of
its own. The fake "reads" a tile the way a model would: the words whose bar it sees
whole, line by line, left to right. So its answers follow from the pixels it was sent,
and the test can check that every tile is the page's own pixels, that the joined text
holds every word once in reading order, and what the JSON and --dry-run say."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeServer

pytestmark = pytest.mark.subprocess

PAGE = (2480, 3508)  # A4 at 300 dpi
MARGIN, LINE_H, BAR_H = 300, 42, 3


def llamavis(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "llamavis", *args], capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


def page(path: Path, font_size: int = 26) -> tuple[Any, dict[tuple[int, int, int], tuple[int, str, int]]]:
    """The page, and each word's bar colour -> (line, word, bar pixels)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", PAGE, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    bars: dict[tuple[int, int, int], tuple[int, str, int]] = {}
    y, line = MARGIN, 0
    while y + LINE_H < PAGE[1] - MARGIN:
        x, j = MARGIN, 0
        while True:
            word = f"L{line:02d}w{j}"
            w = int(draw.textlength(word, font=font))
            if x + w > PAGE[0] - MARGIN:
                break
            draw.text((x, y), word, fill="black", font=font)
            idx = len(bars) + 1
            colour = (1 + idx % 250, 0, 1 + idx // 250)  # never grey: text is grey
            draw.rectangle((x, y + font_size + 4, x + w - 1, y + font_size + 3 + BAR_H), fill=colour)
            bars[colour] = (line, word, w * BAR_H)
            x, j = x + w + 22, j + 1
        y, line = y + LINE_H, line + 1
    img.save(path)
    return img, bars


def tile_of(req: dict[str, Any]) -> Any:
    from PIL import Image

    parts = req["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def reader(bars: dict[tuple[int, int, int], tuple[int, str, int]]) -> Any:
    def read(req: dict[str, Any]) -> str:
        seen: dict[int, list[str]] = {}
        for count, colour in tile_of(req).getcolors(maxcolors=1 << 20) or []:
            if colour in bars and bars[colour][2] == count:  # the whole bar: the word is read
                seen.setdefault(bars[colour][0], []).append(bars[colour][1])
        return "\n".join(" ".join(sorted(ws, key=lambda w: int(w.split("w")[1])))
                         for _, ws in sorted(seen.items()))
    return read


def expected(bars: dict[tuple[int, int, int], tuple[int, str, int]]) -> str:
    lines: dict[int, list[str]] = {}
    for line, word, _ in bars.values():
        lines.setdefault(line, []).append(word)
    return "\n".join(" ".join(ws) for _, ws in sorted(lines.items()))


def test_tiles_auto_reads_an_a4_scan_tile_by_tile_at_full_resolution(tmp_path):
    path = tmp_path / "scan.png"
    img, bars = page(path)
    with FakeServer(reader(bars)) as server:
        proc = llamavis("ocr", str(path), "--tiles", "auto", "--json", "-P", "local",
                        "--base-url", server.url)
        assert proc.returncode == 0, proc.stderr
        requests = list(server.requests)
    doc = json.loads(proc.stdout)
    assert len(requests) == len(doc["tiles"]) >= 4
    boxes = [tuple(t["box"]) for t in doc["tiles"]]
    for req in requests:  # each tile fits and is the page's own pixels, not a shrunk copy
        tile = tile_of(req)
        assert max(tile.size) <= 1120
        assert any(img.crop(b).tobytes() == tile.tobytes() for b in boxes if
                   (b[2] - b[0], b[3] - b[1]) == tile.size)
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    assert x0 > MARGIN // 2 and y0 > MARGIN // 2  # cropped to the content first
    assert doc["output"] == expected(bars)  # every word once, in reading order
    assert doc["usage"]["prompt_tokens"] == sum(t["usage"]["prompt_tokens"] for t in doc["tiles"])
    assert doc["usage"]["prompt_tokens"] == 1610 * len(requests)
    assert doc["attempts"] == len(requests)


def test_dry_run_shows_the_tiles_and_sends_nothing(tmp_path):
    path = tmp_path / "scan.png"
    page(path)
    with FakeServer("x") as server:
        proc = llamavis("ocr", str(path), "--tiles", "auto", "--dry-run", "-P", "local",
                        "--base-url", server.url)
        assert not server.requests
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    reqs = doc["requests"]
    assert len(reqs) >= 4 and all(r["tile"]["of"] == len(reqs) for r in reqs)
    assert [r["tile"]["index"] for r in reqs] == list(range(1, len(reqs) + 1))
    assert all(b - a <= 1120 for r in reqs for a, b in
               ((r["tile"]["box"][0], r["tile"]["box"][2]), (r["tile"]["box"][1], r["tile"]["box"][3])))


def test_auto_leaves_a_page_whose_print_stays_legible_whole(tmp_path):
    """Large print (about 90 px a line) stays above the legible size when the page is
    shrunk to 1120 px: one request, the page as it is."""
    from PIL import Image, ImageDraw, ImageFont

    path = tmp_path / "poster.png"
    img = Image.new("RGB", PAGE, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=72)
    for i in range(20):
        draw.text((MARGIN, MARGIN + i * 140), f"Big line number {i}", fill="black", font=font)
    img.save(path)
    with FakeServer("big text") as server:
        proc = llamavis("ocr", str(path), "--tiles", "auto", "--json", "-P", "local",
                        "--base-url", server.url)
        assert len(server.requests) == 1
    assert proc.returncode == 0, proc.stderr
    assert "tiles" not in json.loads(proc.stdout)
