"""A task's answer format as constrained-decoding fields, in vLLM's request vocabulary.

classify sends ``guided_choice`` (the classes themselves); multi-classify sends a
``guided_regex`` for the JSON array its prompt asks for, drawn only from the classes;
structured needs nothing here: its schema already travels as ``response_format``. Only wires
whose ProviderSpec says ``guided`` get these fields (backends/payload.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

# The characters a regex gives a meaning to, in both Python's `re` and Rust's `regex` (which
# llguidance and vLLM's back-ends use); escaping any of them is valid in both.
_META = set("\\.+*?()|[]{}^$#&-~")


def guided_fields(spec: Any) -> dict[str, Any] | None:
    """{"guided_choice": [...]} or {"guided_regex": ...} for a class task's OutputSpec, else None."""
    from llamavis.tasks.answers import ClassSpec, MultiClassSpec

    if isinstance(spec, ClassSpec):
        return {"guided_choice": list(spec.classes)}
    if isinstance(spec, MultiClassSpec):
        return {"guided_regex": class_list_regex(spec.classes)}
    return None


def class_list_regex(classes: Sequence[str]) -> str:
    """A JSON array of at most len(classes) of the class names ('[]' for none), as a regex.

    Bounded so that even a model that repeats itself ends inside --max-tokens; the order
    is the model's, and duplicates are dropped when the answer is read.
    """
    names = "|".join(escape(json.dumps(c, ensure_ascii=False)) for c in classes)
    item = f"(?:{names})"
    more = f"(?:, {item}){{0,{len(classes) - 1}}}" if len(classes) > 1 else ""
    return rf"\[(?:{item}{more})?\]"


def escape(text: str) -> str:
    """``text`` as a regex matching itself literally."""
    return "".join(f"\\{ch}" if ch in _META else ch for ch in text)
