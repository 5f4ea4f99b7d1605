"""One manifest for a whole dataset (``--manifest captions.csv`` or ``.jsonl``).

One row per image, ``file_name,text``, as Hugging Face ``imagefolder`` (its
``metadata.csv``/``metadata.jsonl``) and OneTrainer read it. ``file_name`` is the image's
path relative to the manifest's folder, with ``/``. Rows are appended (and flushed) as
results finish; an existing manifest is read first and the images it already lists are
not asked again, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import IO

from llamavis.dataset.captions import caption_lines
from llamavis.dataset.names import is_local, split_page
from llamavis.errors import UsageError
from llamavis.types import Result

FIELDS = ("file_name", "text")


class Manifest:
    """Appends ``file_name,text`` rows; see the module docstring."""

    def __init__(self, path: Path, *, prefix: str = "", suffix: str = "") -> None:
        self.path = Path(path)
        self.kind = self.path.suffix.lower().lstrip(".")
        if self.kind not in ("csv", "jsonl"):
            raise UsageError(f"--manifest {path}: the name must end in .csv or .jsonl")
        self.prefix, self.suffix = prefix, suffix
        self.root = os.path.abspath(self.path.parent)
        self.listed: set[str] = set()
        self._fh: IO[str] | None = None

    def open(self, *, read_only: bool = False) -> None:
        """Read the rows already there and open for appending; UsageError if it cannot be.

        Called before any request: an answer that cannot be kept must not be paid for.
        ``read_only`` (a dry run) reads the rows and creates nothing."""
        try:
            if self.path.exists():
                self.listed = set(self._read_names())
            if read_only:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"--manifest {self.path}: cannot use it ({reason})") from None
        if self._fh.tell() == 0 and self.kind == "csv":
            self._emit(",".join(FIELDS) + "\r\n")

    def _read_names(self) -> list[str]:
        text = self.path.read_text(encoding="utf-8")
        if self.kind == "jsonl":
            rows = []
            for line in text.splitlines():
                try:
                    rows.append(json.loads(line)["file_name"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by an interrupt: that image is asked again
            return rows
        reader = csv.DictReader(io.StringIO(text))
        if text and (reader.fieldnames or [])[:1] != ["file_name"]:
            raise ValueError("it is not a manifest: its first column is not file_name")
        return [row["file_name"] for row in reader]

    def file_name(self, image: str) -> str:
        """The row's file_name: the path relative to the manifest's folder (a page: #page=N)."""
        if not is_local(image):
            return image
        path, page = split_page(image)
        rel = os.path.relpath(os.path.abspath(path), self.root).replace(os.sep, "/")
        return rel if page is None else f"{rel}#page={page}"

    def done(self, image: str) -> bool:
        return self.file_name(image) in self.listed

    def write(self, result: Result) -> bool:
        """Append the row of a successful result (a failed one has no row)."""
        if not result.ok:
            return True
        name = self.file_name(result.image)
        if name in self.listed:  # asked again (--sidecar-mode overwrite): the first row stands
            return True
        text = "\n".join(caption_lines(result, self.prefix, self.suffix))
        if self.kind == "jsonl":
            line = json.dumps({"file_name": name, "text": text}, ensure_ascii=False) + "\n"
        else:
            buf = io.StringIO()
            csv.writer(buf).writerow([name, text])
            line = buf.getvalue()
        self._emit(line)
        self.listed.add(name)
        return True

    def _emit(self, line: str) -> None:
        assert self._fh is not None, "Manifest.open() first"
        self._fh.write(line)  # one write per row: an interrupt never leaves half a row
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
