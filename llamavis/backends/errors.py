"""Provider error bodies -> llamavis exceptions, with the provider's own message on one line.

Body shapes understood (see ../shared/providers.md section 6):

- OpenRouter ``{"error": {"message", "code", "metadata": {"raw", "provider_name",
  "headers", "reasons", "flagged_input"}}}``; ``raw`` is JSON-in-a-string, text or an
  object. Newer: ``{"error": {"message", "error_type", "http_status", "availability"}}``.
- OpenAI style (vLLM >= 0.10.1, Ollama, llama.cpp, DeepInfra): ``{"error": {"message",
  "type", "code"}}``; old vLLM flat ``{"object": "error", "message", ...}``.
- TGI ``{"error": "...", "error_type": "validation"}``.
- FastAPI (DeepInfra native, transformers serve) ``{"detail": "..." | {"error": ...} | [...]}``.
- Cloudflare's API envelope ``{"result": null, "success": false, "errors": [{"code",
  "message"}]}`` (Workers AI: 5016 licence not accepted, 5007/3042 no such model).
- ``text/plain`` or HTML (transformers serve's bare "Internal Server Error", proxies).

An answer saying the route does not serve the model (OpenRouter's "No endpoints found
for ...", a retired id, a server's model-not-found) becomes ``ModelUnavailable``, whose
hint names the next step: ``llamavis doctor`` and the routes known to serve the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from llamavis.backends.error_body import ErrorInfo, decode_body, one_line
from llamavis.backends.retry_after import retry_after_from
from llamavis.errors import (
    AuthError,
    ConfigError,
    LlamavisError,
    ModelUnavailable,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RefusedError,
)

__all__ = ["RETRY_STATUSES", "dead_route_hint", "error_from_chunk", "error_from_response",
           "in_band_error", "one_line", "retry_after_from", "retryable_status"]

# Statuses worth another attempt; 501/505 and every other 4xx are permanent.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_AUTH_WORDS = re.compile(
    r"not authenticated|unauthori[sz]ed|authenticat|api[ _-]?key|invalid key|invalid token|"
    r"credential|no auth|user not found",
    re.I,
)
_NOT_AUTH_WORDS = re.compile(r"model[ _]access|access to (this|the) model|verif|region", re.I)
_MODEL_CODES = {"model_not_found", "no_endpoints", "model_deprecated", "free_variant_ended",
                "5007", "3042"}  # the last two: Workers AI "No such model", "invalid model"
_NOT_SERVED = re.compile(
    r"no endpoints found for|no such model|unknown model architecture|end of life"
    r"|function\b.{0,80}\bnot found for account"
    r"|model\b.{0,120}\b(not found|does not exist|not available|deprecated|decommissioned|retired"
    r"|no longer (available|supported|served))"
    r"|\b(deprecated|decommissioned|retired)\b.{0,60}\bmodel", re.I)
# OpenRouter's 404 when no endpoint honours the parameters sent (require_parameters):
# the model lives, response_format is the problem (tasks.Runner retries without it).
_PARAMETERS = re.compile(r"requested parameters|constraint_filtered|response_format", re.I)
_AGREEMENT_CODES = {"5016"}  # Workers AI: Meta's licence not yet accepted on the account


def error_from_response(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Any,
    provider: str,
    *,
    now: float | None = None,
) -> LlamavisError:
    """The exception for a non-2xx answer: class by status, message from the body."""
    data = decode_body(body)
    info = ErrorInfo(data)
    message = f"{provider} HTTP {status}: {info.message or _reason(status)}"
    retry_after = retry_after_from(headers, info.metadata_headers, info.retry_after, now=now)
    kw: dict[str, Any] = dict(status=status, provider=provider, body=data)
    if str(info.code) in _AGREEMENT_CODES:
        return ConfigError(message, hint=f"accept Meta's licence once: run `llamavis agree {provider}`")
    if _not_served(status, info):
        return ModelUnavailable(message, hint=dead_route_hint(provider), **kw)
    if status == 401 or (status == 403 and _is_auth(info)):
        return AuthError(message, hint=_key_hint(provider), status=status, provider=provider)
    if status == 403 and info.moderation:
        return RefusedError(
            message, raw=info.flagged, hint="the provider's moderation refused the input"
        )
    return _class_for(status, info)(
        message,
        hint=_hint(status, info, retry_after),
        retry_after=retry_after,
        retryable=retryable_status(status),
        **kw,
    )


def in_band_error(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The error a 200 answer or stream chunk carries, as a body for error_from_chunk.

    A top-level ``error`` (OpenRouter mid-stream, with ``finish_reason: "error"`` beside
    it; TGI), old vLLM's flat ``{"object": "error"}``, or a choice that finished with
    ``"error"`` and may carry its own ``error`` (OpenRouter, not streamed).
    """
    if chunk.get("error") or chunk.get("object") == "error":
        return chunk
    choices = chunk.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(choice, dict) and choice.get("finish_reason") == "error":
        return {"error": choice.get("error") or {}}
    return None


def error_from_chunk(
    chunk: Mapping[str, Any], provider: str, *, now: float | None = None
) -> ProviderError:
    """The exception for an error inside a 200 answer (mid-stream, or finish_reason "error").

    Classed and retried as the same error answered with an HTTP status would be: a code
    429, or words that say rate limit, is RateLimited, waiting as long as it asks.
    """
    info = ErrorInfo(chunk)
    code = info.code
    status = _status_code(code)
    if status is not None:
        retryable = retryable_status(status)
    else:  # a named or missing code: a provider failure after generation began, unless
        # the code or type says the request itself was wrong (OpenAI type, TGI error_type)
        retryable = not re.search(r"invalid|bad_request|validation|moderation|policy", info.kind, re.I)
    cls = _class_for(status, info)
    retry_after = retry_after_from(None, info.metadata_headers, info.retry_after, now=now)
    message = f"{provider} error during the answer: {info.message or 'no message given'}"
    if code is not None and str(code) not in message:
        message += f" (code {code})"
    return cls(
        message,
        hint=_hint(429, info, retry_after) if cls is RateLimited else None,
        status=status,
        provider=provider,
        retryable=retryable or cls is RateLimited,
        retry_after=retry_after,
        body=dict(chunk),
    )


def _status_code(code: Any) -> int | None:
    """An HTTP status carried as an error code: 502 or "502"; None for names like "server_error"."""
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    return code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code < 600 else None


def retryable_status(status: int) -> bool:
    """Whether an answer with this HTTP status is worth another attempt."""
    return status in RETRY_STATUSES or (status >= 500 and status not in (501, 505))


def _class_for(status: int | None, info: ErrorInfo | None = None) -> type[ProviderError]:
    """429, or a transient failure whose code, type or message says rate limit."""
    said = info is not None and info.rate_limited
    if status == 429 or (said and (status is None or retryable_status(status))):
        return RateLimited
    return ProviderTimeout if status in (408, 504) else ProviderError


def _is_auth(info: ErrorInfo) -> bool:
    """A 403 about the key (not moderation, not a model the account may not use)."""
    text = f"{info.message} {info.kind}"
    if info.moderation or _NOT_AUTH_WORDS.search(text):
        return False
    return bool(_AUTH_WORDS.search(text))


def _hint(status: int, info: ErrorInfo, retry_after: float | None) -> str | None:
    if status == 429:
        return f"the provider asks to wait {_duration(retry_after)}" if retry_after else None
    about_model = bool(_MODEL_CODES & set(info.kind.split())) or "model" in info.message.lower()
    if status == 402:
        return "add credits or lower --max-tokens"
    if status == 404 and "constraint_filtered" in info.kind:
        return "no endpoint of this model accepts every parameter sent, e.g. response_format"
    if status == 404 and about_model:
        return "check the model id with `llamavis models`"
    if status == 404 and not info.err:
        return "check --base-url: OpenAI-compatible servers usually end in /v1"
    if status == 413:
        return "the request is too large for this provider: send a smaller image"
    if status == 500 and info.message.lower() in ("", "internal server error"):
        return "the server's log has the cause"
    return None


def _not_served(status: int, info: ErrorInfo) -> bool:
    """Whether an error answer says this route does not serve the model."""
    if status not in (400, 404, 410, 500) or _PARAMETERS.search(f"{info.message} {info.kind}"):
        return False
    if status == 410:  # NVIDIA: a model past its end of life answers 410 Gone
        return True
    if status == 500:  # Ollama >= 0.30 loading llama3.2-vision
        return "unknown model architecture" in info.message.lower()
    return bool(_MODEL_CODES & set(info.kind.split())) or bool(_NOT_SERVED.search(info.message))


def dead_route_hint(provider: str, alias: str = "11b") -> str:
    """What to do when ``provider`` does not serve the model: doctor, and routes that do."""
    from llamavis.providers.facts import serving_routes

    if provider == "ollama":
        return ("run `ollama pull llama3.2-vision`; Ollama 0.30 and later cannot run it, so use "
                "an older Ollama; `llamavis models -P ollama` lists what the server has")
    if provider == "local":
        return ("`llamavis models -P local --base-url URL` lists what the server serves; "
                "`llamavis doctor` finds other routes")
    routes = ",".join(serving_routes(alias, exclude=(provider,)))
    return f"not served there: `llamavis doctor` finds the routes you can reach, or add --fallback {routes}"


def _key_hint(provider: str) -> str:
    from llamavis.backends.providers import PROVIDERS

    spec = PROVIDERS.get(provider)
    env = f"set {spec.key_envs[0]} or " if spec and spec.key_envs else ""
    return f"check the key: {env}run `llamavis keys set {provider}`"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"



def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

