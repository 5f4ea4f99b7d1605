"""A live answer is drawn by one thread: the event loop's (the pty race of issue 18).

rich's auto-refresh thread used to redraw the live area while a line printed above it was
half way out (rich locks only the cursor arithmetic, not the write): on a short terminal a
streamed line then showed twice. These drive LiveAnswer in-process on a terminal console
and replay what it wrote through pyte.
"""

from __future__ import annotations

import asyncio
import io
import threading

import pyte
from rich.console import Console

from llamavis.cli.output import live as live_mod
from llamavis.cli.output.live import LiveAnswer


class Recorder(io.StringIO):
    """A terminal's input: what was written, and by which threads."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[int] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.get_ident())
        return super().write(text)

    def isatty(self) -> bool:
        return True


def screen_of(text: str, cols: int, rows: int) -> list[str]:
    screen = pyte.HistoryScreen(cols, rows, history=10_000)
    pyte.Stream(screen).feed(text.replace("\n", "\r\n"))
    top = ["".join(row[x].data for x in range(cols)) for row in screen.history.top]
    lines = [line.rstrip() for line in top + list(screen.display)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


async def stream(answer: LiveAnswer, pieces: list[str]) -> set[int]:
    """Stream ``pieces``; the threads alive while the answer was on the screen."""
    alive: set[int] = set()
    with answer:
        for _ in range(5):  # the spinner turns while nothing has come
            await asyncio.sleep(0)
        for piece in pieces:
            answer.delta(piece)
            alive |= {t.ident for t in threading.enumerate() if t.ident is not None}
            await asyncio.sleep(0)
    return alive


def test_a_long_ocr_stream_on_a_10_row_terminal_is_drawn_by_one_thread_each_line_once(monkeypatch):
    monkeypatch.setattr(live_mod, "_FRAME_S", 0.0)  # a frame per piece: the most redraws
    monkeypatch.setattr(live_mod, "_SPIN_S", 0.0, raising=False)
    out = Recorder()
    console = Console(file=out, force_terminal=True, width=60, height=10, color_system=None)
    lines = [f"RECEIPT LINE {i}" for i in range(40)]
    pieces = [w + " " for line in lines for w in (line + "\n").split(" ")]
    answer = LiveAnswer(console, "ocr")
    before = {t.ident for t in threading.enumerate()}
    alive = asyncio.run(stream(answer, pieces))
    assert alive <= before  # no refresh thread that could draw between our writes
    assert out.writers == {threading.get_ident()}
    assert "asking Llama 3.2 Vision" in out.getvalue()  # the spinner was shown (and turned)
    shown = [line for line in screen_of(out.getvalue(), 60, 10) if "RECEIPT" in line]
    assert [line.strip() for line in shown] == lines
