"""Runners made of Runners: ``--captions N`` (llamavis.run.captions) and ``ocr --tiles``
(llamavis.run.tiled). ``compose`` wraps the Engine's ordinary Runner when the options
ask for either; both keep the Runner's face (run, cached, dry_run, cache, aclose)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llamavis.errors import UsageError
from llamavis.run.config import TaskConfig


def check(task_output: str, task: str, captions: int, tiles: str | int | None) -> None:
    """Usage errors up front: --tiles is for ocr, --captions N for a task answering text."""
    if tiles is not None and task != "ocr":
        raise UsageError(f"--tiles is for the ocr task, not {task}")
    if tiles is not None and tiles != "auto" and (not isinstance(tiles, int) or tiles < 1):
        raise UsageError(f"--tiles takes auto or a number of strips (1 or more), got {tiles!r}")
    if captions < 1:
        raise UsageError("--captions takes 1 or more")
    if captions > 1 and task_output != "text":
        raise UsageError(f"--captions N is for tasks that answer in text, not {task}")


def compose(cfg: TaskConfig, make: Callable[[TaskConfig], Any], *, captions: int = 1,
            tiles: str | int | None = None) -> Any:
    """``make(cfg)``'s Runner, wrapped as the options say."""
    check(cfg.task_spec.output, cfg.task, captions, tiles)
    if captions > 1:
        from llamavis.run.captions import MultiCaptionRunner

        return MultiCaptionRunner(cfg, captions, make)
    if tiles is not None:
        from llamavis.run.tiled import TiledRunner

        return TiledRunner(cfg, make(cfg), tiles)
    return make(cfg)
