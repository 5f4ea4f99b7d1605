"""The one route resolver: whom a run asks (provider, model id, endpoint, key, status).

``resolve_routes(RouteRequest)`` is the only place where a provider is picked, its key found
and its endpoint decided, for runs, their fallbacks, the default failover, ``doctor``,
``agree`` and ``models`` alike (they reach it through ``run.session.Session.routes``).
It returns a ``RoutePlan``: the route to ask first and, in order, the routes an image
moves on to when that one cannot serve it:

- ``--provider``/``LLAMAVIS_PROVIDER``, ``--base-url`` or ``LLAMAVIS_BASE_URL`` *pin*
  the first route; only ``--fallback`` routes follow it.
- With nothing pinned, every *configured* route (its credentials present) is a
  candidate, tried by its known status (``providers.facts``: live first, dead last);
  the first is asked, the rest follow (the default failover) unless ``failover`` is off.
- No configured route at all: a ConfigError listing the live routes and their keys.

Nothing here touches the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from llamavis.backends.providers import (
    AUTO_ORDER,
    PROVIDERS,
    ProviderSpec,
    env_key,
    get_provider,
    resolve_alias,
    resolve_base_url,
)
from llamavis.errors import ConfigError, UsageError
from llamavis.providers.facts import RANK, RouteStatus, status
from llamavis.store.paths import load_keys


@dataclass(frozen=True)
class Route:
    """Whom a request goes to: the provider, its model id, its endpoint and the key."""

    spec: ProviderSpec
    model_id: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.spec.name} {self.model_id}"

    @property
    def status(self) -> RouteStatus:
        return status(self.spec.name, self.spec.alias_of(self.model_id) or "")


@dataclass(frozen=True)
class RouteRequest:
    """What the user said about routes (the run's options, or one doctor row)."""

    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    fallback: Sequence[str] = ()  # --fallback entries: "provider" or "provider:model"
    failover: bool = True  # with nothing pinned, move on to the other configured routes
    require_key: bool = True
    # read LLAMAVIS_PROVIDER/_MODEL/_BASE_URL for what is not given (a run does; doctor's
    # and agree's rows take only what they were told, and each provider's own variables)
    environment: bool = True


@dataclass(frozen=True)
class RoutePlan:
    """The route asked first, the routes an image moves on to, and why some were left out."""

    first: Route
    then: tuple[Route, ...] = ()
    skipped: tuple[str, ...] = ()  # one note per route that could not be set up
    pinned: bool = True

    @property
    def routes(self) -> list[Route]:
        return [self.first, *self.then]


def resolve_routes(request: RouteRequest) -> RoutePlan:
    """The plan for ``request``; Usage/ConfigError when the route asked for is wrong."""
    env = os.environ if request.environment else {}
    base_url = request.base_url or env.get("LLAMAVIS_BASE_URL") or None
    if base_url:
        from llamavis.backends.client import checked_base_url

        base_url = checked_base_url(base_url)  # a UsageError now, not once per image
    model = request.model or env.get("LLAMAVIS_MODEL") or None
    name = request.provider or env.get("LLAMAVIS_PROVIDER") or None
    skipped: list[str] = []
    stored = load_keys()  # once for every route of the plan
    if name or base_url:
        spec = get_provider(name) if name else _local_or_configured(stored)
        first = _route(spec, model, base_url, request.api_key, request.require_key, stored)
        then = _fallbacks(first, request.fallback, skipped.append, stored)
        return RoutePlan(first, tuple(then), tuple(skipped), pinned=True)
    unusable: list[str] = []
    candidates = configured(model, on_skip=unusable.append, stored=stored)
    if not candidates:
        if request.api_key:  # a key with no provider: the local server it belongs to
            first = _route(PROVIDERS["local"], model, None, request.api_key, request.require_key,
                           stored)
            then = _fallbacks(first, request.fallback, skipped.append, stored)
            return RoutePlan(first, tuple(then), tuple(skipped))
        raise no_route_error(model, unusable)
    first, rest = candidates[0], candidates[1:]
    if request.api_key:
        first = Route(first.spec, first.model_id, first.base_url, request.api_key)
    then = _fallbacks(first, request.fallback, skipped.append, stored)
    if request.failover:
        then += [r for r in rest if r.spec.name not in {t.spec.name for t in then}]
    return RoutePlan(first, tuple(then), tuple(skipped), pinned=False)


def configured(model: str | None, *, on_skip: Callable[[str], None] | None = None,
               stored: Mapping[str, str] | None = None) -> list[Route]:
    """Every route whose credentials are present, live first, dead last (ties: AUTO_ORDER).

    A configured route that cannot serve ``model`` or whose endpoint is incomplete (a
    Cloudflare token without its account id) is left out, with a note to ``on_skip``.
    """
    stored = load_keys() if stored is None else stored
    routes = []
    for name in AUTO_ORDER:
        spec = PROVIDERS[name]
        if not _has_key(spec, stored):
            continue
        try:
            routes.append(_route(spec, model, None, None, True, stored))
        except (ConfigError, UsageError) as exc:
            if on_skip is not None:
                on_skip(f"{name} skipped: {exc}")
    return sorted(routes, key=lambda r: RANK[r.status.state])  # stable: ties keep AUTO_ORDER


def find_key(spec: ProviderSpec, api_key: str | None, *, required: bool = True,
             stored: Mapping[str, str] | None = None) -> str | None:
    """--api-key, else the environment, else the keys file (``stored``: read already);
    ConfigError if required and none."""
    if api_key:
        return api_key
    key = env_key(spec) or (load_keys() if stored is None else stored).get(spec.name)
    if key or not spec.key_required or not required:
        return key
    raise ConfigError(f"no API key for {spec.name}",
                      hint=f"set {spec.key_envs[0]} or run `llamavis keys set {spec.name}`")


def no_route_error(model: str | None, skipped: Sequence[str] = ()) -> ConfigError:
    """No route is configured: which live routes there are, and the keys they take."""
    alias = resolve_alias(model or "11b") or "11b"
    live = []
    for name in AUTO_ORDER:
        spec = PROVIDERS[name]
        if spec.key_envs and status(name, alias).live:
            keys = " + ".join((spec.key_envs[0], *spec.account_envs[:1]))
            live.append(f"{name} ({keys})")
    why = f" ({'; '.join(skipped)})" if skipped else ""
    return ConfigError(
        f"no provider configured{why}; routes that serve the model: {', '.join(live)}",
        hint="set one of those variables or run `llamavis keys set PROVIDER`; "
             "-P transformers runs the model in this process; `llamavis doctor` checks them all")


def _route(spec: ProviderSpec, model: str | None, base_url: str | None, api_key: str | None,
           require_key: bool, stored: Mapping[str, str]) -> Route:
    """One provider's route; a ConfigError names everything missing (key and endpoint)."""
    missing: list[ConfigError] = []
    key = endpoint = None
    try:
        key = find_key(spec, api_key, required=require_key, stored=stored)
    except ConfigError as exc:
        missing.append(exc)
    try:  # --base-url, then LLAMAVIS_<PROVIDER>_BASE_URL, then the provider's default
        endpoint = resolve_base_url(spec, base_url)
    except ConfigError as exc:
        missing.append(exc)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        raise ConfigError(" and ".join(e.message for e in missing),
                          hint="; ".join(e.hint for e in missing if e.hint))
    assert endpoint is not None
    return Route(spec, spec.model_id(model), endpoint, key)


def _local_or_configured(stored: Mapping[str, str]) -> ProviderSpec:
    """--base-url without a provider: the first configured provider's wire, else local."""
    return next((PROVIDERS[n] for n in AUTO_ORDER if _has_key(PROVIDERS[n], stored)),
                PROVIDERS["local"])


def _has_key(spec: ProviderSpec, stored: Mapping[str, str]) -> bool:
    """Whether a provider that takes a key has one set (environment or keys file)."""
    return bool(spec.key_envs) and bool(env_key(spec) or stored.get(spec.name))


def _fallbacks(first: Route, entries: Sequence[str], note: Callable[[str], None],
               stored: Mapping[str, str]) -> list[Route]:
    """--fallback's routes, each with its own key and endpoint (never --base-url)."""
    routes = []
    for entry in parse_routes(entries):
        spec = get_provider(entry.provider)
        try:
            alias = entry.model or _alias_of(first.model_id) or first.model_id
            routes.append(_route(spec, alias, None, None, True, stored))
        except (ConfigError, UsageError) as exc:
            note(f"fallback {spec.name} skipped: {exc}")
    seen = {(first.spec.name, first.model_id, first.base_url)}
    unique = []
    for route in routes:
        key = (route.spec.name, route.model_id, route.base_url)
        if key not in seen:
            seen.add(key)
            unique.append(route)
    return unique


@dataclass(frozen=True)
class RouteSpec:
    """One --fallback (or --routes) entry: a provider, and a model (None: the run's model)."""

    provider: str
    model: str | None = None


def parse_routes(value: str | Sequence[str] | None) -> list[RouteSpec]:
    """'deepinfra,cloudflare:11b' (or a list of such) -> RouteSpecs; UsageError if malformed."""
    items = [value] if isinstance(value, str) else list(value or [])
    out = []
    for item in (part.strip() for text in items for part in text.split(",")):
        if not item:
            continue
        provider, _, model = item.partition(":")
        if not provider.strip():
            raise UsageError(f"--fallback: {item!r} names no provider", hint="ROUTE is provider[:model]")
        out.append(RouteSpec(get_provider(provider).name, model.strip() or None))
    return out


def _alias_of(model_id: str) -> str | None:
    """The alias (11b, 90b, scout, maverick) some provider uses ``model_id`` for."""
    return next(filter(None, (spec.alias_of(model_id) for spec in PROVIDERS.values())), None)
