"""What a demanding user runs into at the edges: closed pipes, unwritable places, odd inputs.

The installed command against the loopback fake server, as tests/test_cli_tasks.py does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakeserver import FakeServer, Reply

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
    with FakeServer(Reply(text="an answer", delay=0.02)) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llamavis", "caption", str(tmp_path / "photos"), *LOCAL,
             "-j", "1", "--base-url", server.url],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # `llamavis caption photos | head -1`
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert first.endswith(b"\tan answer\n")
    assert stderr == ""
    assert code == 0
    assert len(server.requests) < 30  # the rest was never asked for
