"""Where a run gets its clients: the one place outside ``backends`` that makes one.

``open_client`` sizes a route's client for a run (the session's, each --fallback route's);
``open_probe_client`` is the entry for what talks to a provider outside a run (doctor's
probe and model list, Cloudflare's licence agreement): the same factory, an HTTP client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from llamavis.backends.protocol import ChatBackend
from llamavis.backends.providers import ProviderSpec
from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    import httpx

    from llamavis.backends.client import ChatClient
    from llamavis.run.config import TaskConfig

Sleep = Callable[[float], Awaitable[None]]


def open_client(
    cfg: TaskConfig,
    *,
    concurrency: int = 4,
    debug: Callable[[str], None] | None = None,
    sleep: Sleep | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ChatBackend:
    """The client for cfg's route (backends.factory.make_client), sized for ``concurrency``."""
    from llamavis.backends import factory
    from llamavis.backends.retry import AdaptiveLimiter

    kwargs: dict[str, Any] = {
        "api_key": cfg.api_key,
        "base_url": cfg.base_url,
        "timeout": cfg.timeout,
        "max_retries": cfg.max_retries,
        "limiter": AdaptiveLimiter(max(1, int(concurrency))),
        "debug": debug,
        "transport": transport,
    }
    if sleep is not None:
        kwargs["sleep"] = sleep
    return factory.make_client(cfg.provider, engine=cfg.engine, **kwargs)


def open_probe_client(
    spec: ProviderSpec,
    *,
    api_key: str | None,
    base_url: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    connect_timeout: float | None = None,
    max_retries: int = DEFAULT_RETRIES,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ChatClient:
    """An HTTP provider's client outside a run: ``list_models``, ``agree`` and ``chat``."""
    from llamavis.backends import factory

    return factory.make_http_client(
        spec, api_key=api_key, base_url=base_url, timeout=timeout,
        connect_timeout=min(timeout, 10.0) if connect_timeout is None else connect_timeout,
        max_retries=max_retries, transport=transport)
