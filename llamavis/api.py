"""The Python API: the commands are thin over the same core (llamavis.core)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .core import Engine, RunOptions, TaskArgs
from .types import Result

T = TypeVar("T")


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run, or, where an event loop already runs in this thread (a Jupyter
    notebook, an async web handler), asyncio.run on a worker thread: the caller asked
    for a blocking call, and asyncio.run cannot nest."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work())
    with ThreadPoolExecutor(1, thread_name_prefix="llamavis") as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


async def analyze_async(image: str, task: str = "caption", *,
                        on_delta: Callable[[str], None] | None = None, **options: Any) -> Result:
    """Ask about one image from async code; options as for `analyze`."""
    run_options, task_args = RunOptions.split(options)
    found: list[Result] = []

    async def streamed(runner: Any, source: Any) -> Result:
        result: Result = await runner.run(source, on_delta=on_delta)
        return result

    async with Engine(run_options) as engine:
        await engine.run(TaskArgs(task, **task_args), [str(image)], on_result=found.append,
                         run_one=streamed)
    return found[0]


def analyze(image: str, task: str = "caption", **options: Any) -> Result:
    """Ask Llama 3.2 Vision about one image and return a Result (errors in Result.error).

    Options: question, classes, prompt, schema (a JSON Schema dict, or what --schema
    takes: a file path, inline JSON or 'name, total float: amount'), template,
    variables, provider, model, base_url, api_key, max_tokens, temperature, seed,
    max_retries, timeout, cache (on by default, as on the command line). A missing
    key or a rejected one raises ConfigError/AuthError; problems with the image or
    answer do not. Inside a running event loop (a notebook) it still blocks and works;
    from async code, ``await analyze_async(...)`` instead keeps the loop free.
    """
    return _run(lambda: analyze_async(image, task, **options))


def analyze_many(images: Iterable[str], task: str = "caption", *,
                 on_result: Callable[[Result], None] | None = None,
                 **options: Any) -> list[Result]:
    """Ask about many images concurrently; returns the results in input order."""
    run_options, task_args = RunOptions.split({**options, "ordered": True})
    results: list[Result] = []

    def collect(result: Result) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    async def main() -> None:
        async with Engine(run_options) as engine:
            await engine.run(TaskArgs(task, **task_args), [str(i) for i in images],
                             on_result=collect)

    _run(main)
    return results
