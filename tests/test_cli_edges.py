"""What a demanding user runs into at the edges: closed pipes, unwritable places, odd inputs.

The installed command against the loopback fake server, as tests/test_cli_tasks.py does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fakeserver import FakeServer, Reply
from support.cli import COMMAND, start
from test_cli_tasks import llamavis

pytestmark = pytest.mark.subprocess

SHAPES = Path(__file__).resolve().parent.parent / "examples" / "shapes.jpg"
LOCAL = ("-P", "local", "--no-cache")


def copies(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"img{i:03d}.jpg" for i in range(count)]
    for path in paths:
        shutil.copy(SHAPES, path)
    return paths


def test_a_reader_that_stops_early_ends_the_run_quietly_with_exit_0(tmp_path):
    copies(tmp_path / "photos", 30)
    closed = threading.Event()  # answers after the first wait until the reader has gone
    with FakeServer([Reply(text="an answer"), Reply(text="an answer", hold=closed)]) as server:
        proc = start("caption", str(tmp_path / "photos"), *LOCAL, "-j", "1", "--base-url", server.url,
                     stdin=subprocess.DEVNULL)
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # `llamavis caption photos | head -1`
        proc.stdout.close()
        closed.set()
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=300)
    assert first.endswith(b"\tan answer\n")
    assert stderr == ""
    assert code == 0
    assert len(server.requests) <= 2  # the rest was never asked for


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_an_output_dir_that_cannot_be_written_is_one_usage_line_before_any_request(tmp_path, where):
    (tmp_path / "file").write_text("not a directory")
    with FakeServer("an answer") as server:
        proc = llamavis("caption", str(SHAPES), *LOCAL, "--base-url", server.url,
                        "--output-dir", str(tmp_path / where))
    assert proc.returncode == 2, proc.stderr
    assert server.requests == []  # nothing paid for that could not be kept
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "--output-dir" in lines[0] and str(tmp_path / where) in lines[0]
    assert "internal error" not in proc.stderr


def test_an_output_dir_without_write_permission_is_a_usage_error(tmp_path):
    if sys.platform == "win32" or os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with FakeServer("an answer") as server:
        proc = llamavis("caption", str(SHAPES), *LOCAL, "--base-url", server.url,
                        "--output-dir", str(locked))
    assert proc.returncode == 2 and server.requests == []
    assert "Permission denied" in proc.stderr


def test_a_password_in_an_image_url_is_masked_in_the_json_and_tsv_outputs_too(httpserver):
    httpserver.expect_request("/photos/cat.jpg").respond_with_data(
        SHAPES.read_bytes(), content_type="image/jpeg")
    url = httpserver.url_for("/photos/cat.jpg").replace("http://", "http://user:s3cret-pw@")
    masked = url.replace("s3cret-pw", "***")
    with FakeServer("an answer") as server:
        as_json = llamavis("caption", url, *LOCAL, "--base-url", server.url, "--json")
        as_jsonl = llamavis("caption", url, *LOCAL, "--base-url", server.url, "--jsonl")
        as_tsv = llamavis("caption", url, str(SHAPES), *LOCAL, "--base-url", server.url)
    for proc in (as_json, as_jsonl, as_tsv):
        assert proc.returncode == 0, proc.stderr
        assert "s3cret-pw" not in proc.stdout + proc.stderr
    assert json.loads(as_json.stdout)["image"] == masked
    assert json.loads(as_jsonl.stdout)["image"] == masked
    assert f"{masked}\tan answer\n" in as_tsv.stdout


def test_stdin_image_given_twice_is_a_usage_error_not_an_empty_image():
    with FakeServer("an answer") as server:
        proc = llamavis("caption", "-", "-", *LOCAL, "--base-url", server.url,
                        input=SHAPES.read_bytes())
    assert proc.returncode == 2, proc.stderr
    assert "standard input" in proc.stderr and server.requests == []


def test_a_password_in_an_image_url_never_shows_in_the_error_line():
    with FakeServer("an answer") as server:  # its GET answers JSON: not an image
        url = server.url.replace("http://", "http://user:s3cret-pw@") + "/models"
        proc = llamavis("caption", url, *LOCAL, "--base-url", server.url)
    assert proc.returncode == 1
    assert "s3cret-pw" not in proc.stderr
    assert proc.stderr.count("user:***@") == 1 and "not an image" in proc.stderr


def test_a_cache_dir_that_cannot_be_used_is_one_note_and_the_run_succeeds(tmp_path):
    (tmp_path / "file").write_text("x")
    with FakeServer("an answer") as server:
        proc = llamavis("caption", str(SHAPES), "-P", "local", "--base-url", server.url,
                        env={"LLAMAVIS_CACHE_DIR": str(tmp_path / "file" / "cache")})
    assert proc.returncode == 0 and proc.stdout == "an answer\n"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llamavis: result cache ")
    assert "delete the file" not in lines[0]  # there is no file: deleting would not help


def test_the_cache_answers_only_the_same_parameters_and_no_cache_neither_reads_nor_writes():
    with FakeServer("an answer") as server:
        def run(*extra: str) -> bool:
            """True when the run sent a request."""
            before = len(server.requests)
            proc = llamavis("caption", str(SHAPES), "-P", "local", "--base-url", server.url,
                            "--json", *extra)
            assert proc.returncode == 0, proc.stderr
            return len(server.requests) > before

        assert run("--no-cache", "--max-tokens", "50")
        assert run("--max-tokens", "50")  # --no-cache stored nothing
        assert not run("--max-tokens", "50")
        assert run("--max-tokens", "60")  # another --max-tokens is another answer
        assert run("--max-tokens", "50", "--temperature", "0.9")
        assert run("--no-cache", "--max-tokens", "50")  # nor did it read


def test_dry_run_with_output_dir_counts_only_the_images_a_run_would_send(tmp_path):
    copies(tmp_path / "photos", 3)
    out = tmp_path / "captions"
    out.mkdir()
    (out / "img001.txt").write_text("done before\n")  # by hand: not known to be this answer
    proc = llamavis("caption", str(tmp_path / "photos"), "--output-dir", str(out), "--dry-run",
                    "-P", "openrouter", "--base-url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 1, proc.stderr  # a run would keep that file and say so
    doc = json.loads(proc.stdout)
    assert doc["request_count"] == 2
    assert [Path(r["image"]).name for r in doc["requests"]] == ["img000.jpg", "img002.jpg"]
    assert "img001.txt already holds a different answer" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["img001.txt"]  # a dry run writes nothing


def run_with_closed(fd: int, *args: str) -> subprocess.CompletedProcess[str]:
    """llamavis with stdin (0) or stdout (1) closed, as `<&-` / `>&-` leave them."""
    proc = subprocess.run([*COMMAND, *args], capture_output=fd != 1,
                          stderr=subprocess.PIPE if fd == 1 else None,
                          preexec_fn=lambda: os.close(fd), timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, (proc.stdout or b"").decode(),
                                       proc.stderr.decode())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors")
def test_a_closed_stdin_or_stdout_is_no_internal_error(tmp_path):
    with FakeServer("an answer") as server:
        named = run_with_closed(0, "caption", str(SHAPES), *LOCAL, "--base-url", server.url)
        assert (named.returncode, named.stdout, named.stderr) == (0, "an answer\n", "")
        none = run_with_closed(0, "caption", *LOCAL, "--base-url", server.url)
        assert none.returncode == 2 and "internal error" not in none.stderr
        sidecars = run_with_closed(1, "caption", str(SHAPES), *LOCAL, "--base-url", server.url,
                                   "--output-dir", str(tmp_path / "out"))
        assert (sidecars.returncode, sidecars.stderr) == (0, "")
    assert (tmp_path / "out" / "shapes.txt").read_text() == "an answer\n"


def test_find_print0_piped_without_dash_0_is_a_usage_error_not_an_internal_one():
    with FakeServer("an answer") as server:
        proc = llamavis("caption", *LOCAL, "--base-url", server.url,
                        input=f"{SHAPES}\0{SHAPES}\0".encode())
    assert proc.returncode == 2, proc.stderr
    assert "-0" in proc.stderr and "internal error" not in proc.stderr
    assert server.requests == []


def test_a_file_name_with_a_newline_still_gets_one_error_line(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "two\nlines.jpg").write_bytes(b"not an image")
    (folder / "fine.jpg").write_bytes(SHAPES.read_bytes())
    with FakeServer("an answer") as server:
        proc = llamavis("caption", str(folder), *LOCAL, "--base-url", server.url)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith("[bad_image]"), lines
    assert "two\\nlines.jpg" in lines[0]  # escaped the way the TSV output escapes it
