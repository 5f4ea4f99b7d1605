"""``llamavis doctor``: where can this model run right now? One verdict per route.

Without ``probe`` no chat request is sent: a route is judged by its set-up (key,
endpoint, account), whether its endpoint answers, and whether its model list shows the
model (for OpenRouter, whether the model has a live endpoint). With ``probe`` each route
that is set up gets one request with a tiny image, and its answer decides. ``detail``
quotes what the provider said whenever it said something. Nothing here prints; the cost
warning of a probe goes to ``on_note``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from llamavis.errors import (
    ConfigError,
    LlamavisError,
    ModelUnavailable,
    ProviderError,
    UsageError,
)
from llamavis.providers.facts import status
from llamavis.urls import scrubbed

if TYPE_CHECKING:
    import httpx

    from llamavis.backends.client import ChatClient
    from llamavis.backends.providers import ProviderSpec

VERDICTS = ("live", "dead", "blocked", "not_configured", "unreachable", "unknown")
PROBE_TOKENS = 40
PROBE_SIDE = 32
_SCHEMA = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}


@dataclass
class Verdict:
    """One route's answer to "can I run the model here right now?"."""

    provider: str
    model: str
    verdict: str
    detail: str
    latency_s: float | None = None
    # what llamavis' route facts say (providers/facts.py), and how old that knowledge is
    known: str = ""
    checked: str | None = None
    age_days: int | None = None

    def __post_init__(self) -> None:
        from llamavis.backends.providers import PROVIDERS

        spec = PROVIDERS.get(self.provider)
        alias = spec.alias_of(self.model) if spec is not None else None
        if alias is None and self.model in ("11b", "90b", "scout", "maverick"):
            alias = self.model
        if alias is not None and not self.known:
            facts = status(self.provider, alias)
            self.known, self.checked, self.age_days = facts.short(), facts.checked, facts.age_days()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "detail": scrubbed(self.detail)}  # never a URL's password


@dataclass
class _Ready:
    spec: ProviderSpec
    model_id: str
    base_url: str
    api_key: str | None


async def diagnose(
    providers: list[str] | None = None, *, model: str | None = None, probe: bool = False,
    base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None, clock: Callable[[], float] = time.monotonic,
    on_note: Callable[[str], None] | None = None,
) -> list[Verdict]:
    """A verdict for each provider named (all when none), in the order given."""
    from llamavis.backends.providers import PROVIDERS, get_provider

    specs = [get_provider(n) for n in providers] if providers else list(PROVIDERS.values())
    if (base_url or api_key) and len(specs) != 1:
        raise UsageError("--base-url and --api-key apply to one provider", hint="name it with -P")
    plans = [_plan(spec, model, base_url, api_key) for spec in specs]
    ready = [p for p in plans if isinstance(p, _Ready)]
    if probe and on_note is not None:
        on_note(probe_cost_note(ready))

    async def check(plan: Verdict | _Ready) -> Verdict:
        if isinstance(plan, Verdict):
            return plan
        return await _check(plan, probe, timeout, transport, clock)

    return list(await asyncio.gather(*(check(p) for p in plans)))


def any_live(verdicts: list[Verdict]) -> bool:
    return any(v.verdict == "live" for v in verdicts)


def _plan(spec: ProviderSpec, model: str | None, base_url: str | None, api_key: str | None,
          ) -> Verdict | _Ready:
    """The route's set-up, or the verdict that it has none (no request is needed for that)."""
    from llamavis.backends.client import checked_base_url

    try:
        model_id = spec.model_id(model)
    except UsageError as exc:
        return Verdict(spec.name, model or "11b", "dead", exc.message)
    if spec.wire == "transformers":  # in-process: packages and weights, nothing to reach
        from llamavis.engine.check import local_verdict

        return Verdict(spec.name, model_id, *local_verdict(model_id))
    try:
        from llamavis.providers.served import route_of

        route = route_of(spec.name, model, base_url, api_key)
        endpoint = checked_base_url(route.base_url)
    except (ConfigError, UsageError) as exc:
        return Verdict(spec.name, model_id, "not_configured", str(exc) + _known(spec, model_id))
    return _Ready(spec, model_id, endpoint, route.api_key)


def _known(spec: ProviderSpec, model_id: str) -> str:
    """What the route table says, for a route llamavis could not ask."""
    alias = spec.alias_of(model_id)
    if alias is None:
        return ""
    known = status(spec.name, alias)
    return "" if known.state == "unknown" else f"; route table: {known.describe()}"


async def _check(plan: _Ready, probe: bool, timeout: float,
                 transport: httpx.AsyncBaseTransport | None,
                 clock: Callable[[], float]) -> Verdict:
    from llamavis.run.clients import open_probe_client

    client = open_probe_client(plan.spec, api_key=plan.api_key, base_url=plan.base_url,
                               timeout=timeout, max_retries=0, transport=transport)
    started = clock()
    try:
        verdict, detail = await (_probe(client, plan) if probe else _list(client, plan))
    except LlamavisError as exc:
        verdict, detail = _classify(exc)
    finally:
        await client.aclose()
    return Verdict(plan.spec.name, plan.model_id, verdict, detail, round(clock() - started, 3))


def _classify(exc: LlamavisError) -> tuple[str, str]:
    """A failed request's verdict, in the provider's own words (the one error classifier)."""
    from llamavis.providers.failures import classify

    failure = classify(exc)
    return failure.verdict, failure.detail


async def _list(client: ChatClient, plan: _Ready) -> tuple[str, str]:
    """The verdict from the route's model list, without a chat request."""
    from llamavis.providers.licences import LICENCES, agreed_on

    try:
        items = await client.list_models()
    except ProviderError as exc:
        if isinstance(exc, ModelUnavailable) or exc.status not in (404, 405, 501):
            raise
        return "unknown", f"reachable, but it has no model list ({exc.message}); --probe asks it"
    ids = {str(item.get("id", "")).lower() for item in items}
    name = plan.spec.name
    if plan.model_id.lower() not in ids:
        return "dead", f"{plan.model_id} is not in {name}'s model list ({len(ids)} models)" + \
            _known(plan.spec, plan.model_id)
    if name == "openrouter":
        return await _openrouter_endpoints(client, plan)
    if name in LICENCES and not agreed_on(name, plan.base_url):
        return "blocked", (f"listed; Meta's licence is not recorded as accepted: run `llamavis "
                           f"agree {name}` (or --probe, if you agreed elsewhere)")
    return "live", f"{name}'s model list shows {plan.model_id}"


async def _openrouter_endpoints(client: ChatClient, plan: _Ready) -> tuple[str, str]:
    """OpenRouter lists models it has no endpoint for: ask for the model's endpoints."""
    data, _ = await client.get_json(client.url(f"models/{plan.model_id}/endpoints"))
    inner = data.get("data") if isinstance(data, dict) else None
    endpoints = inner.get("endpoints") if isinstance(inner, dict) else None
    if not endpoints:
        return "dead", f"listed, but no live endpoint serves {plan.model_id}" + \
            _known(plan.spec, plan.model_id)
    names = ", ".join(sorted({str(e.get("provider_name")) for e in endpoints if isinstance(e, dict)}))
    return "live", f"served by {len(endpoints)} endpoint(s): {names}"


async def _probe(client: ChatClient, plan: _Ready) -> tuple[str, str]:
    """One real request with a tiny image; the answer (or the refusal) is the verdict."""
    from llamavis.backends.payload import build_payload
    from llamavis.providers.licences import LICENCES, remember
    from llamavis.types import GenParams

    payload = build_payload(plan.spec, plan.model_id, _probe_messages(), GenParams(
        max_tokens=PROBE_TOKENS, temperature=0.0), stream=False, json_schema=_SCHEMA,
        json_wanted=True)
    note = "not sent (no JSON mode on this provider)"
    try:
        completion = await client.chat(payload)
        if "response_format" in payload:
            note = "honoured" if _is_json(completion.text) else "sent, but the answer is not JSON"
        refusal = getattr(client, "json_mode_refusal", None)  # the client asked again without it
        if refusal is not None:
            note = f"refused ({refusal})"
    except ProviderError as exc:
        if "response_format" not in payload or isinstance(exc, ModelUnavailable) or \
                exc.status not in (400, 404, 422):
            raise
        note = f"refused ({exc.message})"
        payload = {k: v for k, v in payload.items() if k not in ("response_format", "provider")}
        completion = await client.chat(payload)
    if plan.spec.name in LICENCES:
        remember(plan.spec.name, plan.base_url)  # it answered: the licence is accepted
    text = " ".join(completion.text.split())[:80]
    return "live", f"answered {text!r}; response_format {note}"


def _probe_messages() -> list[dict[str, Any]]:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (PROBE_SIDE, PROBE_SIDE), (220, 30, 30)).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    text = 'What colour is this image? Answer with JSON only, like {"colour": "blue"}.'
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": text}]}]


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def probe_cost_note(ready: list[_Ready]) -> str:
    """What --probe is about to send, and what it may cost, said before it is sent."""
    from llamavis.backends.pricing import IMAGE_TOKENS, estimate_usd

    if not ready:
        return "--probe: no route is set up, so nothing will be sent"
    total, unpriced = 0.0, []
    for plan in ready:
        cost = estimate_usd(plan.spec, plan.model_id, IMAGE_TOKENS + 30, PROBE_TOKENS, 1)
        if cost is None:
            unpriced.append(plan.spec.name)
        else:
            total += cost
    names = ", ".join(p.spec.name for p in ready)
    price = f"about ${total:.6f} in all where a price is known"
    if unpriced:
        price += f" (no price known for {', '.join(unpriced)})"
    return (f"--probe sends one request with a {PROBE_SIDE}x{PROBE_SIDE} image "
            f"(max_tokens {PROBE_TOKENS}) to each of {len(ready)} route(s) ({names}): {price}")
