"""6. Streaming: from the server's first token to the answer's first byte on the CLI's stdout.

stdout is a pseudo-terminal (rich live rendering, and plain text with NO_COLOR) or a
pipe. The server and this reader share one monotonic clock (the server is a thread here).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import tempfile
import termios
import time
from pathlib import Path

from common import Figure, Workdir, cli, local
from loopback import FIRST_WORD, Loopback

TOKEN_INTERVAL = 0.05
FIRST_TOKEN_AFTER = 0.3  # the server "thinks" before its first token: the spinner shows


def _read_all(fd: int, timeout: float) -> list[tuple[float, bytes]]:
    """Every chunk read from ``fd`` until EOF, with the time it arrived."""
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        chunks.append((time.monotonic(), data))
    return chunks


def run_streaming(cmd: list[str], env: dict[str, str], cwd: Path, *, tty: bool,
                  timeout: float = 60) -> tuple[int, list[tuple[float, bytes]]]:
    """Run ``cmd`` with stdout on a pty (120x40) or a pipe; stderr to a file."""
    with tempfile.TemporaryFile() as err:
        if tty:
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=err, env=env,
                                    cwd=cwd, start_new_session=True)
            os.close(slave)
        else:
            master, writer = os.pipe()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=writer, stderr=err,
                                    env=env, cwd=cwd)
            os.close(writer)
        try:
            chunks = _read_all(master, timeout)
        finally:
            os.close(master)
            if proc.poll() is None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return proc.returncode, chunks


def _first_text(chunks: list[tuple[float, bytes]], needle: bytes) -> float | None:
    seen = b""
    for at, data in chunks:
        seen += data
        if needle in seen:
            return at
    return None


def stream_figures(server: Loopback, work: Workdir, image: Path, tokens: int) -> list[Figure]:
    server.configure(latency=FIRST_TOKEN_AFTER, jitter=0.0, token_interval=TOKEN_INTERVAL,
                     tokens=tokens)
    modes = {
        "terminal (rich live Markdown)": (True, {}),
        "terminal with NO_COLOR (plain text)": (True, {"NO_COLOR": "1"}),
        "pipe": (False, {}),
    }
    figures = []
    for label, (tty, extra) in modes.items():
        server.reset()
        cmd = cli("caption", str(image), "--no-cache", *local(server.url))
        code, chunks = run_streaming(cmd, work.env(**extra), work.root, tty=tty)
        stats = server.stats()
        if code != 0 or not stats.first_token_at:
            figures.append(Figure("stream", f"first token → first answer byte, {label}", None,
                                  "s", note=f"PROBLEM: exit {code}, {stats.requests} requests"))
            continue
        first, last = stats.first_token_at[0], stats.last_token_at[0]
        shown = _first_text(chunks, FIRST_WORD.encode())
        anything = chunks[0][0] - first if chunks else None
        how = "streamed request" if stats.streamed[0] else "non-streamed request"
        note = f"{how}; {tokens} tokens every {TOKEN_INTERVAL * 1000:.0f} ms"
        if anything is not None and anything < 0:
            note += f"; first byte of any kind (spinner) {-anything:.2f} s before the first token"
        if shown is None:
            note += "; PROBLEM: the answer's first word never appeared"
        value = None if shown is None else shown - first
        figures.append(Figure(
            "stream", f"first token → first answer byte, {label}", value, "s", last - first,
            "answer's duration, first to last token",
            goal="" if not tty else "< 0.5",
            met=None if not tty else (value is not None and value < 0.5 * (last - first)),
            note=note,
        ))  # fmt: skip
    return figures
