"""llamavis: ask Llama 3.2 Vision about images.

    >>> import llamavis
    >>> with llamavis.Client(provider="openrouter", concurrency=8) as client:
    ...     client.analyze("photo.jpg", task="caption").output
    ...     for result in client.analyze_many(paths, task="classify", classes=["cat", "dog"]):
    ...         print(result.image, result.output)
    >>> llamavis.analyze("photo.jpg", task="ocr").output  # one-shot

The command line runs on the same core (llamavis.run.session.Session). The API is importable without
the CLI; heavy modules (httpx, Pillow, pydantic) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llamavis.__about__ import __version__

if TYPE_CHECKING:
    from llamavis.api import (
        Client,
        analyze,
        analyze_async,
        analyze_many,
    )
    from llamavis.errors import (
        AuthError,
        ConfigError,
        ImageError,
        InvalidOutputError,
        LlamavisError,
        ProviderError,
        RefusedError,
        UsageError,
    )
    from llamavis.run.options import RunOptions
    from llamavis.tasks.specs import TaskSpec
    from llamavis.types import Result, Usage

__all__ = [
    "AuthError",
    "Client",
    "ConfigError",
    "ImageError",
    "InvalidOutputError",
    "LlamavisError",
    "ProviderError",
    "RefusedError",
    "Result",
    "RunOptions",
    "TaskSpec",
    "Usage",
    "UsageError",
    "__version__",
    "analyze",
    "analyze_async",
    "analyze_many",
]

_LAZY = {
    "Client": "api", "analyze": "api", "analyze_async": "api", "analyze_many": "api",
    "RunOptions": "run.options", "TaskSpec": "tasks.specs",
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


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
