"""What a person sees: the command on a pseudo-terminal, against a loopback server.

The pty is real either way: most tests run the command in this process with the pty's slave
side as its stdout/stderr; a few (marked subprocess) run the installed command on it.

The pty's output is replayed through pyte, a terminal emulator, so the tests look at the
final screen plus its scrollback, as a person would, rather than at escape codes.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fakeserver import FakeServer, Reply, stream_lines
from support.cli import Pipe, run_here, start

pyte = pytest.importorskip("pyte")

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX"),
]

ROOT = Path(__file__).resolve().parent.parent
SHAPES = str(ROOT / "examples" / "shapes.jpg")
LOCAL = ["-P", "local", "--no-cache"]
KEY = "sk-test-SENTINEL-4b1d0e"
WORDS = " ".join(f"word{i}" for i in range(20))


@dataclass
class PtyRun:
    returncode: int
    tty: bytes  # everything written to the pseudo-terminal
    stdout: bytes = b""  # stdout, when it was a pipe
    stderr: bytes = b""  # stderr, when it was a pipe
    seen: dict[bytes, float] = field(default_factory=dict)  # marker -> time.monotonic() first read

    def screen(self, cols: int, rows: int) -> list[str]:
        """The terminal's scrollback then its screen, one string per row, trailing blanks cut."""
        screen = pyte.HistoryScreen(cols, rows, history=100_000)
        pyte.ByteStream(screen).feed(self.tty)
        top = ["".join(row[x].data for x in range(cols)) for row in screen.history.top]
        lines = [line.rstrip() for line in top + list(screen.display)]
        while lines and not lines[-1]:
            lines.pop()
        return lines


def run_on_pty(*args: str, cols: int = 80, rows: int = 24, env: dict[str, str] | None = None,
               stdout_tty: bool = True, stderr_tty: bool = True, watch: tuple[bytes, ...] = (),
               release: dict[bytes, threading.Event] | None = None, timeout: float = 300,
               installed: bool = False) -> PtyRun:
    """Run llamavis with stdout and/or stderr on a fresh pty; read it until the command ends.

    In this process (the pty is real: its slave side becomes sys.stdout/sys.stderr), or with
    ``installed``, as the installed command in a process of its own.
    ``release`` sets each event once its marker has been read: a server holding its answer
    on that event (Reply.hold) then goes on in lock-step with what the terminal shows.
    """
    release = release or {}
    watch = (*watch, *release)
    overrides: dict[str, str | None] = {"TERM": "xterm", "COLUMNS": str(cols), "LINES": str(rows),
                                        "NO_COLOR": None, **(env or {})}
    master, slave = os.openpty()
    if installed:
        full_env = {k: v for k, v in {**os.environ, **overrides}.items() if v is not None}
        proc = start(*args, base_env=full_env, stdin=subprocess.DEVNULL,
                     stdout=slave if stdout_tty else subprocess.PIPE,
                     stderr=slave if stderr_tty else subprocess.PIPE)
        os.close(slave)
        pipes = [p.fileno() for p in (proc.stdout, proc.stderr) if p is not None]
        out = _read_until_closed(master, pipes, watch, release, timeout, args, proc.kill)
        os.close(master)
        returncode = proc.wait(timeout=timeout)
        return PtyRun(returncode, out[master],
                      stdout=out[proc.stdout.fileno()] if proc.stdout else b"",
                      stderr=out[proc.stderr.fileno()] if proc.stderr else b"",
                      seen=out["seen"])  # type: ignore[arg-type]
    on_tty = [open(slave, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
              for _ in range(2)]  # like a process's own: line-buffered text on the fd
    stdout = on_tty[0] if stdout_tty else Pipe()
    stderr = on_tty[1] if stderr_tty else Pipe()
    result: dict = {}
    reader = threading.Thread(target=lambda: result.update(
        _read_until_closed(master, [], watch, release, timeout, args, lambda: None)), daemon=True)
    reader.start()
    try:
        returncode = run_here(list(args), overrides, Pipe(), stdout, stderr)
    finally:
        for stream in on_tty:
            stream.close()
        os.close(slave)  # the reader sees EIO once the last writer has gone
        reader.join(timeout)
        os.close(master)
    return PtyRun(returncode, result[master],
                  stdout=b"" if stdout_tty else stdout.text().encode(),
                  stderr=b"" if stderr_tty else stderr.text().encode(), seen=result["seen"])


def _read_until_closed(master: int, pipes: list[int], watch: tuple[bytes, ...],
                       release: dict[bytes, threading.Event], timeout: float, args: tuple[str, ...],
                       kill) -> dict:
    """Everything read from the pty and the pipes until each is closed (fd -> bytes), and
    under "seen" when each watched marker was first read."""
    reading = {fd: bytearray() for fd in (master, *pipes)}
    done: dict = {}
    seen: dict[bytes, float] = {}
    deadline = time.monotonic() + timeout
    while reading:
        ready, _, _ = select.select(list(reading), [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            kill()
            raise AssertionError(f"llamavis {' '.join(args)} still running after {timeout} s")
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every process holding the pty's other side has exited
                data = b""
            if not data:
                done[fd] = bytes(reading.pop(fd))
                continue
            reading[fd] += data
            now = time.monotonic()
            seen.update({m: now for m in watch if m not in seen and m in reading[fd]})
            for marker in seen.keys() & release.keys():
                release[marker].set()
    done["seen"] = seen
    return done


def caption_on_pty(server: FakeServer, *extra: str, task: str = "caption", **kw) -> PtyRun:
    return run_on_pty(task, SHAPES, "--base-url", server.url, *LOCAL, *extra, **kw)


# -- one answer, live ----------------------------------------------------------------


@pytest.mark.subprocess
def test_first_words_appear_before_the_rest_of_the_answer_is_sent():
    # The server sends the role and the first word, then waits until the terminal shows
    # that word: an answer shown only once complete would never release it (held_out).
    shown = threading.Event()
    with FakeServer(Reply(text=WORDS, hold=shown, hold_after=2)) as server:
        run = caption_on_pty(server, release={b"word0": shown}, installed=True)
    assert run.returncode == 0, run.tty.decode(errors="replace")
    assert server.requests[0]["stream"] is True
    assert server.held_out == 0  # word0 was on the screen while word1..19 were not yet sent
    assert run.tty.index(b"asking") < run.tty.index(b"word0")  # a spinner until the first token
    assert " ".join(run.screen(80, 24)) == WORDS


def test_streamed_answer_is_on_the_final_screen_once():
    with FakeServer(Reply(text=WORDS, chunk_delay=0.01)) as server:
        streamed = caption_on_pty(server).screen(80, 24)
        waited = caption_on_pty(server, "--no-stream").screen(80, 24)
    assert streamed == waited
    text = " ".join(streamed)
    assert [text.count(f"word{i} ") + text.endswith(f"word{i}") for i in range(20)] == [1] * 20


ANSWERS = {
    "paragraphs": ("caption", "\n\n".join(f"Paragraph {i} of the answer." for i in range(40))),
    "list": ("caption", "Items:\n\n" + "\n".join(f"- item {i}" for i in range(40)) + "\n\nDone."),
    "ocr lines": ("ocr", "\n".join(f"RECEIPT LINE {i}" for i in range(40))),
}


@pytest.mark.parametrize("kind", list(ANSWERS))
def test_answer_taller_than_the_screen_has_each_line_once(kind):
    task, answer = ANSWERS[kind]
    with FakeServer(Reply(text=answer, chunk_delay=0.004)) as server:
        streamed = caption_on_pty(server, task=task, rows=10).screen(80, 10)
        waited = caption_on_pty(server, "--no-stream", task=task, rows=10).screen(80, 10)
    numbered = [line for line in streamed if re.search(r"\d+", line)]
    assert len(numbered) == 40 and len(set(numbered)) == 40, "\n".join(streamed)
    assert streamed == waited  # line for line what the finished answer looks like


def test_a_stream_cut_midway_starts_over_with_a_note():
    cut = stream_lines("First part.\n\nPARTIAL " + WORDS)[:8]  # no finish_reason, no [DONE]
    retry = Reply(text="Whole answer.\n\n" + WORDS, chunk_delay=0.01)
    with FakeServer([Reply(raw_stream=cut, chunk_delay=0.02), retry]) as server:
        run = caption_on_pty(server, rows=12)
    assert run.returncode == 0 and len(server.requests) == 2
    screen = run.screen(80, 12)
    text = "\n".join(screen)
    assert "PARTIAL" not in text and text.count("Whole answer.") == 1
    assert screen[-2:] == [" ".join(WORDS.split()[:13]), " ".join(WORDS.split()[13:])]
    # "First part." had been printed for good: the note says the rest starts over
    assert screen.index("… the answer was cut off; asking again") < screen.index("Whole answer.")


@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "1"}], ids=["rich", "no-color"])
def test_a_stream_that_fails_for_good_is_not_left_looking_like_the_answer(env):
    cut = stream_lines("First part.\n\nPARTIAL " + WORDS)[:8]  # cut every time
    with FakeServer(Reply(raw_stream=cut, chunk_delay=0.01)) as server:
        run = caption_on_pty(server, "--max-retries", "0", rows=12, cols=120, env=env)
    assert run.returncode == 1 and len(server.requests) == 1
    text = "\n".join(run.screen(120, 12))
    assert "incomplete" in text and "stream ended before the answer was complete" in text
    assert "PARTIAL" not in text or env  # plain text cannot be taken back, but it is marked


def test_a_class_waits_under_a_spinner_then_prints_once():
    spinning = threading.Event()  # the answer is held until the spinner shows
    with FakeServer(Reply(text="Outdoor", hold=spinning)) as server:
        run = run_on_pty("classify", SHAPES, "-c", "indoor,outdoor", "--base-url", server.url,
                         *LOCAL, release={b"asking": spinning})
    assert run.returncode == 0 and server.held_out == 0
    assert run.screen(80, 24) == ["outdoor"]


@pytest.mark.parametrize(("tail", "end"), [
    ("One.\n\nTwo", len("One.\n\n")),
    ("One.\n\nTwo.\n\nThr", len("One.\n\nTwo.\n\n")),
    ("One.\n\n", 0),  # nothing follows yet: the next block may continue a list
    ("```\ncode\n\nmore", 0),  # inside a fence
    ("```\ncode\n```\n\nAfter", len("```\ncode\n```\n\n")),
    ("- a\n\n- b", 0),  # one loose list
    ("1. a\n\n2. b", 0),
    ("Items:\n\n- a", len("Items:\n\n")),
    ("- a\n\n  still a", 0),  # an indented continuation
])
def test_block_end_splits_only_where_the_markdown_stays_the_same(tail, end):
    from llamavis.cli.output.live import block_end

    assert block_end(tail) == end


def test_no_stream_asks_for_the_whole_answer_and_prints_it_once():
    with FakeServer(Reply(text=WORDS)) as server:
        run = caption_on_pty(server, "--no-stream")
    assert run.returncode == 0
    assert not server.requests[0].get("stream")
    screen = run.screen(80, 24)
    assert " ".join(screen).count("word19") == 1 and b"asking" not in run.tty


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}], ids=["NO_COLOR", "TERM=dumb"])
@pytest.mark.subprocess
def test_no_color_and_dumb_terminal_stream_plain_text(env):
    shown = threading.Event()  # the rest is sent once "A **red**" is on the terminal
    with FakeServer(Reply(text="A **red** ball.\n\n" + WORDS, hold=shown, hold_after=3)) as server:
        run = caption_on_pty(server, env=env, release={b"A **red**": shown}, installed=True)
    assert run.returncode == 0
    assert b"\x1b" not in run.tty  # not one escape sequence: no colour, no cursor moves
    assert run.tty.replace(b"\r\n", b"\n") == f"A **red** ball.\n\n{WORDS}\n".encode()
    assert server.held_out == 0  # still streamed as it came


def test_an_empty_no_color_does_not_turn_colour_off():
    # no-color.org: NO_COLOR counts "when present and not an empty string" (as rich reads it).
    with FakeServer(Reply(text="A **red** ball.")) as server:
        run = caption_on_pty(server, env={"NO_COLOR": ""})
    assert run.returncode == 0
    assert b"\x1b" in run.tty and b"**" not in run.tty  # rendered as Markdown


@pytest.mark.subprocess
def test_piped_output_is_plain_and_each_line_arrives_as_it_finishes():
    release = threading.Event()
    answered = []

    def reply(body):
        if answered:  # the second image waits until the test has read the first line
            assert release.wait(120)
        answered.append(1)
        return "a red ball"

    with FakeServer(reply) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llamavis", "caption", SHAPES, str(ROOT / "examples" / "sign.png"),
             "--base-url", server.url, *LOCAL, "-j", "1", "--ordered"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env={**os.environ, "TERM": "xterm"},
        )
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        first = proc.stdout.readline() if ready else b""
        release.set()
        rest, err = proc.communicate(timeout=120)
    assert first == f"{SHAPES}\ta red ball\n".encode()  # before the second image was answered
    assert rest.endswith(b"sign.png\ta red ball\n") and b"\x1b" not in first + rest + err


# -- batches on a terminal --------------------------------------------------------------


@pytest.fixture
def twenty_images(tmp_path: Path) -> Path:
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(20):  # twenty different files (bytes after the JPEG's end): twenty requests
        (folder / f"img{i:02d}.jpg").write_bytes(Path(SHAPES).read_bytes() + b"\0" * i)
    return folder


def bar_lines(screen: list[str]) -> list[str]:
    return [line for line in screen if "━" in line]


def test_batch_shows_progress_to_n_of_n_on_stderr_while_stdout_stays_clean_jsonl(twenty_images):
    with FakeServer(Reply(text="a red ball", delay=0.02)) as server:
        run = run_on_pty("caption", str(twenty_images), "--jsonl", "--base-url", server.url, *LOCAL,
                         cols=100, stdout_tty=False)
    assert run.returncode == 0, run.tty.decode(errors="replace")
    assert b"\x1b" not in run.stdout
    docs = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert len(docs) == 20 and {d["output"] for d in docs} == {"a red ball"}
    screen = run.screen(100, 24)
    assert "20/20" in bar_lines(screen)[-1] and "img/s" in bar_lines(screen)[-1]
    assert re.search(r"ETA\s+0:00:00", bar_lines(screen)[-1])
    summary = screen[-1]
    assert "20 succeeded, 0 failed, 0 cached" in summary
    assert "32,200 in + " in summary and "cost unknown" in summary and summary.endswith(" s")


@pytest.mark.subprocess
def test_a_piped_path_list_streams_in_while_the_bar_shows_on_the_terminal():
    # `find ... | llamavis caption --jsonl > out.jsonl` typed at a terminal: stderr is the
    # terminal, stdin a pipe that a slow producer keeps open. The first image must be
    # answered while the list is still coming, not after it ends.
    with FakeServer(Reply(text="a red ball")) as server:
        master, slave = os.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "llamavis", "caption", "--jsonl", "--base-url", server.url,
             *LOCAL],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(slave)
        tty = bytearray()
        drain = threading.Thread(target=lambda: _read_all(master, tty), daemon=True)
        drain.start()
        proc.stdin.write(f"{SHAPES}\n{SHAPES}\n".encode())  # two: the output is JSONL lines
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        first = proc.stdout.readline() if ready else b""
        proc.stdin.write(f"{SHAPES}\n".encode())  # the rest of the list, only now
        proc.stdin.close()
        rest = proc.stdout.read()
        code = proc.wait(timeout=120)
        drain.join(10)
    assert first and json.loads(first)["output"] == "a red ball"  # before the list had ended
    assert code == 0 and len(rest.splitlines()) == 2
    screen = PtyRun(code, bytes(tty)).screen(100, 24)
    assert "3/" in bar_lines(screen)[-1] and "3 succeeded" in screen[-1]


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        into += data
    os.close(fd)


def test_batch_failures_show_in_the_bar_and_summary(twenty_images):
    (twenty_images / "img03.jpg").write_bytes(b"not an image")
    with FakeServer(Reply(text="a red ball")) as server:
        run = run_on_pty("caption", str(twenty_images), "--jsonl", "--base-url", server.url, *LOCAL,
                         cols=100, stdout_tty=False)
    assert run.returncode == 1
    screen = run.screen(100, 24)
    assert "1 failed" in bar_lines(screen)[-1] and "20/20" in bar_lines(screen)[-1]
    assert "19 succeeded, 1 failed" in screen[-1]
    text = "\n".join(screen)
    assert text.count("img03.jpg") == 1 and "bad_image" in text  # one error line (may wrap)
    assert len(run.stdout.decode().splitlines()) == 20


def test_batch_results_and_bar_on_one_terminal_do_not_garble(twenty_images):
    with FakeServer(Reply(text="a red ball", delay=0.02)) as server:
        run = run_on_pty("caption", str(twenty_images), "--base-url", server.url, *LOCAL,
                         cols=100, rows=10)
    assert run.returncode == 0
    screen = run.screen(100, 10)
    results = [line for line in screen if ".jpg" in line]
    assert len(results) == 20 and all(line.endswith("a red ball") for line in results)
    assert len({line.split()[0] for line in results}) == 20
    assert not any("━" in line for line in results)
    assert len(bar_lines(screen)) == 1 and "20/20" in bar_lines(screen)[0]


# -- errors and --debug -------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_one_line_saying_what_to_do():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    run = run_on_pty("caption", SHAPES, "--base-url", url, *LOCAL, "--max-retries", "0",
                     stdout_tty=False, stderr_tty=False)
    assert run.returncode == 1
    lines = run.stderr.decode().splitlines()
    assert len(lines) == 1 and url in lines[0] and "is the server running?" in lines[0]
    assert run.stdout == b""


def test_debug_shows_requests_and_responses_without_the_key():
    echo = Reply(status=400, body={"error": {"message": f"invalid request from key {KEY}"}})
    with FakeServer([Reply(text="a red ball"), echo]) as server:
        ok = run_on_pty("caption", SHAPES, "--base-url", server.url, *LOCAL, "--debug",
                        env={"LLAMAVIS_API_KEY": KEY}, stdout_tty=False, stderr_tty=False)
        bad = run_on_pty("caption", SHAPES, "--base-url", server.url, *LOCAL, "--debug",
                         env={"LLAMAVIS_API_KEY": KEY}, stdout_tty=False, stderr_tty=False)
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    debug = ok.stderr.decode()
    assert f"POST {server.url}/chat/completions" in debug and "Bearer ***" in debug
    assert '"max_tokens"' in debug and "base64" in debug and "200 after" in debug
    assert "400 after" in bad.stderr.decode() and "invalid request" in bad.stderr.decode()
    for run in (ok, bad):
        assert KEY.encode() not in run.stdout + run.stderr


def test_debug_adds_the_traceback_that_errors_otherwise_hide():
    plain = run_on_pty("caption", SHAPES, "-P", "openrouter", stdout_tty=False, stderr_tty=False)
    debug = run_on_pty("caption", SHAPES, "-P", "openrouter", "--debug",
                       stdout_tty=False, stderr_tty=False)
    assert plain.returncode == debug.returncode == 3
    assert len(plain.stderr.decode().splitlines()) == 1 and b"Traceback" not in plain.stderr
    assert b"OPENROUTER_API_KEY" in plain.stderr and b"keys set openrouter" in plain.stderr
    assert b"Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.decode().splitlines()[-1] == plain.stderr.decode().strip()
