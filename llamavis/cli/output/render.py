"""What a person sees: results on stdout, progress and notes on stderr.

On a terminal the single answer streams live as Markdown (rich); piped, stdout
gets plain text and nothing else. Rich is imported only when a terminal needs it.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import IO, Any, cast

from llamavis.cli.output.term import (
    answer_renderable,
    console,
    fancy,
    is_tty,
    one_line,
    safe_text,
)
from llamavis.types import Result

__all__ = [  # the terminal helpers are re-exported: commands import them from here
    "AboveBar", "Progress", "ResultSink", "SkipNotes", "answer_renderable", "cost_text", "debug_line",
    "error_line", "fancy", "is_tty", "note", "one_line", "safe_text", "silence_stdout",
]


def silence_stdout() -> None:
    """After a closed pipe: point stdout at devnull, so the flush at exit stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _err(line: str) -> None:
    from llamavis.urls import scrubbed

    sys.stderr.write(safe_text(scrubbed(line)) + "\n")  # never a key or password in a URL
    sys.stderr.flush()


def note(message: str) -> None:
    _err(one_line(f"llamavis: {message}"))


class SkipNotes:
    """Notes for files skipped in a directory: the first few by name, then one count.

    A folder of a million photos with a sidecar beside each must not drown stderr.
    """

    SHOWN = 5

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, path: str, reason: str) -> None:
        self.count += 1
        if self.count <= self.SHOWN:
            note(f"skipping {path}: {reason}")

    def close(self) -> None:
        if self.count > self.SHOWN:
            note(f"skipped {self.count} entries in all (the first {self.SHOWN} named above)")


def error_line(image: str, error: dict[str, str]) -> None:
    """One line per failed image: what happened to which file, and its error kind."""
    from llamavis.urls import shown

    masked = shown(image)  # never a password in a URL
    message = str(error.get("message", "")).replace(image, masked)
    image = masked
    if not message.startswith(image):
        message = f"{image}: {message}"
    _err(one_line(f"llamavis: {message} [{error.get('kind')}]"))


def debug_line(message: str) -> None:
    _err(f"[debug] {message}")


class ResultSink:
    """Writes each finished result where the options say, as soon as it finishes."""

    def __init__(self, *, task: str, single: bool, opts: Any, sidecars: Any) -> None:
        """``opts``: the command's Invocation (json_out, jsonl, no_stream are read)."""
        from llamavis.cli.output import writers as outputs

        self.task, self.single, self.sidecars = task, single, sidecars
        self.live: Any = None
        self.progress_bar: Progress | None = None
        self.show_progress = (not single and is_tty(sys.stderr)
                              and os.environ.get("TERM") != "dumb")
        # Results on the terminal that shows the bar go above the bar, never through it.
        shared = self.show_progress and is_tty(sys.stdout)
        self.stdout = cast("IO[str]", AboveBar(sys.stdout, self)) if shared else sys.stdout
        self.quiet_stdout = bool(sidecars) and not (opts.json_out or opts.jsonl)
        if opts.jsonl:
            self.writer: Any = outputs.JsonlWriter(self.stdout)
        elif opts.json_out:
            self.writer = outputs.JsonArrayWriter(self.stdout, single=single)
        elif not single:
            self.writer = outputs.TsvWriter(self.stdout)
        else:
            self.writer = None
        self.stream_live = (single and self.writer is None and not opts.no_stream
                            and is_tty(self.stdout) and not self.quiet_stdout)

    def live_stream(self) -> Any:
        """The live view of a single answer on a terminal (LiveAnswer or PlainAnswer), or None."""
        if not self.stream_live:
            return None
        from llamavis.cli.output.live import LiveAnswer, PlainAnswer

        if fancy(self.stdout):
            self.live = LiveAnswer(console(self.stdout), self.task)
        else:
            self.live = PlainAnswer(self.stdout)
        return self.live

    def write(self, result: Result) -> None:
        if result.error is not None:
            error_line(result.image, result.error)
        elif self.sidecars is not None:
            self.sidecars.write(result)
        if self.quiet_stdout:
            return
        if self.writer is not None:
            self.writer.write(result)
        elif result.error is None:
            self._print_single(result)

    def _print_single(self, result: Result) -> None:
        if self.live is not None and self.live.streamed:
            return  # already on the screen
        if fancy(self.stdout):
            console(self.stdout).print(answer_renderable(self.task, result.output))
            return
        from llamavis.cli.output.writers import answer_text

        self.stdout.write(safe_text(answer_text(result)) + "\n")
        self.stdout.flush()

    def progress(self, event: Any) -> None:
        if not self.show_progress:
            return
        if self.progress_bar is None:
            self.progress_bar = Progress(event.total)
        self.progress_bar.update(event)

    def close(self) -> None:
        if self.writer is not None and hasattr(self.writer, "close"):
            self.writer.close()
            self.writer = None
        if self.progress_bar is not None:
            self.progress_bar.stop()
            self.progress_bar = None

    def summary(self, summary: Any, *, show_usage: bool) -> None:
        if not (show_usage or self.show_progress):
            return
        usage = summary.usage
        cost = cost_text(summary)
        _err(
            f"llamavis: {summary.succeeded} succeeded, {summary.failed} failed, "
            f"{summary.cached} cached · {usage.prompt_tokens:,} in + {usage.completion_tokens:,} "
            f"out tokens · {cost} · {summary.elapsed_s:.1f} s"
        )


def cost_text(summary: Any) -> str:
    """A run's spend for the summary line: answers from the cache cost nothing, so a run
    that spent no token and took answers from the cache cost $0, not "cost unknown"."""
    usage = summary.usage
    if usage.cost_usd is not None:
        return f"${usage.cost_usd:.6f}"
    if summary.cached and not (usage.prompt_tokens or usage.completion_tokens):
        return f"${0:.6f}"
    return "cost unknown"


class AboveBar:
    """stdout on the terminal that shows the progress bar: each line goes above the bar."""

    def __init__(self, stream: Any, sink: ResultSink) -> None:
        self.stream, self.sink, self.pending = stream, sink, ""

    def write(self, text: str) -> int:
        self.pending += text
        lines, sep, self.pending = self.pending.rpartition("\n")
        if sep:
            bar = self.sink.progress_bar
            if bar is None:
                self.stream.write(lines + sep)
            else:
                bar.above(self.stream, lines + sep)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return is_tty(self.stream)

    def fileno(self) -> int:
        return int(self.stream.fileno())


class Progress:
    """A rich progress bar on stderr: done/total, rate, ETA, failures."""

    def __init__(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            SpinnerColumn(), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("[red]{task.fields[failed]}"),
            console=Console(file=sys.stderr), transient=False, redirect_stdout=False,
            auto_refresh=False,  # redrawn by our own thread, under our lock: see above()
        )
        self.task_id = self.bar.add_task("images", total=total, rate="", failed="")
        self._drawing = threading.Lock()
        self._stopped = threading.Event()
        self._redraws = threading.Thread(target=self._redraw, name="progress", daemon=True)
        self.bar.start()
        self._redraws.start()

    def _redraw(self) -> None:
        """Rich's own redraw thread would hold a lock that is private to rich: this one
        holds ours, so that above() can keep a redraw from landing mid-line."""
        while not self._stopped.wait(0.1):
            with self._drawing:
                self.bar.refresh()

    def update(self, event: Any) -> None:
        rate = event.done / event.elapsed if event.elapsed > 0 else 0.0
        failed = f"{event.failed} failed" if event.failed else ""
        self.bar.update(self.task_id, completed=event.done, total=event.total,
                        rate=f"{rate:.1f} img/s", failed=failed)

    def above(self, stream: Any, text: str) -> None:
        """Write whole lines to another stream on the same terminal, above the bar."""
        with self._drawing:  # no redraw lands mid-line
            self.bar.console.file.write("\r\x1b[2K")  # the bar is one line: clear it
            self.bar.console.file.flush()
            stream.write(text)
            stream.flush()
            self.bar.refresh()

    def stop(self) -> None:
        self._stopped.set()
        self._redraws.join()
        self.bar.stop()
