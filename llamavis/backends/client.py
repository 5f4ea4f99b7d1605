"""One OpenAI-compatible chat-completions client for every provider.

Its HTTP side (headers, URLs, retries, and the boundary where httpx exceptions become
llamavis ones, the API key in no message, debug line or repr) is Wire in backends/wire.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from llamavis.backends.errors import one_line
from llamavis.backends.limits import answer_limit, capped, read_capped, too_large
from llamavis.backends.parse import (
    completion_from_body,
    completion_from_stream,
    json_body,
    model_list,
)
from llamavis.backends.payload import build_payload, encode_body, redact_payload
from llamavis.backends.sse import ChatStream, aiter_events
from llamavis.backends.wire import Wire, checked_base_url
from llamavis.errors import ConfigError, LlamavisError, ModelUnavailable, ProviderError, RateLimited
from llamavis.types import Completion, JSONObject
from llamavis.urls import shown

__all__ = ["ChatClient", "build_payload", "checked_base_url", "redact_payload"]


AFTER_FINISH_S = 5.0  # how long to wait for usage/[DONE] once the answer has finished


class ChatClient(Wire):
    """Sends chat-completions requests to one provider, with retries and streaming."""

    def __repr__(self) -> str:
        return f"ChatClient(provider={self.spec.name!r}, base_url={shown(self.base_url)!r})"

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def chat(
        self,
        payload: JSONObject,
        *,
        on_delta: Callable[[str], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> Completion:
        """One answer, streamed if ``payload["stream"]``; retried on transient failures.

        ``on_delta`` gets each piece of text as it arrives; ``on_retry`` is called with
        the reason before a retry, meaning: forget the text delivered so far.

        If the endpoint refuses ``response_format`` (OpenRouter answers 404 when no
        endpoint of the model honours the parameters required; some local servers reject
        grammars), the request goes again without it and so do later ones: the prompt and
        the caller's own validation still hold the answer to the schema.
        """
        sent = 0

        async def once(body: JSONObject) -> Completion:
            nonlocal sent
            sent += 1
            return await self._attempt(body, on_delta)

        try:
            completion = await self._json_mode_or_not(payload, once, on_retry)
        except LlamavisError as exc:
            exc.requests = max(1, sent)  # what the image cost: every request sent for it
            raise
        completion.requests = sent
        return completion

    async def _json_mode_or_not(self, payload: JSONObject,
                                once: Callable[[JSONObject], Awaitable[Completion]],
                                on_retry: Callable[[str], None] | None) -> Completion:
        if self.json_mode_refusal is not None:
            payload = without_json_mode(payload)
        try:
            return await self._run(lambda: once(payload), on_retry)
        except ProviderError as exc:
            if "response_format" not in payload or not refuses_json_mode(exc):
                raise
            self.json_mode_refusal = exc.message
        self._log("the endpoint refused response_format; validating prompt-only JSON instead")
        plain = without_json_mode(payload)
        return await self._run(lambda: once(plain), on_retry)

    async def agree(self, model_id: str) -> str:
        """Accept the model's licence (Cloudflare's Meta licence); only Workers AI has one."""
        raise ConfigError(f"{self.spec.name} has no licence to agree to for {model_id}")

    async def list_models(self) -> list[JSONObject]:
        """The model objects of the provider's model list (``GET /models``: its ``data``)."""
        data, body = await self.get_json(self._models_url())
        return model_list(self._model_items(data), body, self.spec)

    async def get_json(self, url: str) -> tuple[Any, bytes]:
        """``GET url`` (retried like a chat request): the parsed JSON and the raw body."""
        return await self._run(lambda: self._within_timeout(self._get_exchange(url)), None)

    # -- one attempt ------------------------------------------------------------
    async def _attempt(self, payload: JSONObject, on_delta: Callable[[str], None] | None) -> Completion:
        limiter = self.limiter or contextlib.nullcontext()
        async with limiter as ticket:
            try:
                completion = await self._within_timeout(self._exchange(payload, on_delta))
            except RateLimited:
                if self.limiter is not None:
                    self.limiter.rate_limited(ticket)
                raise
            if self.limiter is not None:
                self.limiter.succeeded()
            return completion

    def request_for(self, payload: JSONObject) -> tuple[str, JSONObject]:
        """The URL and JSON body that carry ``payload`` on this wire (another wire overrides)."""
        return self.url("chat/completions"), payload

    async def _exchange(self, payload: JSONObject, on_delta: Callable[[str], None] | None) -> Completion:
        url, wire = self.request_for(payload)
        if self._debug is not None:  # not even built otherwise: it copies the whole payload
            self._log(
                f"POST {url}\nheaders: {json.dumps(self.headers(redact=True))}\n"
                f"payload: {json.dumps(redact_payload(wire), ensure_ascii=False)}"
            )
        body = encode_body(wire)
        with self._translated(), self._pools.one() as http:
            started = self._clock()
            request = http.build_request("POST", url, content=body, headers=self._headers)
            response = await self._send(http, request)
            try:
                self._log(f"{response.status_code} after {self._clock() - started:.2f} s")
                limit = answer_limit(payload)  # bytes: a flood is cut, not read to the end
                tokens = payload.get("max_tokens", "?")
                if response.status_code >= 400:
                    body = await read_capped(response.aiter_bytes(), limit, self.spec.name, tokens)
                    self._log_body(body)
                    raise self._error(response, body)
                kind = response.headers.get("content-type", "")
                if payload.get("stream") and not kind.startswith("application/json"):
                    return await self._read_stream(response, payload, on_delta)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise too_large(self.spec.name, limit, tokens)
                body = await read_capped(response.aiter_bytes(), limit, self.spec.name, tokens)
                return self._read_json(body, payload)
            finally:
                await response.aclose()

    async def _read_stream(
        self, response: httpx.Response, payload: JSONObject, on_delta: Callable[[str], None] | None
    ) -> Completion:
        stream = self._new_stream()
        chunks = capped(response.aiter_bytes(), answer_limit(payload), self.spec.name,
                        payload.get("max_tokens", "?"))
        async with contextlib.aclosing(aiter_events(chunks)) as events:
            while not stream.done:
                # After finish_reason only usage (or [DONE]) is still to come: a server that
                # then neither sends it nor closes must not cost a complete answer.
                try:
                    if stream.finish_reason:
                        event = await asyncio.wait_for(anext(events), AFTER_FINISH_S)
                    else:
                        event = await anext(events)
                except (TimeoutError, StopAsyncIteration):
                    break
                piece = stream.feed(event)
                if piece and on_delta is not None:
                    on_delta(piece)
        self._log(
            f"stream ended: complete={stream.complete} finish_reason={stream.finish_reason} "
            f"usage={json.dumps(stream.usage)} text={self._redact_text(one_line(stream.text, 300))!r}"
        )
        return completion_from_stream(stream, self.spec, payload)

    def _new_stream(self) -> Any:
        """The assembler of this wire's stream events (ChatStream's face)."""
        return ChatStream(self.spec.name, now=self._wall_clock)

    def _read_json(self, body: bytes, payload: JSONObject) -> Completion:
        self._log_body(body)
        return completion_from_body(body, self.spec, payload, now=self._wall_clock())

    def _models_url(self) -> str:
        return self.url("models")

    async def _get_exchange(self, url: str) -> tuple[Any, bytes]:
        self._log(f"GET {url}\nheaders: {json.dumps(self.headers(redact=True))}")
        with self._translated(), self._pools.one() as http:
            response = await self._send(http, http.build_request("GET", url, headers=self._headers))
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        if response.status_code >= 400:
            raise self._error(response, body)
        return json_body(body, self.spec), body

    def _model_items(self, data: Any) -> Any:
        """The list of model objects in a models answer (OpenAI: its ``data``)."""
        return data.get("data") if isinstance(data, dict) else data


_JSON_MODE_REFUSALS = ("response_format", "require_parameters", "no endpoints found",
                       "grammar", "json_schema", "constraint")


def refuses_json_mode(exc: ProviderError) -> bool:
    """True when an error says the endpoint will not take response_format (or a grammar);
    not when it says the model is not served at all (asking again cannot help)."""
    if isinstance(exc, ModelUnavailable):
        return False
    text = str(exc).lower()
    return exc.status in (400, 404, 422) and any(word in text for word in _JSON_MODE_REFUSALS)


def without_json_mode(payload: JSONObject) -> JSONObject:
    """The payload without response_format and the routing rule that requires it."""
    return {k: v for k, v in payload.items() if k not in ("response_format", "provider")}

