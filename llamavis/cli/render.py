"""What a person sees: results on stdout, progress and notes on stderr.

On a terminal the single answer streams live as Markdown (rich); piped, stdout
gets plain text and nothing else. Rich is imported only when a terminal needs it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from ..types import Result

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(text: str) -> str:
    """Escape control characters (a model can emit ESC sequences) but keep newlines and tabs."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def fancy(stream: Any) -> bool:
    """Rich rendering only on a real terminal, without NO_COLOR or TERM=dumb."""
    return is_tty(stream) and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ


def _err(line: str) -> None:
    sys.stderr.write(safe_text(line) + "\n")
    sys.stderr.flush()


def note(message: str) -> None:
    _err(f"llamavis: {message}")


def note_skip(path: str, reason: str) -> None:
    note(f"skipping {path}: {reason}")


def error_line(image: str, error: dict[str, str]) -> None:
    _err(f"llamavis: {image}: {error.get('kind')}: {error.get('message')}")


def debug_line(message: str) -> None:
    _err(f"[debug] {message}")


def _console(stream: Any) -> Any:
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=False)


def answer_renderable(task: str, output: Any) -> Any:
    """A rich renderable for one answer: Markdown prose, JSON for objects and lists."""
    if isinstance(output, (dict, list)):
        from rich.json import JSON

        return JSON(json.dumps(output, ensure_ascii=False))
    text = safe_text(str(output))
    if task in ("caption", "detailed-caption", "vqa", "prompt"):
        from rich.markdown import Markdown

        return Markdown(text)
    from rich.text import Text

    return Text(text)


class LiveAnswer:
    """Streams one answer to the terminal: a spinner, then Markdown that grows in place.

    Finished paragraphs are printed for good above the live area, so an answer
    longer than the screen neither flickers nor repeats lines.
    """

    def __init__(self, console: Any, task: str) -> None:
        self.console = console
        self.task = task
        self.text = ""
        self.printed = 0  # chars of self.text already printed for good
        self.live: Any = None
        self.streamed = False

    def __enter__(self) -> LiveAnswer:
        from rich.live import Live
        from rich.spinner import Spinner

        self.live = Live(Spinner("dots", text="asking Llama 3.2 Vision…"), console=self.console,
                         transient=True, refresh_per_second=12, vertical_overflow="ellipsis")
        self.live.__enter__()
        return self

    def delta(self, piece: str) -> None:
        self.streamed = True
        self.text += piece
        tail = self.text[self.printed:]
        cut = tail.rfind("\n\n")
        if cut > 0 and tail[:cut].count("```") % 2 == 0:
            self.live.console.print(answer_renderable(self.task, tail[:cut]))
            self.printed += cut + 2
        self.live.update(answer_renderable(self.task, self.text[self.printed:]))

    def reset(self) -> None:
        """A retried request starts over: forget the partial text not yet printed."""
        self.text = self.text[: self.printed]

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)
        rest = self.text[self.printed:]
        if rest.strip() and exc[0] is None:
            self.console.print(answer_renderable(self.task, rest))


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

    def __exit__(self, *exc: object) -> None:
        if self.streamed and not self.at_line_start:
            self.stream.write("\n")
            self.stream.flush()


class ResultSink:
    """Writes each finished result where the options say, as soon as it finishes."""

    def __init__(self, *, task: str, single: bool, opts: dict[str, Any], sidecars: Any) -> None:
        from .. import outputs

        self.task, self.single, self.sidecars = task, single, sidecars
        self.stdout = sys.stdout
        self.live: LiveAnswer | PlainAnswer | None = None
        self.progress_bar: Any = None
        self.quiet_stdout = bool(sidecars) and not (opts.get("json_out") or opts.get("jsonl"))
        if opts.get("jsonl"):
            self.writer: Any = outputs.JsonlWriter(self.stdout)
        elif opts.get("json_out"):
            self.writer = outputs.JsonArrayWriter(self.stdout, single=single)
        elif not single:
            self.writer = outputs.TsvWriter(self.stdout)
        else:
            self.writer = None
        self.stream_live = (single and self.writer is None and not opts.get("no_stream")
                            and is_tty(self.stdout) and not self.quiet_stdout)
        self.show_progress = (not single and is_tty(sys.stderr)
                              and os.environ.get("TERM") != "dumb")

    def live_stream(self) -> LiveAnswer | PlainAnswer | None:
        if not self.stream_live:
            return None
        if fancy(self.stdout):
            self.live = LiveAnswer(_console(self.stdout), self.task)
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
            _console(self.stdout).print(answer_renderable(self.task, result.output))
            return
        from ..outputs import answer_text

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
        cost = "cost unknown" if usage.cost_usd is None else f"${usage.cost_usd:.6f}"
        _err(
            f"llamavis: {summary.succeeded} succeeded, {summary.failed} failed, {summary.cached} cached · "
            f"{usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion tokens · "
            f"{cost} · {summary.elapsed_s:.1f} s"
        )


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
            console=Console(file=sys.stderr), transient=False,
        )
        self.task_id = self.bar.add_task("images", total=total, rate="", failed="")
        self.bar.start()

    def update(self, event: Any) -> None:
        rate = event.done / event.elapsed if event.elapsed > 0 else 0.0
        failed = f"{event.failed} failed" if event.failed else ""
        self.bar.update(self.task_id, completed=event.done, total=event.total,
                        rate=f"{rate:.1f} img/s", failed=failed)

    def stop(self) -> None:
        self.bar.stop()
