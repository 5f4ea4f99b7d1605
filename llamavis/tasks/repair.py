"""Find the JSON in a model's reply, repairing it locally where that is safe.

The ladder, cheapest first: the whole reply as JSON; the body of a ```json fence; the longest
JSON value that decodes strictly somewhere in the prose; and only then json_repair on the
candidate (single quotes, trailing commas, unquoted keys, an object cut off before its end).
An object cut off inside a string or after a key's colon is reported as CUT: closing it would
keep a half-written value, so callers should not accept it as a complete answer.
Plain prose never becomes an object: a reply without ``{`` or ``[`` holds no JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON|javascript|js)?[ \t]*\r?\n?(.*?)(?:```|\Z)", re.S)
_MAX_STARTS = 64  # bracket positions tried by the prose scan; keeps worst cases linear-ish

STRICT, LOCATED, REPAIRED, CUT = "strict", "located", "repaired", "cut"


def _cut_mid_value(candidate: str) -> bool:
    """True when unbalanced JSON stops inside a string or right after a key's colon."""
    quote, escaped, depth, last = "", False, 0, ""
    for ch in candidate:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote, last = "", ch
            continue
        if ch in "\"'" and last in ("", "{", "[", ":", ","):
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if not ch.isspace():
            last = ch
    return depth > 0 and (bool(quote) or last == ":")


def _scan(text: str) -> Any:
    """The longest JSON object or array that decodes strictly inside ``text``, else None."""
    decoder = json.JSONDecoder()
    best, best_len, covered = None, 0, -1
    starts = [m.start() for m in re.finditer(r"[{\[]", text)][:_MAX_STARTS]
    for start in starts:
        if start < covered:
            continue  # inside a value already decoded
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, (dict, list)) and end - start > best_len:
            best, best_len, covered = value, end - start, end
    return best


def _repair(candidate: str) -> Any:
    """json_repair's best reading of ``candidate``, or None when it is not an object/array."""
    import json_repair

    try:
        value = json_repair.repair_json(candidate, return_objects=True)
    except Exception:  # json_repair is lenient but not guaranteed never to raise
        return None
    return value if isinstance(value, (dict, list)) else None


def locate_json(text: str) -> tuple[Any, str]:
    """(value, how): how is STRICT, LOCATED (fence/prose), REPAIRED or CUT; ValueError if none."""
    stripped = text.strip()
    if "{" not in stripped and "[" not in stripped:
        raise ValueError("the reply holds no JSON object")
    try:
        value = json.loads(stripped)
        if isinstance(value, (dict, list)):
            return value, STRICT
    except json.JSONDecodeError:
        pass
    fences = [m.group(1).strip() for m in _FENCE.finditer(stripped)]
    for body in fences:
        found = _scan(body)
        if found is not None:
            return found, LOCATED
    found = _scan(stripped)
    if found is not None:
        return found, LOCATED
    candidate = next((b for b in fences if "{" in b or "[" in b), stripped)
    brace = candidate.find("{")
    start = brace if brace >= 0 else candidate.find("[")
    candidate = candidate[max(start, 0):]
    repaired = _repair(candidate)
    if repaired is None:
        raise ValueError("the reply holds no JSON that can be read or repaired")
    return repaired, CUT if _cut_mid_value(candidate) else REPAIRED


def extract_json(text: str) -> tuple[Any, bool]:
    """(value, repaired) from a model's reply; ValueError when it holds no usable JSON."""
    value, how = locate_json(text)
    return value, how != STRICT
