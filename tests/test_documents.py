"""Documents of several pages through the installed command against a loopback server
(issue 22): a multi-page TIFF and a PDF are their pages in order, a PDF is rendered at
--dpi, a PDF without the pdf extra is exit 3 naming it, and caption files that cannot be
written are one line per image with nothing lost."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from fakeserver import FakeServer

pytestmark = pytest.mark.subprocess

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def llamavis(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "llamavis", *args], capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


def image_of(req: dict[str, Any]) -> Any:
    from PIL import Image

    parts = req["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def colour_name(req: dict[str, Any]) -> str:
    """What the fake "reads" on a page: the name of its colour (sampled at the centre)."""
    img = image_of(req)
    px = img.getpixel((img.size[0] // 2, img.size[1] // 2))
    return min(COLOURS, key=lambda n: sum(abs(a - b) for a, b in zip(COLOURS[n], px, strict=True)))


def pages() -> list[Any]:
    from PIL import Image

    return [Image.new("RGB", (200, 100), c) for c in COLOURS.values()]


def run_ocr(server: FakeServer, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return llamavis("ocr", *args, "--json", "-P", "local", "--base-url", server.url, env=env)


def test_multi_page_tiff_is_its_pages_in_order(tmp_path):
    path = tmp_path / "scan.tiff"
    first, *rest = pages()
    first.save(path, save_all=True, append_images=rest)
    with FakeServer(colour_name) as server:
        proc = run_ocr(server, str(path))
        assert len(server.requests) == 3
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(d["image"], d["output"]) for d in doc] == [
        (f"{path}#page={i}", name) for i, name in enumerate(COLOURS, 1)]


def test_pdf_pages_are_rendered_at_the_dpi_and_come_in_order(tmp_path):
    pytest.importorskip("pypdfium2")
    path = tmp_path / "doc.pdf"
    first, *rest = pages()
    first.save(path, save_all=True, append_images=rest, resolution=72)  # 200 x 100 pt pages
    with FakeServer(colour_name) as server:
        proc = run_ocr(server, str(path), "--dpi", "144")
        sizes = {image_of(r).size for r in server.requests}
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(d["image"], d["output"]) for d in doc] == [
        (f"{path}#page={i}", name) for i, name in enumerate(COLOURS, 1)]
    assert sizes == {(400, 200)}  # 200 x 100 pt at 144 dpi


def test_a_pdf_without_the_pdf_extra_is_exit_3_naming_it(tmp_path):
    path = tmp_path / "doc.pdf"
    first, *rest = pages()
    first.save(path, save_all=True, append_images=rest)
    shim = tmp_path / "shim" / "pypdfium2"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named pypdfium2')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(shim.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with FakeServer("x") as server:
        proc = run_ocr(server, str(path), env=env)
        assert not server.requests
    assert proc.returncode == 3
    assert "llamavis[pdf]" in proc.stderr and "Traceback" not in proc.stderr


def test_tiles_with_a_task_other_than_ocr_is_exit_2(tmp_path):
    path = tmp_path / "page.png"
    pages()[0].save(path)
    with FakeServer("x") as server:
        proc = llamavis("detailed-caption", str(path), "--tiles", "2", "-P", "local",
                        "--base-url", server.url)
        assert not server.requests
    assert proc.returncode == 2 and "--tiles" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_caption_files_that_cannot_be_written_are_one_line_each_and_nothing_is_lost(tmp_path):
    """The read-only folder's failure in a form root meets too (root ignores modes): a
    folder stands where each caption file goes, so every write is refused."""
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), (90 * i, 80, 80)).save(d / f"photo{i}.jpg")
        (d / f"photo{i}.txt").mkdir()  # where the caption file goes, a folder is in the way
    with FakeServer("a caption") as server:
        proc = llamavis("caption", str(d), "--sidecar", "txt", "--sidecar-mode", "overwrite",
                        "-P", "local", "--base-url", server.url)
        assert proc.returncode == 1
        lines = [x for x in proc.stderr.splitlines() if "cannot write" in x]
        assert len(lines) == 2 and all("kept in the cache" in x for x in lines), proc.stderr
        for i in range(2):
            (d / f"photo{i}.txt").rmdir()
        again = llamavis("caption", str(d), "--sidecar", "txt", "-P", "local",
                         "--base-url", server.url)
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == 2  # the answers came back from the cache
    assert (d / "photo1.txt").read_text() == "a caption\n"
