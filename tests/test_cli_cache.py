"""`llamavis cache path | stats | clear`: the installed command on the user's result cache.

The autouse fixture points LLAMAVIS_CACHE_DIR at a fresh directory, so each test starts
from an empty cache; the batch tests' loopback server counts what is asked again.
"""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from llamavis.store.cache import ResultCache

from fakeserver import FakeServer
from support.cli import COMMAND, invoke

pytestmark = pytest.mark.subprocess

DAY = 86400.0


def llamavis(*args: str, input: bytes = b"") -> subprocess.CompletedProcess[str]:
    return invoke(*args, input=input)


def store(isolated_user_dirs: Path) -> Path:
    return isolated_user_dirs / "cache" / "results.sqlite3"


def fill(path: Path, ages_in_days: list[float]) -> None:
    """One stored result per age, its ``created`` set that many days back."""
    cache = ResultCache(path)
    for i in range(len(ages_in_days)):
        cache.put(f"key{i}", {"image": f"{i}.jpg", "output": "an answer"})
    cache.close()
    with sqlite3.connect(path) as conn:
        for i, age in enumerate(ages_in_days):
            conn.execute("UPDATE results SET created = ? WHERE key = ?",
                         (time.time() - age * DAY, f"key{i}"))


def entries(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]


def test_cache_path_prints_where_results_are_stored(isolated_user_dirs):
    proc = llamavis("cache", "path")
    assert (proc.returncode, proc.stdout) == (0, f"{store(isolated_user_dirs)}\n")
    assert not store(isolated_user_dirs).exists()  # asking where it is creates nothing


def test_cache_stats_counts_entries_size_and_the_oldest_and_newest(isolated_user_dirs):
    fill(store(isolated_user_dirs), [40, 3, 0])
    doc = json.loads(llamavis("cache", "stats", "--json").stdout)
    assert doc["path"] == str(store(isolated_user_dirs))
    assert doc["entries"] == 3 and doc["size_bytes"] >= store(isolated_user_dirs).stat().st_size > 0
    oldest = datetime.fromisoformat(doc["oldest"]).timestamp()
    assert abs(oldest - (time.time() - 40 * DAY)) < 3600
    assert doc["oldest"] < doc["newest"]
    text = llamavis("cache", "stats")
    assert text.returncode == 0
    assert "entries  3" in text.stdout and "40 days ago" in text.stdout and "today" in text.stdout


def test_cache_stats_of_a_cache_never_used_is_empty_not_an_error(isolated_user_dirs):
    doc = json.loads(llamavis("cache", "stats", "--json").stdout)
    assert (doc["entries"], doc["size_bytes"], doc["oldest"], doc["newest"]) == (0, 0, None, None)


def test_cache_clear_off_a_terminal_needs_yes_and_says_so_in_one_line_exit_2(isolated_user_dirs):
    fill(store(isolated_user_dirs), [1, 2])
    proc = llamavis("cache", "clear")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--yes" in proc.stderr and "2 cached" in proc.stderr
    assert entries(store(isolated_user_dirs)) == 2
    done = llamavis("cache", "clear", "--yes")
    assert done.returncode == 0 and "deleted 2" in done.stderr
    assert entries(store(isolated_user_dirs)) == 0


def test_cache_clear_older_than_keeps_the_recent_results(isolated_user_dirs):
    fill(store(isolated_user_dirs), [90, 31, 29, 0])
    proc = llamavis("cache", "clear", "--older-than", "30", "--yes")
    assert proc.returncode == 0 and "deleted 2" in proc.stderr
    assert json.loads(llamavis("cache", "stats", "--json").stdout)["entries"] == 2


def test_a_damaged_cache_is_one_line_exit_3_and_clear_starts_a_fresh_one(isolated_user_dirs):
    path = store(isolated_user_dirs)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database\n" * 200)
    stats = llamavis("cache", "stats")
    assert stats.returncode == 3 and stats.stderr.count("\n") == 1
    assert str(path) in stats.stderr and "cache clear" in stats.stderr
    assert "Traceback" not in stats.stderr
    assert llamavis("cache", "clear", "--yes").returncode == 0
    assert json.loads(llamavis("cache", "stats", "--json").stdout)["entries"] == 0


def on_terminal(answer: bytes, *args: str) -> tuple[int, bytes]:
    """Run llamavis with standard input on a pty, type ``answer`` once it asks."""
    master, slave = os.openpty()
    proc = subprocess.Popen([*COMMAND, *args], stdin=slave,
                            stdout=slave, stderr=slave)
    os.close(slave)
    seen, sent = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the command has exited
            break
        if not chunk:
            break
        seen += chunk
        if not sent and b"[y/N]" in seen:
            os.write(master, answer)
            sent = True
    os.close(master)
    return proc.wait(timeout=30), seen


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_cache_clear_on_a_terminal_asks_first_and_no_keeps_everything(isolated_user_dirs):
    fill(store(isolated_user_dirs), [5, 6, 7])
    code, screen = on_terminal(b"n\n", "cache", "clear")
    assert code == 0 and b"Delete 3 cached result(s)" in screen and b"nothing was deleted" in screen
    assert entries(store(isolated_user_dirs)) == 3
    code, screen = on_terminal(b"y\n", "cache", "clear")
    assert code == 0 and b"deleted 3" in screen
    assert entries(store(isolated_user_dirs)) == 0


def test_after_a_clear_the_same_image_is_asked_again(tmp_path):
    photo = Path(__file__).resolve().parent.parent / "examples" / "shapes.jpg"
    with FakeServer("a red ball") as server:
        ask = ("caption", str(photo), "--json", "-P", "local", "--base-url", server.url)
        first, second = llamavis(*ask), llamavis(*ask)
        assert len(server.requests) == 1 and json.loads(second.stdout)["cached"] is True
        assert llamavis("cache", "clear", "--yes").returncode == 0
        third = llamavis(*ask)
        assert len(server.requests) == 2
    assert first.returncode == third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["cached"] is False


def test_a_dry_run_leaves_no_cache_file_behind(isolated_user_dirs):
    photo = Path(__file__).resolve().parent.parent / "examples" / "shapes.jpg"
    proc = llamavis("caption", str(photo), "--dry-run", "-P", "openrouter")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["request_count"] == 1
    assert not store(isolated_user_dirs).exists()
