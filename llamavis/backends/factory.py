"""The one place a provider's spec becomes the client object that talks to it.

Every client has the same face: ``await chat(payload, on_delta=, on_retry=) -> Completion``,
``headers(redact=)``, ``aclose()``. The payload is always the OpenAI chat-completions
shape; a client for another wire translates it.
"""

from __future__ import annotations

from typing import Any

from llamavis.backends.providers import ProviderSpec


def make_client(spec: ProviderSpec, *, engine: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """The client for ``spec.wire``, built with ChatClient's keyword arguments.

    ``engine`` carries the in-process engine's options (--device, --dtype, --load-in-4bit,
    --batch-size); HTTP clients do not take it.
    """
    if spec.wire == "openai":
        from llamavis.backends.client import ChatClient

        return ChatClient(spec, **kwargs)
    if spec.wire == "cloudflare":
        from llamavis.backends.cloudflare import CloudflareClient

        return CloudflareClient(spec, **kwargs)
    if spec.wire == "transformers":
        from llamavis.backends.local_engine import LocalClient

        return LocalClient(spec, engine=engine, **kwargs)
    raise NotImplementedError(f"no client for the {spec.wire!r} wire of {spec.name}")
