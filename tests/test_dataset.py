"""Dataset captioning through the installed command against a loopback server (issue 22):
caption files beside the images, their modes, trigger words, N captions, the manifest,
the caption in the image's own metadata."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from pathlib import Path

import pytest

from fakeserver import FakeServer
from support.cli import invoke as llamavis


def folder(tmp_path: Path, n: int = 3, ext: str = "jpg") -> Path:
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(n):
        Image.new("RGB", (64, 48), (40 * i, 100, 200 - 40 * i)).save(d / f"photo{i}.{ext}")
    return d


def run(server: FakeServer, *args: str) -> subprocess.CompletedProcess[str]:
    return llamavis("caption", *args, "-P", "local", "--base-url", server.url)


def test_sidecar_txt_writes_stem_txt_beside_each_image_and_a_second_run_asks_nothing(tmp_path):
    d = folder(tmp_path)
    with FakeServer("A blue square.") as server:
        first = run(server, str(d), "--sidecar", "txt")
        assert first.returncode == 0, first.stderr
        assert len(server.requests) == 3
        for i in range(3):
            assert (d / f"photo{i}.txt").read_bytes() == b"A blue square.\n"
        second = run(server, str(d), "--sidecar", "txt", "--no-cache")  # skip, not the cache
        assert second.returncode == 0, second.stderr
        assert len(server.requests) == 3
        assert "skipped 3 image(s)" in second.stderr


def test_append_adds_a_line_and_prefix_is_at_the_front(tmp_path):
    d = folder(tmp_path, n=1)
    replies = ["first caption", "second caption"]
    with FakeServer(lambda req: replies.pop(0)) as server:
        assert run(server, str(d), "--sidecar", "txt", "--prefix", "sks, ").returncode == 0
        proc = run(server, str(d), "--sidecar", "txt", "--sidecar-mode", "append",
                   "--prefix", "sks, ", "--suffix", ", photo", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    assert (d / "photo0.txt").read_text() == "sks, first caption\nsks, second caption, photo\n"


def test_captions_3_gives_3_lines_from_3_requests_each_with_its_own_seed(tmp_path):
    d = folder(tmp_path, n=1)
    with FakeServer(lambda req: f"caption with seed {req.get('seed')}\n") as server:
        proc = run(server, str(d), "--sidecar", "txt", "--captions", "3", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["seed"] for r in server.requests) == [7, 8, 9]
    assert (d / "photo0.txt").read_text().splitlines() == [
        "caption with seed 7", "caption with seed 8", "caption with seed 9"]


def test_captions_without_a_seed_send_three_different_seeds(tmp_path):
    d = folder(tmp_path, n=1)
    with FakeServer(lambda req: f"seed {req.get('seed')}") as server:
        proc = run(server, str(d / "photo0.jpg"), "--captions", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len({r["seed"] for r in server.requests}) == 3
    import json

    doc = json.loads(proc.stdout)
    assert len(doc["captions"]) == 3 and doc["output"].count("\n") == 2


def test_manifest_csv_has_header_and_one_row_per_image_and_resumes(tmp_path):
    d = folder(tmp_path)
    manifest = d / "metadata.csv"
    with FakeServer('A "quoted", caption') as server:
        proc = run(server, str(d), "--manifest", str(manifest))
        assert proc.returncode == 0, proc.stderr
        rows = list(csv.reader(io.StringIO(manifest.read_text(encoding="utf-8"))))
        assert rows[0] == ["file_name", "text"]
        assert sorted(rows[1:]) == [[f"photo{i}.jpg", 'A "quoted", caption'] for i in range(3)]
        again = run(server, str(d), "--manifest", str(manifest), "--no-cache")
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == 3  # the images it lists are not asked again
    assert manifest.read_text(encoding="utf-8").count("\n") == 4


def test_manifest_jsonl_rows_name_the_file_relative_to_the_manifest(tmp_path):
    import json

    d = folder(tmp_path, n=2)
    manifest = tmp_path / "captions.jsonl"
    with FakeServer("a caption") as server:
        proc = run(server, str(d), "--manifest", str(manifest), "--prefix", "tok ")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(rows, key=lambda r: r["file_name"]) == [
        {"file_name": f"imgs/photo{i}.jpg", "text": "tok a caption"} for i in range(2)]


def test_write_metadata_keeps_the_pixels_and_puts_the_caption_in_exif_and_xmp(tmp_path):
    from PIL import Image

    pytest.importorskip("pyexiv2")
    path = tmp_path / "cam.jpg"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "EOS R5", "firmware 1.2"
    Image.effect_noise((96, 64), 60).convert("RGB").save(path, exif=exif.tobytes(), quality=90)
    before = Image.open(path)
    pixels, tags = before.tobytes(), dict(before.getexif())
    with FakeServer("A noisy grey card.") as server:
        proc = run(server, str(path), "--write-metadata")
    assert proc.returncode == 0, proc.stderr
    after = Image.open(path)
    assert after.tobytes() == pixels
    new_tags = dict(after.getexif())
    assert new_tags.pop(0x010E) == "A noisy grey card."  # ImageDescription
    assert new_tags == tags
    assert b"A noisy grey card." in after.info["xmp"] and b"dc:description" in after.info["xmp"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_metadata_on_a_gif_is_one_line_and_the_rest_go_on(tmp_path):
    from PIL import Image

    pytest.importorskip("pyexiv2")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.gif")
    Image.new("RGB", (32, 32), "blue").save(tmp_path / "b.jpg")
    with FakeServer("a colour") as server:
        proc = run(server, str(tmp_path / "a.gif"), str(tmp_path / "b.jpg"), "--write-metadata")
    assert proc.returncode == 1
    lines = [x for x in proc.stderr.splitlines() if "a.gif" in x]
    assert len(lines) == 1 and "cannot write metadata" in lines[0]
    assert Image.open(tmp_path / "b.jpg").getexif().get(0x010E) == "a colour"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_folder_is_one_line_per_image_and_a_rerun_costs_nothing(tmp_path):
    d = folder(tmp_path, n=2)
    d.chmod(0o555)
    try:
        with FakeServer("a caption") as server:
            proc = run(server, str(d), "--sidecar", "txt")
            assert proc.returncode == 1
            errors = [x for x in proc.stderr.splitlines() if "cannot write" in x]
            assert len(errors) == 2 and all("kept in the cache" in x for x in errors)
            d.chmod(0o755)
            again = run(server, str(d), "--sidecar", "txt")
            assert again.returncode == 0, again.stderr
            assert len(server.requests) == 2  # nothing lost: the answers came from the cache
        assert (d / "photo1.txt").read_text() == "a caption\n"
    finally:
        d.chmod(0o755)


def test_bad_sidecar_mode_and_captions_for_classify_exit_2(tmp_path):
    d = folder(tmp_path, n=1)
    with FakeServer("x") as server:
        mode = run(server, str(d), "--sidecar", "txt", "--sidecar-mode", "merge")
        n = llamavis("classify", str(d), "-c", "a,b", "--captions", "2", "-P", "local",
                     "--base-url", server.url)
        tiles = run(server, str(d), "--tiles", "auto")
        assert not server.requests
    assert mode.returncode == 2 and "--sidecar-mode" in mode.stderr
    assert n.returncode == 2 and "--captions" in n.stderr
    assert tiles.returncode == 2 and "--tiles" in tiles.stderr


def test_unwritable_caption_files_are_one_line_each_in_process(tmp_path, monkeypatch):
    """The read-only folder as root sees it too: every write refused by the file system."""
    from typer.testing import CliRunner

    from llamavis.cli.main import app
    from llamavis.dataset import captions

    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(captions.tempfile, "mkstemp", refuse)
    d = folder(tmp_path, n=3)
    with FakeServer("a caption") as server:
        res = CliRunner().invoke(app, ["caption", str(d), "--sidecar", "txt", "-P", "local",
                                       "--base-url", server.url])
    assert res.exit_code == 1
    lines = [x for x in res.stderr.splitlines() if "Permission denied" in x]
    assert len(lines) == 3 and all("photo" in x and ".txt" in x for x in lines)
    assert not list(d.glob("*.txt"))
