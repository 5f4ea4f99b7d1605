"""One OpenAI-compatible chat-completions client for every provider.

This is the boundary where httpx exceptions become llamavis ones: nothing from httpx
escapes, and the API key appears in no message, debug line or repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx

from llamavis.__about__ import __version__
from llamavis.backends.errors import error_from_response, one_line
from llamavis.backends.limits import answer_limit, capped, read_capped, too_large
from llamavis.backends.parse import (
    completion_from_body,
    completion_from_stream,
    json_body,
    model_list,
)
from llamavis.backends.payload import build_payload, encode_body, redact_payload
from llamavis.backends.pool import Pools
from llamavis.backends.providers import ProviderSpec
from llamavis.backends.retry import AdaptiveLimiter, RetryPolicy, retrying
from llamavis.backends.sse import ChatStream, aiter_events
from llamavis.errors import (
    ConfigError,
    LlamavisError,
    ModelUnavailable,
    NetworkError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    UsageError,
)
from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, Completion, JSONObject
from llamavis.urls import scrubbed, shown

__all__ = ["ChatClient", "build_payload", "checked_base_url", "redact_payload"]

T = TypeVar("T")
_MIN_SCRUB = 8  # shorter "keys" (Ollama's conventional "ollama") are not secrets


AFTER_FINISH_S = 5.0  # how long to wait for usage/[DONE] once the answer has finished


class ChatClient:
    """Sends chat-completions requests to one provider, with retries and streaming."""

    def __init__(
        self,
        spec: ProviderSpec,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = 10.0,
        max_retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: AdaptiveLimiter | None = None,
        debug: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.base_url = checked_base_url(base_url or spec.base_url)
        self._api_key = (api_key or "").strip() or None
        if self._api_key and not (self._api_key.isascii() and self._api_key.isprintable()):
            raise ConfigError(
                f"the {spec.name} key contains characters a header cannot carry",
                hint="copy the key again",
            )
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.max_retries = max(0, max_retries)
        self.policy = RetryPolicy(max_retries=self.max_retries)
        self.limiter = limiter
        self._sleep, self._transport, self._debug = sleep, transport, debug
        self._clock, self._wall_clock = clock, wall_clock
        self._pools = Pools(self.base_url, timeout=timeout, connect_timeout=connect_timeout,
                            transport=transport)
        self._urls: dict[str, str] = {}
        self._headers = self.headers()  # the same on every request: built once
        self.json_mode_refusal: str | None = None  # what the endpoint said refusing it

    def __repr__(self) -> str:
        return f"ChatClient(provider={self.spec.name!r}, base_url={shown(self.base_url)!r})"

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools (safe to call twice)."""
        await self._pools.aclose()

    def headers(self, *, redact: bool = False) -> dict[str, str]:
        """Request headers; ``redact=True`` shows the key as ``***`` (for display)."""
        headers = {"Content-Type": "application/json", "User-Agent": f"llamavis/{__version__}"}
        headers.update(self.spec.extra_headers)
        if self._api_key:
            key = "***" if redact else self._api_key
            headers["Authorization"] = f"Bearer {key}"
            if self.spec.key_header == "bearer+api-key":
                headers["api-key"] = key
        return headers

    def url(self, path: str) -> str:
        """``path`` under the base URL, keeping the base URL's query; the provider's
        api-version added unless the base URL names one."""
        if path in self._urls:  # once per client: the per-request path stays cheap
            return self._urls[path]
        base = httpx.URL(self.base_url)
        params = base.params
        if self.spec.api_version and "api-version" not in params:
            params = params.set("api-version", self.spec.api_version)
        joined = base.copy_with(path=base.path.rstrip("/") + "/" + path, query=None)
        self._urls[path] = str(joined.copy_with(params=params)) if params else str(joined)
        return self._urls[path]

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

    async def _run(
        self, attempt: Callable[[], Awaitable[T]], on_retry: Callable[[str], None] | None
    ) -> T:
        def retried(n: int, exc: LlamavisError, wait: float) -> None:
            self._log(f"retry {n}/{self.max_retries} in {wait:.2f} s after: {self._scrub(exc)}")
            if on_retry is not None:
                on_retry(scrubbed(str(exc)))

        try:
            return await retrying(attempt, self.policy, sleep=self._sleep, on_retry=retried)
        except LlamavisError as exc:
            self._scrub(exc)
            raise

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

    async def _within_timeout(self, work: Awaitable[T]) -> T:
        """The whole exchange within --timeout: httpx's timeout is per read, so a server
        dripping bytes or keep-alive comments would otherwise hold a request forever."""
        try:
            return await asyncio.wait_for(work, self.timeout)
        except TimeoutError:
            raise ProviderTimeout(
                f"{self.spec.name} did not finish answering within {self.timeout:g} s",
                provider=self.spec.name,
                retryable=True,
                hint="raise --timeout for slow models",
            ) from None

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

    async def _send(self, http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        try:
            return await http.send(request, stream=True)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            # Most often a kept-alive connection the server had closed (transformers serve
            # closes it after a 500), but the request may also have reached a server that
            # then died: it is a retry like any other, so --max-retries 0 sends it once
            # only. It is sent again at once, though: waiting would not help a stale
            # connection, and the next request opens a fresh one.
            error = NetworkError(
                f"{self.spec.name} closed the connection before answering: {_describe(exc)}"
            )
            error.retry_after = 0.0  # read by RetryPolicy.delay: no backoff
            raise error from exc

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

    # -- helpers ----------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn httpx exceptions into llamavis ones (the only place that sees them)."""
        name = self.spec.name
        try:
            yield
        except httpx.ConnectTimeout as exc:
            raise ProviderTimeout(
                f"could not connect to {self.base_url} within {self.connect_timeout:g} s",
                provider=name,
                retryable=True,
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{name} sent nothing for {self.timeout:g} s",
                provider=name,
                retryable=True,
                hint="raise --timeout for slow models",
            ) from exc
        except httpx.ConnectError as exc:
            raise NetworkError(
                f"cannot connect to {self.base_url}: {_describe(exc)}",
                hint="is the server running?",
            ) from exc
        except httpx.HTTPError as exc:
            raise NetworkError(f"connection to {name} failed: {_describe(exc)}") from exc

    def _error(self, response: httpx.Response, body: bytes) -> LlamavisError:
        text = body.decode("utf-8", errors="replace")
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return error_from_response(
            response.status_code, text, response.headers, self.spec.name, now=self._wall_clock()
        )

    def _scrub(self, exc: LlamavisError) -> LlamavisError:
        """Blank the key out of an error's message and hint, should a server echo it."""
        exc.message = scrubbed(self._redact_text(exc.message))
        exc.hint = scrubbed(self._redact_text(exc.hint)) if exc.hint else exc.hint
        exc.args = (exc.message,)
        return exc

    def _log(self, line: str) -> None:
        if self._debug is not None:
            self._debug(scrubbed(line))

    def _log_body(self, body: bytes) -> None:
        if self._debug is not None:
            text = one_line(body.decode("utf-8", errors="replace"), 1000)
            self._debug(f"response: {self._redact_text(text)}")

    def _redact_text(self, text: str) -> str:
        """The key blanked out of anything a server sent back (some echo headers)."""
        key = self._api_key
        return text.replace(key, "***") if key and len(key) >= _MIN_SCRUB else text


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


def checked_base_url(url: str) -> str:
    """The base URL without its trailing slash, or a UsageError if it is not http(s)."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"bad base URL {shown(url)!r}", hint="it should look like https://host/v1")
    return url.strip().rstrip("/")


def _describe(exc: BaseException) -> str:
    return one_line(str(exc), 160) or type(exc).__name__
