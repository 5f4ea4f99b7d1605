"""One answer streaming onto a terminal: a spinner, then text that grows in place.

Only the growing end of the answer is live; everything above it is printed for good,
once. A finished Markdown block (up to a blank line) is printed as soon as the next one
starts, and a block taller than the screen has its top lines printed as they scroll past
the live area. Redrawing only what fits on the screen is what keeps a long answer from
flickering or repeating lines. Imported only when a terminal shows an answer.

One thread draws: rich's auto-refresh thread is off, and the spinner is ticked from the
event loop. With it on, a refresh could land between the moment a ``console.print`` above
the live area computed how far up to move the cursor (rich takes its lock only for that)
and the moment it wrote: the live area had grown meanwhile, its top line was not erased,
and a streamed line showed twice on a short terminal.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

from llamavis.cli.output.term import answer_renderable, is_tty, safe_text

_LIST_ITEM = re.compile(r"\s|[-*+]\s|\d+[.)]\s")
_FRAME_S = 1 / 20  # re-render a long block at most 20 times a second
_SPIN_S = 1 / 12  # the spinner's frame rate while no text has come


class Lines:
    """Already rendered lines, drawn as they are (no re-wrapping)."""

    def __init__(self, lines: list[list[Any]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.segment import Segment

        for line in self.lines:
            yield from line
            yield Segment.line()


def block_end(tail: str) -> int:
    """Where the finished blocks of ``tail`` end (0 if none): after its last safe blank line.

    A blank line inside a code fence, or between items of one list, ends no block;
    nor does one that nothing has followed yet.
    """
    end = len(tail.rstrip("\n"))
    cut = tail.rfind("\n\n", 0, end)
    while cut > 0:
        before, after = tail[:cut], tail[cut:].lstrip("\n")
        last_line = before.rsplit("\n", 1)[-1]
        in_fence = before.count("```") % 2 == 1
        in_list = bool(_LIST_ITEM.match(after)) and bool(_LIST_ITEM.match(last_line))
        if not in_fence and not in_list and before.strip():
            return len(tail) - len(after)
        cut = tail.rfind("\n\n", 0, cut)
    return 0


class LiveAnswer:
    """Streams one answer onto the terminal through rich; see the module docstring."""

    def __init__(self, console: Any, task: str) -> None:
        self.console = console
        self.task = task
        self.text = ""
        self.base = 0  # text[:base] is printed for good, as whole blocks
        self.kept = 0  # lines of the block at text[base:] printed for good
        self.blocks = 0  # blocks printed so far: a blank line goes before the next
        self.live: Any = None
        self.streamed = False
        self._last_frame = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._spin: asyncio.TimerHandle | None = None

    def __enter__(self) -> LiveAnswer:
        from rich.live import Live
        from rich.spinner import Spinner

        self.live = Live(Spinner("dots", text="asking Llama 3.2 Vision…"), console=self.console,
                         transient=True, auto_refresh=False, vertical_overflow="ellipsis",
                         redirect_stderr=is_tty(sys.stderr))  # notes go above the live area
        self.live.__enter__()
        self._spin_soon()
        return self

    def delta(self, piece: str) -> None:
        """Add a piece of the answer; the screen follows at most 20 times a second."""
        first = not self.text.strip()
        self.text += piece
        if not self.text.strip():
            return
        self.streamed = True
        self._stop_spinning()
        wait = self._last_frame + _FRAME_S - time.monotonic()
        if first or wait <= 0:
            self._frame()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(wait, self._frame)
            except RuntimeError:  # no event loop (a direct caller): draw now
                self._frame()

    def reset(self) -> None:
        """A retried request starts over: drop the partial answer, and say so if it showed."""
        self._cancel()
        if self.base or self.kept:
            self.console.print("[dim]… the answer was cut off; asking again[/]")
        self.text, self.base, self.kept, self.blocks = "", 0, 0, 0
        from rich.spinner import Spinner

        self.live.update(Spinner("dots", text="asking again…"), refresh=True)
        self._spin_soon()

    def fail(self) -> None:
        """The answer ended in an error: what is still live goes; what was printed is marked."""
        self._cancel()
        if self.base or self.kept:
            self.console.print("[dim]… the answer above is incomplete: it failed (see below)[/]")
        self.text = self.text[: self.base]

    def __exit__(self, *exc: object) -> None:
        self._cancel()
        self._stop_spinning()
        self.live.__exit__(*exc)
        # Print the rest as the finished answer would look; after an error or Ctrl-C too,
        # so that what was on the screen stays there.
        if self.text[self.base:].strip():
            self._keep(self._render(self.text[self.base:])[self.kept:])

    # -- drawing ----------------------------------------------------------------

    def _frame(self) -> None:
        self._timer = None
        self._last_frame = time.monotonic()
        tail = self.text[self.base:]
        cut = block_end(tail)
        if cut:
            self._keep(self._render(tail[:cut])[self.kept:])
            self.base, self.kept, self.blocks = self.base + cut, 0, self.blocks + 1
        lines = self._render(self.text[self.base:])
        gap: list[list[Any]] = [[]] if self._needs_gap(lines) else []
        room = max(1, self.console.height - 2 - len(gap))
        if len(lines) - self.kept > room:  # the top of the block scrolls off: print it for good
            self._keep(lines[self.kept:len(lines) - room])
            self.kept, gap = len(lines) - room, []
        self.live.update(Lines(gap + lines[self.kept:]), refresh=True)  # we draw: no thread does

    def _keep(self, lines: list[list[Any]]) -> None:
        """Print lines for good, above the live area (a blank line first between blocks)."""
        if not lines:
            return
        if self._needs_gap(lines):
            lines = [[], *lines]
        self.console.print(Lines(lines))

    def _needs_gap(self, lines: list[list[Any]]) -> bool:
        """A blank line between blocks, as one document has, unless the block brings its own."""
        starts_blank = bool(lines) and not "".join(seg.text for seg in lines[0]).strip()
        return bool(self.blocks) and not self.kept and not starts_blank

    def _render(self, text: str) -> list[list[Any]]:
        renderable = answer_renderable(self.task, text)
        return self.console.render_lines(renderable, self.console.options, pad=False)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _spin_soon(self) -> None:
        """The spinner's next frame, from the event loop (none without a running loop)."""
        self._stop_spinning()
        try:
            self._spin = asyncio.get_running_loop().call_later(_SPIN_S, self._spin_frame)
        except RuntimeError:
            self._spin = None

    def _spin_frame(self) -> None:
        self._spin = None
        self.live.refresh()
        self._spin_soon()

    def _stop_spinning(self) -> None:
        if self._spin is not None:
            self._spin.cancel()
            self._spin = None


class PlainAnswer:
    """Streams one answer as plain, unbuffered text (a terminal with NO_COLOR or TERM=dumb)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.streamed = False
        self.at_line_start = True

    def __enter__(self) -> PlainAnswer:
        return self

    def delta(self, piece: str) -> None:
        self.streamed = True
        self.stream.write(safe_text(piece))
        self.stream.flush()
        self.at_line_start = piece.endswith("\n")

    def reset(self) -> None:
        if self.streamed:
            self.stream.write("\n[retrying]\n")
            self.stream.flush()

    def fail(self) -> None:
        if self.streamed:
            self.stream.write("\n[incomplete: the answer failed]\n")
            self.stream.flush()
            self.at_line_start = True

    def __exit__(self, *exc: object) -> None:
        if self.streamed and not self.at_line_start:
            self.stream.write("\n")
            self.stream.flush()
