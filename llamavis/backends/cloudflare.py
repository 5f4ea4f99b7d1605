"""Cloudflare Workers AI through its native API: ``POST {base}/run/{model}``.

Its OpenAI-compatible path is reported to answer image parts with empty content for
Llama 3.2 Vision (providers.md section 10), so this client translates the OpenAI
chat-completions payload every other part of llamavis builds into the native input
(cloudflare-docs ``workers-ai-models/llama-3.2-11b-vision-instruct.json``):

- the image, a data URL, becomes ``image``: a list of byte values (0-255);
- one user turn becomes ``prompt``; several turns become ``messages`` with string contents;
- answers are ``{"result": {"response", "usage"}, "success", "errors", "messages"}``;
  streams are ``data: {"response": "..."}`` events ending in ``data: [DONE]``.

Retries, the limiter, timeouts and key scrubbing are ChatClient's: this class only
changes what goes on the wire and how answers are read. Errors in Cloudflare's envelope
(5016: Meta's licence not yet accepted) are read by ``backends.errors``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from llamavis.backends.client import ChatClient
from llamavis.backends.errors import error_from_chunk
from llamavis.backends.models import LLAMA_32_VISION, profile_for
from llamavis.backends.parse import bad_body, completion, json_body
from llamavis.backends.sse import ServerSentEvent
from llamavis.errors import LlamavisError, ProviderError
from llamavis.types import Completion, JSONObject

_OPTIONS = ("max_tokens", "temperature", "top_p", "seed", "stream")


class CloudflareClient(ChatClient):
    """ChatClient's face over Workers AI's native run endpoint."""

    def __repr__(self) -> str:
        return f"CloudflareClient(base_url={self.base_url!r})"

    def request_for(self, payload: JSONObject) -> tuple[str, JSONObject]:
        model = str(payload.get("model") or "")
        return self.url(f"run/{model}"), native_input(payload)

    def _new_stream(self) -> CloudflareStream:
        return CloudflareStream(self.spec.name)

    def _read_json(self, body: bytes, payload: JSONObject) -> Completion:
        self._log_body(body)
        data = json_body(body, self.spec)
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            if isinstance(data, dict) and data.get("errors"):
                raise error_from_chunk({"error": data["errors"][0]}, self.spec.name)
            raise bad_body(body, self.spec)
        model = str(payload.get("model") or "")
        return completion(self.spec, payload, text=_text(result.get("response")),
                          finish_reason=None, usage=result.get("usage"), model=model, id_=None)

    def _models_url(self) -> str:
        return self.url("models/search") + "?search=llama"

    def _model_items(self, data: Any) -> Any:
        items = data.get("result") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return None
        return [{**item, "id": item.get("name")} for item in items if isinstance(item, dict)]

    async def agree(self, model_id: str) -> str:
        """Send Meta's licence agreement once (the prompt "agree"); the model's answer."""
        payload = {"model": model_id, "prompt": "agree"}

        async def attempt() -> str:
            return (await self._within_timeout(self._agree_exchange(payload))).text

        return await self._run(attempt, None)

    async def _agree_exchange(self, payload: JSONObject) -> Completion:
        url = self.url(f"run/{payload['model']}")
        self._log(f"POST {url}\nheaders: {json.dumps(self.headers(redact=True))}\npayload: "
                  '{"prompt": "agree"}')
        with self._translated(), self._pools.one() as http:
            response = await self._send(http, http.build_request(
                "POST", url, json={"prompt": "agree"}, headers=self._headers))
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        if response.status_code >= 400:
            raise self._error(response, body)
        return self._read_json(body, payload)


def native_input(payload: JSONObject) -> JSONObject:
    """The OpenAI chat payload as Workers AI's native input."""
    out: JSONObject = {k: payload[k] for k in _OPTIONS if payload.get(k) is not None}
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict)]
    if profile_for(str(payload.get("model") or "")) is not LLAMA_32_VISION:
        out["messages"] = messages  # Llama 4 on Workers AI takes image_url parts as they are
        return out
    turns, image = [], None
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        texts = [str(p.get("text") or "") for p in parts if p.get("type") == "text"]
        for part in parts:
            if part.get("type") == "image_url" and image is None:
                image = _image_bytes(part)
        turns.append({"role": message.get("role", "user"), "content": "\n".join(texts)})
    if len(turns) == 1 and turns[0]["role"] == "user":
        out["prompt"] = turns[0]["content"]
    else:
        out["messages"] = turns
    if image is not None:
        out["image"] = list(image)
    return out


def _image_bytes(part: JSONObject) -> bytes:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        raise ProviderError("cloudflare takes images as bytes: only data URLs can be sent",
                            provider="cloudflare")
    return base64.b64decode(url.split(",", 1)[1])


def _text(value: Any) -> str:
    """The answer text; a structured ``response`` (seen for JSON answers) as JSON."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


class CloudflareStream:
    """Workers AI stream events assembled into one answer (ChatStream's face)."""

    finish_reason: str | None = None  # Workers AI streams carry none: [DONE] ends them

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.parts: list[str] = []
        self.usage: JSONObject | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.done = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def complete(self) -> bool:
        return self.done

    def feed(self, event: ServerSentEvent) -> str:
        """Take one event; return the answer text it adds."""
        if event.data.strip() == "[DONE]":
            self.done = True
            return ""
        try:
            chunk = json.loads(event.data)
        except json.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            raise ProviderError(f"{self.provider} sent a stream event that is not a JSON object: "
                                f"{event.data[:80]!r}", provider=self.provider, retryable=True)
        if chunk.get("error") or chunk.get("errors"):
            error = chunk.get("error") or chunk["errors"][0]
            raise _chunk_error(error, self.provider)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        piece = _text(chunk.get("response"))
        if piece:
            self.parts.append(piece)
        return piece


def _chunk_error(error: Any, provider: str) -> LlamavisError:
    return error_from_chunk({"error": error if isinstance(error, dict) else {"message": error}},
                            provider)
