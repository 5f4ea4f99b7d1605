"""llamavis: ask Llama 3.2 Vision about images.

    >>> import llamavis
    >>> llamavis.analyze("photo.jpg", task="caption", provider="openrouter").output

The API is importable without the CLI; heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .__about__ import __version__

if TYPE_CHECKING:
    from .api import analyze, analyze_async, analyze_many
    from .errors import (
        AuthError,
        ConfigError,
        ImageError,
        InvalidOutputError,
        LlamavisError,
        ProviderError,
        RefusedError,
        UsageError,
    )
    from .types import Result, Usage

__all__ = [
    "AuthError",
    "ConfigError",
    "ImageError",
    "InvalidOutputError",
    "LlamavisError",
    "ProviderError",
    "RefusedError",
    "Result",
    "Usage",
    "UsageError",
    "__version__",
    "analyze",
    "analyze_async",
    "analyze_many",
]

_LAZY = {
    "analyze": "api", "analyze_async": "api", "analyze_many": "api",
    "Result": "types", "Usage": "types",
    "AuthError": "errors", "ConfigError": "errors", "ImageError": "errors",
    "InvalidOutputError": "errors", "LlamavisError": "errors", "ProviderError": "errors",
    "RefusedError": "errors", "UsageError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'llamavis' has no attribute {name!r}")
