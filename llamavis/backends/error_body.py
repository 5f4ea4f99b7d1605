"""What the many provider error-body shapes have in common (see backends/errors.py for
the shapes): the message on one line, the code, the kind words and the metadata."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ErrorInfo", "decode_body", "one_line"]

_MAX_MESSAGE = 300
_RATE_LIMIT_WORDS = re.compile(r"rate[ _-]?limit|too[ _]many[ _]requests", re.I)


def one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Collapse whitespace and cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class ErrorInfo:
    """What the many body shapes have in common: message, code, metadata."""

    def __init__(self, data: Any) -> None:
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(data, dict) and data.get("object") == "error":
            err = data  # old vLLM: flat
        errors = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(err, dict) and isinstance(errors, list) and errors:
            err = errors[0]  # Cloudflare's API envelope
        self.err: dict[str, Any] = err if isinstance(err, dict) else {}
        meta = self.err.get("metadata")
        self.meta: dict[str, Any] = meta if isinstance(meta, dict) else {}
        self.message = one_line(self._message(data)) if data is not None else ""
        avail = self.err.get("availability")
        self.code = (avail.get("code") if isinstance(avail, dict) else None) or self.err.get("code")
        top = data if isinstance(data, dict) else {}
        self.kind = " ".join(
            str(v)
            for v in (
                self.code,
                self.err.get("type"),
                self.err.get("error_type"),
                top.get("error_type"),
                top.get("reason"),
                self.meta.get("error_type"),
            )
            if v
        )
        self.rate_limited = bool(_RATE_LIMIT_WORDS.search(f"{self.kind} {self.message}"))
        self.moderation = bool(self.meta.get("reasons") or self.meta.get("flagged_input")) or bool(
            re.search(r"moderat|flagged|guardrail", self.kind, re.I)
        )
        self.flagged = self.meta.get("flagged_input")
        headers = self.meta.get("headers")
        self.metadata_headers = headers if isinstance(headers, dict) else None
        self.retry_after = self.err.get("retry_after", self.meta.get("retry_after"))

    def _message(self, data: Any) -> str:
        text = _message_of(data) or _message_of(self.err)
        upstream = _message_of(_maybe_json(self.meta.get("raw")))
        name = self.meta.get("provider_name")
        if upstream in text:
            upstream = ""
        extra = ": ".join(str(part) for part in (name, upstream) if part)
        return f"{text} ({extra})" if extra and extra not in text else text


def _message_of(obj: Any, depth: int = 0) -> str:
    """The human message inside any of the body shapes, or ""."""
    if depth > 4 or obj is None:
        return ""
    if isinstance(obj, str):
        return _text_message(obj)
    if isinstance(obj, list):
        return "; ".join(filter(None, (_message_of(item, depth + 1) for item in obj)))
    if not isinstance(obj, dict):
        return str(obj)
    for key in ("message", "error", "detail", "msg"):
        if key in obj and (found := _message_of(obj[key], depth + 1)):
            loc = obj.get("loc")
            if key == "msg" and isinstance(loc, list):  # FastAPI validation item
                return f"{'.'.join(map(str, loc))}: {found}"
            return found
    return ""


def _text_message(text: str) -> str:
    """Plain text as is; an HTML page reduced to its <title>."""
    stripped = text.strip()
    if stripped.startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", stripped, re.I | re.S)
        return title.group(1).strip() if title else ""
    return stripped


def decode_body(body: bytes | str | Mapping[str, Any] | None) -> Any:
    if isinstance(body, Mapping):
        return dict(body)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not body or not body.strip():
        return None
    return _maybe_json(body)


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
