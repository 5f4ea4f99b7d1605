"""A workflow's runtime parameters, as Roboflow passes them: ``--input NAME=VALUE`` (repeatable)
and ``--inputs FILE.json`` (one JSON object of all of them; an ``--input`` wins over it).

A value from ``--input`` is text; where a list is wanted (``classes``) it may be a JSON list
(``'["cat","dog"]'``) or a comma list (``cat,dog``), read by ``parse_classes``. A
value from the file keeps its JSON type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamavis.errors import UsageError


def parse_inputs(pairs: list[str] | None, file: str | None = None) -> dict[str, Any]:
    """{NAME: VALUE}: the file's parameters, then each ``--input`` (a later one wins)."""
    out: dict[str, Any] = read_file(file) if file else {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip().removeprefix("$inputs.")
        if not sep or not name:
            raise UsageError("--input takes NAME=VALUE, e.g. --input prompt='What is shown?'")
        out[name] = value
    return out


def read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--inputs {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--inputs {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--inputs {path} is not JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"--inputs {path} must be one JSON object of NAME: VALUE")
    return {str(k).removeprefix("$inputs."): v for k, v in doc.items()}


def parse_classes(value: Any, step: str) -> list[str] | None:
    """A JSON list, or (from --input or written as text) a comma list or JSON list."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        value = json_or_none(text) if text.startswith("[") else None
        if value is None:
            value = [c.strip() for c in text.split(",") if c.strip()]
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise UsageError(f"step {step!r}: classes must be a list of names (a comma list or "
                         "a JSON list when given with --input)")
    return list(dict.fromkeys(c.strip() for c in value))  # order kept, duplicates once


def json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
