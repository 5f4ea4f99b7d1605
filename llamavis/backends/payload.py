"""Chat-completions request bodies: built per provider, redacted for display, priced."""

from __future__ import annotations

import json
from typing import Any

import orjson

from llamavis.backends.pricing import estimate_usd
from llamavis.backends.providers import ProviderSpec
from llamavis.types import GenParams, JSONObject, Usage

DEFAULT_MAX_TOKENS = 1024  # servers without a default (transformers serve) generate 1024 anyway
_KEEP_CHARS = 32


def build_payload(
    spec: ProviderSpec,
    model_id: str,
    messages: list[JSONObject],
    params: GenParams,
    *,
    stream: bool,
    json_schema: JSONObject | None = None,
    json_wanted: bool = False,
    guide: JSONObject | None = None,
) -> JSONObject:
    """The JSON body of one chat-completions request to ``spec``'s endpoint."""
    payload: JSONObject = {
        "model": model_id,
        "messages": messages,
        "max_tokens": params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS,
    }
    if params.temperature is not None:
        payload["temperature"] = params.temperature
    if params.top_p is not None:
        payload["top_p"] = params.top_p
    if params.seed is not None and spec.supports_seed:
        payload["seed"] = params.seed
    # Never "stop": transformers serve fails on it for vision models (providers.md section 9).
    if stream:
        payload["stream"] = True
        if spec.stream_usage:
            payload["stream_options"] = {"include_usage": True}
    if guide and spec.guided:  # vLLM's constrained-decoding fields, where the wire takes them
        payload.update(guide)
    response_format = _response_format(spec, json_schema, json_wanted)
    if response_format is not None:
        payload["response_format"] = response_format
        if spec.require_parameters:
            payload["provider"] = {"require_parameters": True}
    return payload


def encode_body(payload: JSONObject) -> bytes:
    """The request body as JSON bytes: orjson copies a base64 image at memory speed, where
    the json module scans it character by character (~5 us against ~250 us for 640x480)."""
    try:
        return orjson.dumps(payload)
    except TypeError:  # what orjson refuses, such as a lone surrogate from an odd file name
        return json.dumps(payload).encode()


def _response_format(spec: ProviderSpec, schema: JSONObject | None, wanted: bool) -> JSONObject | None:
    if spec.json_mode is None or (schema is None and not wanted):
        return None
    if spec.json_mode == "json_schema" and schema is not None:
        # strict=False: a user's schema need not meet OpenAI strict-mode rules
        # (every property required, additionalProperties false); Llama upstreams
        # (vLLM-based, Ollama) constrain decoding to the schema either way.
        return {
            "type": "json_schema",
            "json_schema": {"name": "output", "strict": False, "schema": schema},
        }
    return {"type": "json_object"}


def redact_payload(payload: Any) -> Any:
    """A copy of ``payload`` with every ``data:...;base64,`` URL cut to its first 32 characters
    (and an image sent as a list of byte values, as Workers AI takes it, cut the same way)."""
    if isinstance(payload, dict):
        return {key: redact_payload(value) for key, value in payload.items()}
    if isinstance(payload, list) and len(payload) > _KEEP_CHARS and isinstance(payload[0], int):
        return [*payload[:8], f"…({len(payload)} bytes)"]
    if isinstance(payload, list):
        return [redact_payload(item) for item in payload]
    if isinstance(payload, str) and payload.startswith("data:") and ";base64," in payload:
        encoded = payload.partition(";base64,")[2]
        size = len(encoded) * 3 // 4 - encoded[-2:].count("=")
        if len(payload) > _KEEP_CHARS:
            return f"{payload[:_KEEP_CHARS]}…({size} bytes)"
    return payload


def count_images(payload: JSONObject) -> int:
    """How many image parts the request's messages carry."""
    count = 0
    for message in payload.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(
                1 for part in content if isinstance(part, dict) and part.get("type") == "image_url"
            )
    return count


def usage_from(raw: Any, spec: ProviderSpec, model_id: str, images: int) -> Usage:
    """Tokens and cost: the provider's own cost if given, else an estimate from spec prices."""
    if not isinstance(raw, dict):
        return Usage()
    prompt, completion = _int(raw.get("prompt_tokens")), _int(raw.get("completion_tokens"))
    cost = _float(raw.get("cost"))  # OpenRouter
    if cost is None:
        cost = _float(raw.get("estimated_cost"))  # DeepInfra
    if cost is None:
        cost = estimate_usd(spec, model_id, prompt, completion, images)
    return Usage(prompt, completion, cost)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
