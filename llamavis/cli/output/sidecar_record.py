"""What each sidecar in an ``--output-dir`` is the answer to, and writing inside it only.

A sidecar counts as "already done" only for the request that wrote it: the same image
bytes asked the same way (task, rendered prompt, provider, model, parameters: the
request's fingerprint, ``Runner.cache_key``). The fingerprints are kept in one file in the
output folder, ``.llamavis-sidecars.jsonl``: one JSON line ``{"sidecar": REL, "fingerprint":
HEX}`` appended after each sidecar is written (the last line for a sidecar wins). A
sidecar with no line (written by hand, by an older llamavis, or cut off between the two
writes) is not known to be this answer, so it is not taken as done.

Nothing is written outside the output folder: a sidecar whose folder inside it is a
symbolic link (or leads out of it) is refused, and the record file is opened with
``O_NOFOLLOW``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORD = ".llamavis-sidecars.jsonl"


class SidecarRecord:
    """The fingerprints of the sidecars under one output folder, read once, appended to."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._known: dict[str, str] | None = None

    def _rel(self, sidecar: Path) -> str:
        return Path(os.path.relpath(sidecar, self.out_dir)).as_posix()

    def get(self, sidecar: Path) -> str | None:
        """The fingerprint recorded for ``sidecar``, or None."""
        if self._known is None:
            self._known = self._read()
        return self._known.get(self._rel(sidecar))

    def put(self, sidecar: Path, fingerprint: str) -> None:
        """Record that ``sidecar`` now holds the answer to ``fingerprint`` (one appended line:
        concurrent runs into one folder interleave whole lines)."""
        rel = self._rel(sidecar)
        line = json.dumps({"sidecar": rel, "fingerprint": fingerprint}, ensure_ascii=False) + "\n"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.out_dir / RECORD, flags, 0o666)
        try:
            os.write(fd, line.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)
        if self._known is not None:
            self._known[rel] = fingerprint

    def _read(self) -> dict[str, str]:
        known: dict[str, str] = {}
        path = self.out_dir / RECORD
        if path.is_symlink():
            return known
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                        known[str(entry["sidecar"])] = str(entry["fingerprint"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash: that sidecar is unknown
        except FileNotFoundError:
            pass
        return known


def outside_reason(out_dir: Path, sidecar: Path) -> str | None:
    """Why writing ``sidecar`` would leave ``out_dir`` (a folder on the way is a symbolic
    link, or the path leads out), or None when it stays inside."""
    root = os.path.realpath(out_dir)
    rel = Path(os.path.relpath(sidecar, out_dir))
    if rel.parts and rel.parts[0] == os.pardir:
        return f"{sidecar} is outside --output-dir"
    here = Path(out_dir)
    for part in rel.parts[:-1]:
        here = here / part
        if here.is_symlink():
            return f"{here} is a symbolic link; llamavis writes nothing outside --output-dir"
    real = os.path.realpath(sidecar.parent) if sidecar.parent.exists() else root
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return f"{sidecar.parent} leads outside --output-dir"
    return None
