"""Caption files beside each image, as kohya, OneTrainer and SimpleTuner read them.

``photo.jpg`` gets ``photo.txt`` in the same folder: UTF-8, one caption per line,
newline-terminated. ``mode`` says what happens when that file is already there:
``skip`` (the image is not asked at all: see ``done``), ``overwrite``, ``append`` (the
new lines after the old ones) or ``prepend``. ``prefix``/``suffix`` wrap every line
(trigger words such as ``"sks person, "``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from llamavis.dataset.names import caption_path, is_local
from llamavis.types import Result

MODES = ("skip", "overwrite", "append", "prepend")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it
OnError = Callable[[str, str], None]  # (image, message)


def caption_lines(result: Result, prefix: str = "", suffix: str = "") -> list[str]:
    """The result's captions, one line each (inner newlines folded), prefix and suffix on."""
    texts = result.captions if result.captions else [result_text(result)]
    return [f"{prefix}{' '.join(t.split())}{suffix}" for t in texts]


def result_text(result: Result) -> str:
    """The answer as text: a string as is, a list joined with ", ", else its JSON."""
    out = result.output
    if isinstance(out, str):
        return out
    if isinstance(out, (list, tuple)):
        return ", ".join(str(x) for x in out)
    import json

    return json.dumps(out, ensure_ascii=False)


class CaptionFiles:
    """Writes ``stem.txt`` beside each image (``--sidecar txt``); see the module docstring."""

    def __init__(self, *, mode: str = "skip", prefix: str = "", suffix: str = "",
                 on_error: OnError) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode, self.prefix, self.suffix, self.on_error = mode, prefix, suffix, on_error
        self._claimed: dict[Path, str] = {}  # caption file -> the image that wrote it this run

    def done(self, image: str) -> bool:
        """True when the image is not to be asked: skip mode and its caption file exists."""
        return self.mode == "skip" and is_local(image) and caption_path(image).exists()

    def write(self, result: Result) -> bool:
        """Write the caption file of a successful result; False (and one line said) if not."""
        if not result.ok:
            return True
        image = result.image
        if not is_local(image):
            self.on_error(image, "--sidecar txt writes beside image files only "
                          "(use --manifest or --output-dir for URLs and standard input)")
            return False
        path = caption_path(image)
        owner = self._claimed.setdefault(path, image)
        if owner != image:
            self.on_error(image, f"not writing {path}: this run wrote it for {owner}")
            return False
        try:
            self._write(path, caption_lines(result, self.prefix, self.suffix))
        except OSError as exc:
            self.on_error(image, f"cannot write {path} ({exc.strerror or exc}); the answer is "
                          "kept in the cache: run again once the folder is writable")
            return False
        return True

    def _write(self, path: Path, lines: list[str]) -> None:
        new = "\n".join(lines)
        old = ""
        if self.mode in ("append", "prepend") and path.exists():
            old = path.read_text(encoding="utf-8", errors="surrogateescape").strip("\n")
        if old:
            new = f"{old}\n{new}" if self.mode == "append" else f"{new}\n{old}"
        atomic_write_text(path, new + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename: never half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a caption is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
