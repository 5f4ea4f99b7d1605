"""How long a provider asks us to wait: Retry-After (seconds or an HTTP date),
retry-after-ms, X-RateLimit-Reset, or a retry_after in the error body."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["retry_after_from"]


def retry_after_from(
    headers: Any,
    body_headers: Mapping[str, Any] | None = None,
    body_value: Any = None,
    *,
    now: float | None = None,
) -> float | None:
    """Seconds the server asks us to wait: Retry-After, retry-after-ms, X-RateLimit-Reset."""
    now = time.time() if now is None else now
    lookup = _lower_keys(headers) | _lower_keys(body_headers)
    if (ms := _number(lookup.get("retry-after-ms"))) is not None:
        return max(ms / 1000, 0.0)
    if "retry-after" in lookup:
        seconds = _number(lookup["retry-after"])
        if seconds is None:
            seconds = _http_date(lookup["retry-after"], now)
        if seconds is not None:
            return max(seconds, 0.0)
    if (reset := _number(lookup.get("x-ratelimit-reset"))) is not None:
        return max(_reset_delay(reset, now), 0.0)
    if (seconds := _number(body_value)) is not None:
        return max(seconds, 0.0)
    return None


def _lower_keys(headers: Any) -> dict[str, Any]:
    if not headers:
        return {}
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): v for k, v in items}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _http_date(value: Any, now: float) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(str(value)).timestamp() - now
    except (TypeError, ValueError, IndexError):
        return None



def _reset_delay(reset: float, now: float) -> float:
    """X-RateLimit-Reset: epoch milliseconds (OpenRouter), epoch seconds, or a delay in seconds."""
    if reset > 1e12:
        return reset / 1000 - now
    if reset > 1e9:
        return reset - now
    return reset
