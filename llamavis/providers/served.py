"""One provider's route outside a run (doctor, agree, models), and what a server serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llamavis.urls import shown

if TYPE_CHECKING:
    import httpx

    from llamavis.backends.providers import ProviderSpec
    from llamavis.providers.resolve import Route


def route_of(provider: str, model: str | None, base_url: str | None, api_key: str | None, *,
             require_key: bool = True) -> Route:
    """One provider's route as a run would resolve it (the one resolver, via a Session),
    from what was given and that provider's own variables only."""
    from llamavis.run.options import RunOptions
    from llamavis.run.session import Session

    options = RunOptions(provider=provider, model=model, base_url=base_url, api_key=api_key,
                         failover=False)
    return Session(options, require_key=require_key, environment=False).route()


async def served_models(spec: ProviderSpec, base_url: str | None, api_key: str | None,
                        transport: httpx.AsyncBaseTransport | None = None) -> list[dict[str, Any]]:
    """What a server really serves (its ``GET /models``), Llama 3.2 Vision ids marked."""
    from llamavis.backends.client import checked_base_url
    from llamavis.backends.models import PROFILES, is_llama32_vision
    from llamavis.run.clients import open_probe_client

    route = route_of(spec.name, None, base_url, api_key, require_key=False)
    endpoint, key = checked_base_url(route.base_url), route.api_key

    async with open_probe_client(spec, api_key=key, base_url=endpoint, timeout=30.0,
                                 connect_timeout=10.0, max_retries=1,
                                 transport=transport) as client:
        items = await client.list_models()
    rows = []
    for item in items:
        model_id = str(item.get("id") or "")
        family = next((p.title for p in PROFILES if p.pattern.search(model_id)), "")
        rows.append({"provider": spec.name, "base_url": shown(endpoint), "model": model_id,
                     "llama_3_2_vision": is_llama32_vision(model_id), "family": family})
    return rows
