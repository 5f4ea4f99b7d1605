"""The Python API: the commands are thin over these functions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from .settings import build_config
from .types import Result


async def analyze_async(image: str, task: str = "caption", *, cache: bool = False,
                        on_delta: Callable[[str], None] | None = None, **options: Any) -> Result:
    """Ask about one image from async code; options as for `analyze`."""
    from .cache import ResultCache
    from .tasks import Runner

    cfg = build_config(task, **options)
    store = ResultCache() if cache else None
    async with Runner(cfg, cache=store) as runner:
        try:
            return await runner.run(str(image), on_delta=on_delta)
        finally:
            if store is not None:
                store.close()


def analyze(image: str, task: str = "caption", **options: Any) -> Result:
    """Ask Llama 3.2 Vision about one image and return a Result (errors in Result.error).

    Options: question, classes, prompt, schema (a JSON Schema dict), template,
    variables, provider, model, base_url, api_key, max_tokens, temperature, seed,
    max_retries, timeout, cache (bool, off by default). A missing key or a rejected
    one raises ConfigError/AuthError; problems with the image or answer do not.
    """
    return asyncio.run(analyze_async(image, task, **options))


def analyze_many(images: Iterable[str], task: str = "caption", *, concurrency: int = 4,
                 cache: bool = True, on_result: Callable[[Result], None] | None = None,
                 **options: Any) -> list[Result]:
    """Ask about many images concurrently; returns the results in input order."""
    from .batch import run_batch
    from .cache import ResultCache
    from .tasks import Runner

    cfg = build_config(task, **options)
    results: list[Result] = []

    def collect(result: Result) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    async def main() -> None:
        store = ResultCache() if cache else None
        async with Runner(cfg, cache=store, concurrency=concurrency) as runner:
            try:
                await run_batch([str(i) for i in images], runner.run, concurrency=concurrency,
                                on_result=collect, ordered=True)
            finally:
                if store is not None:
                    store.close()

    asyncio.run(main())
    return results
