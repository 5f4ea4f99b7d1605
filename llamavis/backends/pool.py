"""HTTP connection pools for one client: each carries one request at a time.

httpcore's pool walks every connection it holds, asking each whether it has expired
(a socket poll plus, through anyio, a ``getpeername`` call), on every request it
assigns and every response it closes (encode/httpcore#1035). With 16 connections in one
pool that walk was a fifth of the event loop's time at zero latency; with 64, a quarter
of the ideal rate at 200 ms latency (BENCHMARKS.md). So each in-flight request takes a
pool of its own from a free list, whose one kept-alive connection is the only one
walked, and gives it back when its response is closed. Pools are made as concurrency
first needs them; the most recently used comes back first, its connection still warm.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator

import httpx

_PROXY_VARS = ("https_proxy", "http_proxy", "all_proxy")


class Pools:
    """A free list of ``httpx.AsyncClient``; ``with pools.one() as http:`` holds one."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        connect_timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._transport = transport
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []
        self._tls: ssl.SSLContext | None = None

    @contextlib.contextmanager
    def one(self) -> Iterator[httpx.AsyncClient]:
        """A pool no other request is using, returned to the free list afterwards."""
        http = self._idle.pop() if self._idle else self._new()
        try:
            yield http
        finally:
            if not http.is_closed:
                self._idle.append(http)

    async def aclose(self) -> None:
        """Close every pool; the next request opens new ones."""
        pools, self._all, self._idle = self._all, [], []
        for http in pools:
            await http.aclose()

    def _new(self) -> httpx.AsyncClient:
        http = httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
            transport=self._transport,
            verify=self._context(),
        )
        self._all.append(http)
        return http

    def _context(self) -> ssl.SSLContext:
        """One TLS context for every pool: loading the CA bundle costs 20-40 ms each time.

        A plain-http endpoint with no proxy set never speaks TLS, so it does not pay for
        the bundle at start-up; it gets a context that trusts nothing, which would refuse
        any TLS it met (it fails closed, never open).
        """
        if self._tls is None:
            proxied = any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS)
            if self.base_url.startswith("https:") or proxied:
                self._tls = httpx.create_ssl_context()
            else:
                self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CAs
        return self._tls
