"""Nothing paid for twice on Ctrl-C (issue 18): the installed command against a loopback server.

The first SIGINT starts nothing new and keeps the answers in flight (they are paid for);
a rerun then asks only for what was never asked.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from test_cli_batch import (
    LOCAL,
    LineReader,
    asked,
    echo,
    expected,
    jsonl,
    llamavis,
    make_images,
    serve,
    start,
)

pytestmark = pytest.mark.subprocess

# Long enough never to run out on a loaded machine: the wait ends when the answers are in.
GRACE = {"LLAMAVIS_INTERRUPT_GRACE": "60"}


def test_sigint_during_a_j8_batch_then_a_rerun_asks_no_image_twice(tmp_path):
    photos = make_images(tmp_path / "photos", 40)
    args = ("caption", str(tmp_path / "photos"), "-j", "8", "--jsonl", *LOCAL)
    with serve(echo(delay=1.0)) as server:  # 1 s per answer, on the server's side
        proc = start(*args, "--base-url", server.url, env=GRACE)
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.close()
        reader = LineReader(proc)
        before = reader.take(8)  # the first wave answered; the next one is in flight
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
        kept = jsonl(b"".join(before + reader.rest()).decode())
        stderr = proc.stderr.read().decode()
        first = len(server.requests)

        server.reply = echo()  # the rerun's answers need not take a second each
        rerun = llamavis(*args, "--base-url", server.url, env=GRACE)
        assert rerun.returncode == 0, rerun.stderr
    assert "interrupted: waiting up to 60 s for" in stderr and "Traceback" not in stderr
    assert 8 <= first < 40
    assert len(kept) == first  # every request sent in the first run: its answer kept
    assert all(d["error"] is None and d["output"] == expected(d["image"]) for d in kept)
    per_image = Counter(asked(server))
    assert set(per_image) == {expected(p) for p in photos}
    assert set(per_image.values()) == {1}  # no image asked twice
    assert sum(d["cached"] for d in jsonl(rerun.stdout)) == first
