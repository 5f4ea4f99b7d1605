"""The one error classifier: what a failed request says about its route.

Failover (``run.fallback``) asks "is this the route's fault, so that another route may
answer?"; ``doctor`` asks "what is this route's verdict?". Both are the same reading of
the same errors, made here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamavis.errors import (
    AuthError,
    ConfigError,
    LlamavisError,
    ModelUnavailable,
    NetworkError,
    ProviderError,
    ProviderTimeout,
)


@dataclass(frozen=True)
class RouteFailure:
    """How one failed request reflects on its route."""

    verdict: str  # doctor's: dead, blocked, not_configured, unreachable, unknown
    why: str | None  # the route's fault, in a few words; None when it is the image's own
    detail: str  # the provider's words, with what to do where that is known


def classify(exc: BaseException) -> RouteFailure:
    """The route's verdict on ``exc``, and whether another route may do better."""
    message = exc.message if isinstance(exc, LlamavisError) else str(exc)
    if isinstance(exc, NetworkError):
        return RouteFailure("unreachable", "is unreachable", message)
    if isinstance(exc, ProviderTimeout) and exc.status is None:  # may be this image's own
        return RouteFailure("unreachable", None, message)
    if isinstance(exc, ModelUnavailable):
        return RouteFailure("dead", "does not serve the model", message)
    if isinstance(exc, AuthError):
        return RouteFailure("not_configured", "rejected the key", f"the key was rejected: {message}")
    if isinstance(exc, ConfigError):  # a licence to accept (Cloudflare's 5016)
        return RouteFailure("blocked", "needs the account to act first", str(exc))
    if isinstance(exc, ProviderError) and exc.status == 402:
        return RouteFailure("blocked", "is out of credits", f"add credits: {message}")
    if isinstance(exc, ProviderError) and (exc.status or 0) >= 500:
        return RouteFailure("unknown", "kept failing with server errors", message)
    return RouteFailure("unknown", None, message)
