"""A labels file (CSV or JSONL keyed by ``file_name``) and its pairing with the images.

Which column holds the gold depends on the task: ``label`` (classify), ``labels``
(multi-classify: ``;``-separated in CSV, a list in JSONL), ``text`` (ocr, and caption's
references), ``answer`` with ``question`` (vqa), and for structured every column besides
``file_name``, one per field. ``file_name`` is relative to the image folder given.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from llamavis.errors import UsageError

GOLD_COLUMN = {"classify": "label", "multi-classify": "labels", "ocr": "text",
               "caption": "text", "detailed-caption": "text", "vqa": "answer"}


@dataclass(frozen=True)
class Gold:
    """One labelled image: its key (``file_name``), the gold answer, and vqa's question."""

    key: str
    value: Any
    question: str | None = None


@dataclass
class Pairing:
    """The images that have a row, and one line per row or image that has no partner."""

    items: list[tuple[str, str, Gold]] = field(default_factory=list)  # (key, source, gold)
    problems: list[str] = field(default_factory=list)
    rows_without_image: int = 0
    images_without_row: int = 0


def read_labels(path: str | Path, task: str) -> list[Gold]:
    """Every row of ``path`` as Gold for ``task``; UsageError naming the file when it is
    missing, unreadable or lacks the column the task needs."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read labels file {path}: {exc}") from None
    rows = _jsonl_rows(path, text) if _is_jsonl(path, text) else _csv_rows(path, text)
    return [_gold(path, n, row, task) for n, row in rows]


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    return path.suffix.lower() != ".csv" and text.lstrip().startswith("{")


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"labels file {path} line {n} is not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise UsageError(f"labels file {path} line {n} is not a JSON object")
        rows.append((n, row))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        reader = csv.DictReader(text.splitlines())
        return [(n, dict(row)) for n, row in enumerate(reader, 2)]
    except csv.Error as exc:
        raise UsageError(f"labels file {path} is not readable CSV: {exc}") from None


def _gold(path: Path, n: int, row: dict[str, Any], task: str) -> Gold:
    name = row.get("file_name")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"labels file {path} line {n} has no file_name")
    key = normalise_key(name)
    question = row.get("question") or None
    if task == "structured":
        fields = {k: v for k, v in row.items() if k not in ("file_name", "question") and k}
        return Gold(key, fields)
    column = GOLD_COLUMN.get(task)
    if column is None:
        raise UsageError(f"eval has no metric for {task}", hint="eval takes classify, "
                         "multi-classify, ocr, vqa, structured or caption (with references)")
    if column not in row:
        raise UsageError(f"labels file {path} has no {column!r} column, which {task} needs")
    value = row[column]
    if task == "multi-classify" and isinstance(value, str):
        value = [v.strip() for v in value.split(";") if v.strip()]
    return Gold(key, value, question if isinstance(question, str) else None)


def normalise_key(name: str) -> str:
    """A file name as labels spell it: forward slashes, no leading ``./``."""
    return str(PurePosixPath(name.strip().replace("\\", "/")))


def keys_of(source: str, roots: Sequence[str]) -> list[str]:
    """The names a labels row may give an image: relative to a folder given, as given, bare."""
    out = []
    for root in roots:
        try:
            rel = os.path.relpath(source, root)
        except ValueError:  # another drive
            continue
        if not rel.startswith(".."):
            out.append(normalise_key(rel))
    return [*out, normalise_key(source), Path(source).name]


def pair(labels: Iterable[Gold], sources: Iterable[str], roots: Sequence[str],
         labels_name: str = "labels") -> Pairing:
    """Pair rows with images by ``file_name``; every row or image left alone is one line."""
    by_key: dict[str, Gold] = {}
    for gold in labels:
        by_key.setdefault(gold.key, gold)
    out, used = Pairing(), set()
    for source in sources:
        key = next((k for k in keys_of(source, roots) if k in by_key), None)
        if key is None or key in used:
            out.images_without_row += 1
            out.problems.append(f"{source}: no row in {labels_name}")
            continue
        used.add(key)
        out.items.append((key, source, by_key[key]))
    for key in by_key:
        if key not in used:
            out.rows_without_image += 1
            out.problems.append(f"{labels_name}: {key}: no such image among the inputs")
    return out
