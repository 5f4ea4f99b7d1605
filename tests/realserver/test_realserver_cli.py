"""The installed `llamavis` command against a real `transformers serve` (tiny random mllama).

The model answers gibberish, so these tests check what a user would notice whatever the words
are: every task completes, a batch runs, streaming works, answers that cannot be classes or
JSON end as `invalid_output` after the bounded re-asks, a server error reads as one line, and
whatever bytes the model emits are printed safely.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.realserver, pytest.mark.subprocess]

# C0 controls other than tab and newline, DEL and C1 controls: never reach the terminal raw.
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Class names the tiny tokenizer never saw, so gibberish cannot name one by accident.
CLASSES = "aardvark,quokka"
ANSWER_TASKS = [
    ["caption"],
    ["detailed-caption"],
    ["ocr"],
    ["vqa", "-q", "What colour is the picture?"],
    ["prompt", "-p", "Describe the image."],
]


def make_png(directory: Path, name: str, color=(200, 30, 30), size=(64, 48)) -> Path:
    """A PNG made with Pillow."""
    from PIL import Image

    path = directory / name
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def llamavis(exe: str, server, env: dict, *args: str, model: str | None = None,
             stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """Run `llamavis ARGS` against the real server, one retry, no cache."""
    cmd = [exe, *args, "--provider", "local", "--base-url", server.base_url,
           "--model", model or server.model, "--no-cache", "--max-retries", "1"]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                          env=env, timeout=120, check=False)


def as_json(proc: subprocess.CompletedProcess):
    """stdout parsed as JSON (it must be valid UTF-8)."""
    return json.loads(proc.stdout.decode("utf-8"))


def lines(data: bytes) -> list[str]:
    """The non-empty lines of a stream (which must be valid UTF-8)."""
    return [ln for ln in data.decode("utf-8").splitlines() if ln.strip()]


def assert_printable(data: bytes) -> None:
    """Valid UTF-8 with no raw control characters (U+FFFD is fine)."""
    text = data.decode("utf-8")
    assert not UNSAFE.search(text), repr(text)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_png(tmp_path, "red.png")


@pytest.mark.parametrize("task", ANSWER_TASKS, ids=lambda t: t[0])
def test_every_answer_task_completes(realserver, llamavis_exe, loopback_env, image, task):
    proc = llamavis(llamavis_exe, realserver, loopback_env, *task, str(image), "--json",
                    "--temperature", "0", "--max-tokens", "16")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    result = as_json(proc)
    assert result["error"] is None
    assert isinstance(result["output"], str) and result["output"]
    assert result["task"] == task[0]
    assert result["provider"] == "local"
    assert result["model"] == realserver.model
    assert result["attempts"] == 1 and result["cached"] is False
    assert result["usage"]["prompt_tokens"] > 0
    assert 0 < result["usage"]["completion_tokens"] <= 16
    assert_printable(proc.stderr)


@pytest.mark.parametrize("task", [
    ["classify", "-c", CLASSES],
    ["multi-classify", "-c", CLASSES],
    ["structured", "--field", "title=the title printed on the item",
     "--field", "count=how many items there are", "--max-tokens", "64"],
], ids=lambda t: t[0])
def test_gibberish_ends_as_invalid_output_after_bounded_reasks(
        realserver, llamavis_exe, loopback_env, image, task):
    proc = llamavis(llamavis_exe, realserver, loopback_env, *task, str(image), "--json")
    assert proc.returncode == 1, proc.stdout.decode(errors="replace")
    result = as_json(proc)
    assert result["output"] is None
    assert result["error"]["kind"] == "invalid_output"
    assert result["attempts"] == 2  # --max-retries 1: one answer and one re-ask
    assert isinstance(result["raw"], str)
    assert len(lines(proc.stderr)) == 1  # one line naming the image and the reason
    assert str(image) in proc.stderr.decode("utf-8")
    assert_printable(proc.stderr)


def test_batch_with_two_in_flight(realserver, llamavis_exe, loopback_env, tmp_path):
    colors = {"red.png": (200, 30, 30), "green.png": (30, 200, 30), "blue.png": (30, 30, 200)}
    paths = [make_png(tmp_path, name, color) for name, color in colors.items()]
    proc = llamavis(llamavis_exe, realserver, loopback_env, "caption", *map(str, paths),
                    "-j", "2", "--json", "--temperature", "0", "--max-tokens", "12")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = as_json(proc)
    assert sorted(r["image"] for r in results) == sorted(map(str, paths))
    assert all(r["error"] is None and r["output"] for r in results)


def test_batch_text_output_is_one_safe_line_per_image(realserver, llamavis_exe, loopback_env,
                                                      tmp_path):
    paths = [make_png(tmp_path, f"{i}.png") for i in range(2)]
    proc = llamavis(llamavis_exe, realserver, loopback_env, "prompt", "-p", "Describe the image.",
                    *map(str, paths), "-j", "2", "--temperature", "0", "--max-tokens", "24")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = lines(proc.stdout)
    assert sorted(line.split("\t", 1)[0] for line in out) == sorted(map(str, paths))
    assert_printable(proc.stdout)


def test_unknown_model_reads_as_one_clean_line(realserver, llamavis_exe, loopback_env, image):
    proc = llamavis(llamavis_exe, realserver, loopback_env, "caption", str(image),
                    model="llamavis-test/no-such-model")
    assert proc.returncode == 1
    assert proc.stdout == b""
    err = lines(proc.stderr)
    assert len(err) == 1, err
    assert err[0].startswith("llamavis: ") and "500" in err[0]
    assert "Traceback" not in err[0]


def test_unknown_model_is_a_provider_error_in_json(realserver, llamavis_exe, loopback_env, image):
    proc = llamavis(llamavis_exe, realserver, loopback_env, "caption", str(image), "--json",
                    model="llamavis-test/no-such-model")
    assert proc.returncode == 1
    result = as_json(proc)
    assert result["output"] is None
    assert result["error"]["kind"] == "provider"


def test_control_characters_and_replacement_chars_print_safely(
        realserver, llamavis_exe, loopback_env, image):
    args = ("prompt", "-p", "Describe the image.", str(image), "--temperature", "0",
            "--max-tokens", "24")
    raw = as_json(llamavis(llamavis_exe, realserver, loopback_env, *args, "--json"))["raw"]
    assert UNSAFE.search(raw) and "\ufffd" in raw, "precondition: the model emits such bytes"
    proc = llamavis(llamavis_exe, realserver, loopback_env, *args)  # piped: plain text
    assert proc.returncode == 0
    assert_printable(proc.stdout)
    shown = proc.stdout.decode("utf-8")
    for char in set(UNSAFE.findall(raw)):
        assert f"\\x{ord(char):02x}" in shown  # escaped visibly, not dropped
    assert "\ufffd" in shown


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_single_answer_streams_to_a_terminal(realserver, llamavis_exe, loopback_env, image):
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [llamavis_exe, "caption", str(image), "--provider", "local", "--base-url",
             realserver.base_url, "--model", realserver.model, "--no-cache", "--max-retries", "1",
             "--temperature", "0", "--max-tokens", "24", "--debug"],
            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=loopback_env)
        os.close(slave)
        shown = read_until_closed(master)
        debug = proc.stderr.read().decode("utf-8")
        assert proc.wait(timeout=60) == 0, debug
    finally:
        os.close(master)
    assert '"stream": true' in debug  # the answer came over SSE, a stream without [DONE]
    assert shown.strip()
    assert_printable(shown.replace(b"\r\n", b"\n"))


def read_until_closed(fd: int, timeout: float = 60.0) -> bytes:
    """Everything written to a pty master until the child closes its side."""
    data = b""
    while select.select([fd], [], [], timeout)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO on Linux once the child side is closed
            break
        if not chunk:
            break
        data += chunk
    return data
