"""One reply's verdict (``Check``), what a task accepts (``OutputSpec``), and refusals.

A refusal is a reply that is wholly the model declining ("I can't help with identifying
people"); a reply that declines and then answers anyway ("but here is...") is an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from llamavis.types import JSONObject

_SORRY = r"(?:(?:i'm|i am)\s+(?:so\s+|very\s+|really\s+)?sorry|sorry|i apologi[sz]e|apologies|unfortunately)"
_AS_AI = r"as an ai(?: language model| model| assistant)?"
_CANT = (r"(?:can't|cannot|can not|won't|will not|must decline to|(?:am|'m) (?:unable|not able|"
         r"not going|not allowed|not comfortable) to|(?:do not|don't) feel comfortable)")
_ACTS = (r"(?:help(?!\s+(?!with\b|you\b|identify\b)\w)|assist|provide|comply|fulfil|accommodate|"
         r"engage|create|generate|share|disclose|discuss|support (?:that|this|your)|"
         r"answer (?:that|this|your)|do (?:that|this)|(?:identify|recogni[sz]e|name) "
         r"(?:the |this |that |these |those |any |specific |real )?(?:people|persons?|individuals?|"
         r"faces?|who|him|her|them|anyone|someone|man|woman|celebrit))")
_REFUSAL = re.compile(
    rf"^\W*(?:{_SORRY}\W+(?:but\s+)?)?(?:{_AS_AI}\W+)?"
    rf"(?:i\s*{_CANT}\s+(?:\w+\s+){{0,2}}?{_ACTS}|i must decline|{_AS_AI},)", re.I)
_PIVOT = re.compile(r"\b(?:but|however)\b[^.]{0,40}?\bi(?: can| could|'d be happy|'m happy"
                    r"| am happy| will|'ll)\b(?!'t|not)|\bhere(?:'s| is| are)\b", re.I)
_REFUSAL_MAX_CHARS = 400
NO_FENCES = "no prose, no code fences"


def detect_refusal(text: str) -> bool:
    """True when the whole reply is the model declining ("I can't help with identifying...")."""
    text = text.strip().replace("\u2019", "'").replace("\u2018", "'")
    if not text or len(text) > _REFUSAL_MAX_CHARS or text.isupper():
        return False  # capitals are a sign or a shirt read out ("I WILL NOT SHARE MY FOOD")
    return bool(_REFUSAL.match(text)) and not _PIVOT.search(text)


def snippet(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "\u2026")


@dataclass
class Check:
    """The verdict on one reply."""

    ok: bool
    value: Any = None  # the validated output
    malformed: bool = False  # no JSON to be read: a cheap text-only re-ask can fix it
    refused: bool = False
    errors: list[str] = field(default_factory=list)
    confidence: float | None = None
    repaired: bool = False  # value came from local repair (fences, prose, quotes, ...)


def refused() -> Check:
    return Check(False, refused=True, errors=["the model declined to answer"])


class OutputSpec(Protocol):
    """What a task accepts as an answer, and how to ask again when a reply falls short."""

    wants_json: bool  # the backend may use response_format
    json_schema: JSONObject | None  # for constrained decoding (None for text and classes)

    def check(self, text: str, *, truncated: bool = False) -> Check: ...
    def repair_prompt(self, text: str, check: Check) -> str: ...
    def feedback_prompt(self, text: str, check: Check) -> str: ...
