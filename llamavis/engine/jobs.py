"""One request for the local engine, read from the OpenAI chat-completions payload llamavis builds.

Pure Python (no torch): the client turns each payload into a ``Job`` on the event loop; the
batcher's worker thread answers it. Grammars are named the way vLLM (<= 0.10.2) took them in a
request body: ``guided_choice``, ``guided_regex``, ``guided_grammar``, ``guided_json``; an
OpenAI ``response_format`` with a schema (or ``json_object``) constrains the answer as well.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from llamavis.errors import ImageError, ProviderError, UsageError
from llamavis.types import Completion

DEFAULT_MAX_TOKENS = 1024
Grammar = tuple[str, str]  # (llguidance.grammar_from format, text)


@dataclass
class Job:
    """A request waiting for (or in) a batch; ``future`` gets its Completion or error."""

    messages: list[dict[str, Any]]  # Hugging Face chat format: {"type": "image"} parts
    images: list[bytes]  # image bytes, in the order of the image parts
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None  # None: the model's generation_config
    top_p: float | None = None
    seed: int | None = None
    grammar: Grammar | None = None
    on_delta: Callable[[str], None] | None = None  # called from the worker thread
    future: Future[Completion] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[Any, ...]:
        """Jobs batch together only when one ``generate`` call can serve them all alike."""
        return (self.temperature, self.top_p, self.seed, len(self.images))

    def finish(self, result: Completion | BaseException) -> None:
        """Resolve the future once (a cancelled or already failed job is left alone)."""
        if self.future.done():
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)


def job_from_payload(payload: dict[str, Any]) -> Job:
    """A Job from an OpenAI-shape chat-completions body (image parts as data: URLs)."""
    messages, images = [], []
    for message in payload.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image_url":
                    images.append(_image_bytes(part))
                    parts.append({"type": "image"})
                elif part.get("type") == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
            content = parts
        messages.append({"role": message.get("role", "user"), "content": content})
    if not messages:
        raise UsageError("the request has no messages")
    temperature = payload.get("temperature")
    return Job(
        messages, images,
        max_tokens=int(payload.get("max_tokens") or DEFAULT_MAX_TOKENS),
        temperature=None if temperature is None else float(temperature),
        top_p=payload.get("top_p"), seed=payload.get("seed"), grammar=grammar_of(payload),
    )


def _image_bytes(part: dict[str, Any]) -> bytes:
    url = (part.get("image_url") or {}).get("url", "")
    head, sep, data = url.partition(";base64,")
    if not (url.startswith("data:") and sep):
        raise ProviderError("-P transformers takes images as data: URLs", provider="transformers")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"the image data is not valid base64: {exc}") from None


def grammar_of(payload: dict[str, Any]) -> Grammar | None:
    """The constraint a request carries, as (format, text) for llguidance; None if free text."""
    if payload.get("guided_choice"):
        return "choice", json.dumps([str(c) for c in payload["guided_choice"]])
    if payload.get("guided_regex"):
        return "regex", str(payload["guided_regex"])
    if payload.get("guided_grammar"):
        return "grammar", str(payload["guided_grammar"])
    schema = payload.get("guided_json")
    response_format = payload.get("response_format") or {}
    if schema is None and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    if schema is None and response_format.get("type") == "json_object":
        schema = {"type": "object"}
    if schema is None:
        return None
    return "json", schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)
