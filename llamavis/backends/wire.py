"""The HTTP side of a provider client: headers, URLs, one exchange's timeouts, retries,
and the boundary where httpx exceptions become llamavis ones (nothing from httpx escapes;
the API key appears in no message, debug line or repr).

ChatClient (backends/client.py) builds the chat and model-list requests on top of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import httpx

from llamavis.__about__ import __version__
from llamavis.backends.errors import error_from_response, one_line
from llamavis.backends.pool import Pools
from llamavis.backends.providers import ProviderSpec
from llamavis.backends.retry import AdaptiveLimiter, RetryPolicy, retrying
from llamavis.errors import (
    ConfigError,
    LlamavisError,
    NetworkError,
    ProviderTimeout,
    UsageError,
)
from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from llamavis.urls import scrubbed, shown

__all__ = ["Wire", "checked_base_url"]

T = TypeVar("T")
_MIN_SCRUB = 8  # shorter "keys" (Ollama's conventional "ollama") are not secrets


class Wire:
    """One provider's connection: the key, headers, URLs, retries and error translation."""

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
