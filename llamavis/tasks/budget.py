"""How many tokens a classification answer needs: derived from the classes, not fixed.

A class name is spelled back exactly, so the answer must hold the longest class
(``classify``) or every class at once (``multi-classify``: a JSON array of them). A token
is estimated at 3 bytes of UTF-8 (English words run ~4 characters a token; CJK about one
character a token), plus a margin for quotes, commas and a stray "Class:" prefix. The
template's own default stays the floor; ``--max-tokens`` still wins over both.
"""

from __future__ import annotations

from collections.abc import Sequence

MARGIN = 16  # a prefix, the brackets, a full stop: what a short answer adds around a class
PER_CLASS = 3  # a list item's quotes, comma and space


def estimate_tokens(text: str) -> int:
    """An upper-side token count for ``text`` (3 bytes of UTF-8 a token, rounded up)."""
    return -(-len(text.encode("utf-8")) // 3)


def answer_tokens(task: str, classes: Sequence[str] | None, floor: int) -> int:
    """max_tokens for ``task``: enough for its classes spelled out, at least ``floor``."""
    if not classes:
        return floor
    if task == "classify":
        need = max(estimate_tokens(c) for c in classes) + MARGIN
    elif task == "multi-classify":
        need = sum(estimate_tokens(c) + PER_CLASS for c in classes) + MARGIN
    else:
        return floor
    return max(floor, need)
