"""Answer text for the writers: JSON that is always one safe line, plain answer text,
and TSV field escaping."""

from __future__ import annotations

import json
import re
from typing import Any

from llamavis.types import Result

__all__ = ["answer_text", "dumps", "tsv_escape"]

_UNSAFE_JSON = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TSV_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNSAFE_TSV = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """JSON text with non-ASCII kept and every control character escaped."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def answer_text(result: Result) -> str:
    """The answer as plain text: lists joined with ", ", objects as compact JSON."""
    output = result.output
    if result.error is not None or output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, (list, tuple)):
        return ", ".join(item if isinstance(item, str) else dumps(item) for item in output)
    return dumps(output)


def tsv_escape(text: str) -> str:
    """Escape text for one TSV field: \\\\, \\n, \\t, \\r; other controls as \\xNN/\\uXXXX."""

    def one(m: re.Match[str]) -> str:
        ch = m.group()
        if ch in _TSV_ESCAPES:
            return _TSV_ESCAPES[ch]
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return _UNSAFE_TSV.sub(one, text)
