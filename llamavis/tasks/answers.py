"""Turn whatever the model says into a valid answer or an explicit error, at the least cost.

A task's ``OutputSpec`` checks one reply; ``resolve`` runs the re-ask ladder around it::

    reply ──check──► ok ─────────────────────────────► Resolution
      │              refused ────────────────────────► RefusedError
      │              malformed (no JSON to be read) ─► text-only re-ask: the reply + the
      │                                                 schema, no image (cheap)
      │              wrong content ──────────────────► re-ask with the image: the original
      │                                                 messages + the reply + what was wrong
      └── out of re-asks (max_retries) ──────────────► InvalidOutputError

Local repair (fences, prose, single quotes, trailing commas, an object whose closing brackets
are missing) costs no request. A reply cut off at the token limit (finish_reason "length")
that needs repair, or any object cut off inside a string or after a key, is never completed
locally for a schema: it is re-asked with the image, since the missing part can only come from
the image. Text answers that were cut off are kept and flagged ``truncated``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llamavis.errors import (
    InvalidOutputError,
    LlamavisError,
    RefusedError,
    UsageError,
)
from llamavis.tasks.checks import Check, OutputSpec, detect_refusal, snippet
from llamavis.tasks.labels import match_class, parse_confidence
from llamavis.tasks.output_specs import ClassSpec, MultiClassSpec, SchemaSpec, TextSpec
from llamavis.tasks.repair import extract_json
from llamavis.types import Completion, JSONObject, Usage

__all__ = [  # the specs live in tasks/output_specs.py, the verdict in tasks/checks.py
    "Check", "ClassSpec", "MultiClassSpec", "OutputSpec", "Resolution", "SchemaSpec", "TextSpec",
    "detect_refusal", "extract_json", "match_class", "parse_confidence", "resolve",
]


@dataclass
class Resolution:
    """The accepted answer, with the cost of getting it."""

    value: Any
    raw: str  # the model's last text
    usage: Usage
    attempts: int  # requests sent: re-asks and transient-failure retries included
    confidence: float | None = None
    truncated: bool = False  # the last answer stopped at the token limit (text tasks only)
    repaired: bool = False  # the value came from local repair of the last text


def _reask(messages: list[JSONObject], text: str, spec: OutputSpec, check: Check) -> list[JSONObject]:
    """The next request: text-only for malformed JSON, else the original turn plus feedback."""
    if check.malformed:
        return [{"role": "user", "content": [
            {"type": "text", "text": spec.repair_prompt(text, check)}]}]
    return [*messages,
            {"role": "assistant", "content": text if text.strip() else "(no answer)"},
            {"role": "user", "content": [
                {"type": "text", "text": spec.feedback_prompt(text, check)}]}]


def _charge(exc: LlamavisError, attempts: int, usage: Usage) -> None:
    """A failed request still counts: the answers given before it were paid for, and what
    a content filter cut short (the error's own usage) too."""
    exc.attempts = attempts
    exc.usage = usage + exc.usage if isinstance(exc.usage, Usage) else usage


async def resolve(
    ask: Callable[[list[JSONObject]], Awaitable[Completion]],
    messages: list[JSONObject],
    spec: OutputSpec,
    *,
    max_retries: int,
    on_retry: Callable[[int, Check], None] | None = None,
) -> Resolution:
    """Ask, check, and re-ask at most ``max_retries`` times; a valid answer or an error.

    This is the one place attempts and usage are counted: the Resolution carries them, and
    so does any error raised (``attempts``: every request sent, the failed ones and the
    client's retries included; ``usage``: every answer paid for).
    """
    if max_retries < 0:
        raise UsageError("--max-retries must be 0 or more")
    usage, attempts, sent, request = Usage(), 0, 0, messages
    while True:
        try:
            completion = await ask(request)
        except LlamavisError as exc:
            _charge(exc, sent + max(1, exc.requests), usage)
            raise
        attempts += 1  # answers: what --max-retries bounds
        sent += max(1, completion.requests)
        usage = usage + (completion.usage or Usage())
        text = completion.text or ""
        truncated = completion.finish_reason == "length"
        check = spec.check(text, truncated=truncated)
        if check.ok:
            return Resolution(check.value, text, usage, sent, check.confidence,
                              truncated, check.repaired)
        if check.refused:
            raise RefusedError(f"the model declined to answer: {snippet(text)}", raw=text,
                               attempts=sent, usage=usage,
                               hint="rephrase the request, or try another model or provider")
        if attempts > max_retries:
            plural = "s" if attempts != 1 else ""
            raise InvalidOutputError(
                f"no valid answer after {attempts} attempt{plural}: {'; '.join(check.errors[:3])}",
                raw=text, errors=check.errors, attempts=sent, usage=usage,
                hint="raise --max-retries, simplify the classes or schema, or try -m 90b")
        if on_retry is not None:
            on_retry(attempts, check)
        request = _reask(messages, text, spec, check)
