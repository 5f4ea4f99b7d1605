"""Terminal helpers at the bottom of the CLI's output layer: text made safe to print,
terminal detection, and the rich renderable of one answer.

``render`` (results and notes) and ``live`` (one answer streaming) both build on this
module and it imports neither, so neither imports the other back. Rich is imported only
inside ``console`` and ``answer_renderable``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from llamavis.tasks import specs as taskspecs

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(text: str) -> str:
    """Escape control characters (a model can emit ESC sequences) but keep newlines and tabs."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def one_line(text: str) -> str:
    """safe_text for a line of stderr: newlines too are escaped (a file name may hold one)."""
    return safe_text(text).replace("\n", "\\n")  # safe_text already took \r


def is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def fancy(stream: Any) -> bool:
    """Rich rendering only on a real terminal, without NO_COLOR or TERM=dumb."""
    # NO_COLOR counts when set and not empty (no-color.org), as rich reads it too
    return is_tty(stream) and os.environ.get("TERM") != "dumb" and not os.environ.get("NO_COLOR")


def console(stream: Any) -> Any:
    """A rich Console writing to ``stream``."""
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=False)


def answer_renderable(task: str, output: Any) -> Any:
    """A rich renderable for one answer: Markdown prose, JSON for objects and lists.

    Whether a text answer is Markdown is the task's ``TaskSpec.render``.
    """
    if isinstance(output, (dict, list)):
        from rich.json import JSON

        return JSON(json.dumps(output, ensure_ascii=False))
    text = safe_text(str(output))
    spec = taskspecs.find(task)
    if spec is not None and spec.render == "markdown":
        from rich.markdown import Markdown

        return Markdown(text)
    from rich.text import Text

    return Text(text)
