"""What is on disk is what was asked (issue 18): the installed command against a loopback server.

A sidecar counts as done only for the same image bytes asked the same way; stdin images are
named by their content; nothing is written through a symbolic link out of --output-dir;
byte-identical images in one run cost one request.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_cli_batch import LOCAL, asked, echo, expected, jsonl, llamavis, make_images, serve

RECORD = ".llamavis-sidecars.jsonl"


def sidecars(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != RECORD}


def test_two_stdin_images_into_one_folder_get_two_sidecars_with_their_own_answers(tmp_path):
    one, two = make_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    with serve(echo()) as server:
        base = ("caption", "-", *LOCAL, "--base-url", server.url, "--output-dir", str(out))
        first = llamavis(*base, input=one.read_bytes())
        second = llamavis(*base, input=two.read_bytes())
        assert first.returncode == 0, first.stderr
        assert second.returncode == 0, second.stderr
        assert len(server.requests) == 2  # the second image was not skipped as "stdin done"
        again = llamavis(*base, input=two.read_bytes())  # the same image again: done
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == 2
    files = sidecars(out)
    assert sorted(files.values()) == sorted([expected(one) + "\n", expected(two) + "\n"])
    assert all(name.startswith("stdin-") and name.endswith(".txt") for name in files)
    assert "skipped 1" in again.stderr


def test_ocr_after_caption_into_the_same_folder_says_so_and_fails_not_skips(tmp_path):
    photos = make_images(tmp_path / "photos", 2)
    out = tmp_path / "out"
    with serve(echo()) as server:
        def run(task: str, *more: str):
            return llamavis(task, str(tmp_path / "photos"), *LOCAL, "--base-url", server.url,
                            "--output-dir", str(out), *more)

        assert run("caption").returncode == 0
        assert len(server.requests) == 2
        ocr = run("ocr")
        assert ocr.returncode == 1  # not "done": another task's answer is there
        for photo in photos:
            assert f"{out / photo.stem}.txt already holds a different answer" in ocr.stderr
        assert len(server.requests) == 2  # nothing paid for that could not be kept

        shown = run("ocr", "--jsonl")  # with --jsonl it is asked and printed, the file kept
        assert shown.returncode == 1
        assert sorted(d["output"] for d in jsonl(shown.stdout)) == sorted(map(expected, photos))
        assert len(server.requests) == 4
        assert run("ocr", "--overwrite", "--no-cache").returncode == 0
        assert len(server.requests) == 6
        assert run("ocr").returncode == 0  # now the sidecars are ocr's: done
        assert len(server.requests) == 6


def test_a_symlinked_folder_inside_the_output_dir_receives_nothing(tmp_path):
    make_images(tmp_path / "photos" / "sub", 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(elsewhere, out / "sub")
    with serve(echo()) as server:
        proc = llamavis("caption", "-r", str(tmp_path / "photos"), *LOCAL, "--base-url",
                        server.url, "--output-dir", str(out), "--jsonl")
    assert proc.returncode == 1
    assert f"{out / 'sub'} is a symbolic link" in proc.stderr
    assert list(elsewhere.iterdir()) == []
    assert len(jsonl(proc.stdout)) == 1  # the answer itself is not lost


@pytest.mark.parametrize("cache", [(), ("--no-cache",)])
def test_byte_identical_copies_in_one_run_cost_one_request(tmp_path, cache):
    original = make_images(tmp_path / "photos", 1)[0]
    shutil.copy(original, tmp_path / "photos" / "copy.jpg")
    os.symlink(original, tmp_path / "photos" / "link.jpg")
    with serve(echo()) as server:
        proc = llamavis("caption", str(tmp_path / "photos"), "-j", "4", "--jsonl", *LOCAL,
                        "--base-url", server.url, *cache)
        assert proc.returncode == 0, proc.stderr
        assert asked(server) == [expected(original)]
    docs = jsonl(proc.stdout)
    assert sorted(Path(d["image"]).name for d in docs) == ["copy.jpg", "img0000.jpg", "link.jpg"]
    assert all(d["output"] == expected(original) and d["error"] is None for d in docs)
    assert sum(d["attempts"] for d in docs) == 1  # one of them asked, the others shared it
