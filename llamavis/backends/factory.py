"""The one place a provider's spec becomes the client object that talks to it.

Every client satisfies ``backends.protocol.ChatBackend`` (``chat``, ``request_for``,
``headers``, ``aclose``). The payload is always the OpenAI chat-completions shape; a client
for another wire translates it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llamavis.backends.protocol import ChatBackend
from llamavis.backends.providers import ProviderSpec

if TYPE_CHECKING:
    from llamavis.backends.client import ChatClient
    from llamavis.engine.options import EngineOptions


def make_client(spec: ProviderSpec, *, engine: EngineOptions | None = None,
                **kwargs: Any) -> ChatBackend:
    """The client for ``spec.wire``, built with ChatClient's keyword arguments.

    ``engine`` carries the in-process engine's options (--device, --dtype, --load-in-4bit,
    --batch-size); HTTP clients do not take it.
    """
    if spec.wire in ("openai", "cloudflare"):
        return make_http_client(spec, **kwargs)
    if spec.wire == "transformers":
        from llamavis.backends.local_engine import LocalClient

        return LocalClient(spec, engine=engine, **kwargs)
    raise NotImplementedError(f"no client for the {spec.wire!r} wire of {spec.name}")


def make_http_client(spec: ProviderSpec, **kwargs: Any) -> ChatClient:
    """The HTTP client of a provider that has one (its model list, Cloudflare's licence)."""
    if spec.wire == "cloudflare":
        from llamavis.backends.cloudflare import CloudflareClient

        return CloudflareClient(spec, **kwargs)
    if spec.wire == "openai":
        from llamavis.backends.client import ChatClient

        return ChatClient(spec, **kwargs)
    raise NotImplementedError(f"{spec.name} is not reached over HTTP ({spec.wire!r} wire)")
