"""The Python API: ``llamavis.Client`` and the one-shot ``analyze`` functions.

A Client is a thin shell over ``llamavis.run.session.Session``, the core the commands run on. It
owns an event loop on a thread of its own, where its HTTP pool lives: blocking calls
(``analyze``), async ones (``await aanalyze``) and calls made inside a running event loop
(a Jupyter notebook) all run there, so the pool is reused by every call, whatever the
caller's loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from llamavis.images.inputs import as_source, as_sources
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.run.protocol import Source, TaskRunner
from llamavis.run.session import Session
from llamavis.types import Result

T = TypeVar("T")
_DONE = object()


class Client:
    """A reusable connection to one provider: config, key, templates and HTTP pool, once.

    ``Client(**options)`` takes the command line's options by their Python names
    (``provider``, ``model``, ``base_url``, ``api_key``, ``template``, ``variables``,
    ``max_tokens``, ``temperature``, ``seed``, ``timeout``, ``max_retries``,
    ``concurrency``, ``cache`` (on by default), ``max_cost``, ``ordered``, ``fallback``,
    ``engine`` (-P transformers: ``{"device", "dtype", "load_in_4bit", "batch_size"}``)).
    Use it as a context manager (``with`` or ``async with``), or call ``close()``.

    An image is a path, a URL, ``bytes`` or a ``PIL.Image.Image``. Per-image problems
    end up in ``Result.error``; a missing or rejected key raises ``ConfigError``/``AuthError``
    and a bad option ``UsageError``.
    """

    def __init__(self, **options: Any) -> None:
        self.options = RunOptions(**options)
        self._session = Session(self.options)  # the config, key and template: on first use
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None  # stops a dropped Client's thread

    def __repr__(self) -> str:
        return f"Client(provider={self.options.provider!r}, model={self.options.model!r})"

    # -- one image -----------------------------------------------------------

    def analyze(self, image: Any, task: str = "caption", *, id: str | None = None,
                on_delta: Callable[[str], None] | None = None, **task_args: Any) -> Result:
        """Ask about one image and wait for its Result.

        ``task_args``: ``question`` (vqa), ``classes`` (classify, multi-classify),
        ``prompt`` (prompt), ``schema`` (structured: a dict, or what --schema takes).
        ``id`` names the image in ``Result.image``; ``on_delta`` gets a text answer's
        pieces as they arrive (on the Client's thread).
        """
        return self._wait(self._one(image, TaskArgs(task, **task_args), id, on_delta))

    async def aanalyze(self, image: Any, task: str = "caption", *, id: str | None = None,
                       on_delta: Callable[[str], None] | None = None,
                       **task_args: Any) -> Result:
        """``analyze`` for async code: awaits without blocking the caller's event loop."""
        return await self._await(self._one(image, TaskArgs(task, **task_args), id, on_delta))

    def check(self, task: str = "caption", **task_args: Any) -> None:
        """Raise now the UsageError or ConfigError a call with these arguments would meet
        (unknown task, missing classes, bad schema, no key); sends nothing."""
        self._session.config(TaskArgs(task, **task_args))

    # -- many images ---------------------------------------------------------

    def analyze_many(self, images: Iterable[Any], task: str = "caption", *,
                     ordered: bool = False, **task_args: Any) -> Iterator[Result]:
        """Yield one Result per image as each finishes (``ordered=True``: in input order).

        ``images`` may hold ``(id, image)`` pairs; it is read lazily, so a generator over
        a million paths is fine. Up to ``concurrency`` requests are in flight.
        """
        args = TaskArgs(task, **task_args)
        results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        future = self._submit(self._many(images, args, ordered, results.put))
        future.add_done_callback(lambda _: results.put(_DONE))
        try:
            while (item := results.get()) is not _DONE:
                yield item
            future.result()  # a batch-ending error (a rejected key) after what finished
        finally:
            future.cancel()  # the caller stopped early: stop asking

    async def aanalyze_many(self, images: Iterable[Any], task: str = "caption", *,
                            ordered: bool = False, **task_args: Any) -> AsyncIterator[Result]:
        """``analyze_many`` for async code: ``async for result in client.aanalyze_many(...)``."""
        args = TaskArgs(task, **task_args)
        loop = asyncio.get_running_loop()
        results: asyncio.Queue[Any] = asyncio.Queue()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(results.put_nowait, item)

        future = self._submit(self._many(images, args, ordered, put))
        future.add_done_callback(lambda _: put(_DONE))
        try:
            while (item := await results.get()) is not _DONE:
                yield item
            await asyncio.wrap_future(future)
        finally:
            future.cancel()

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP pool and the cache, and stop the Client's thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._closed, self._loop, self._thread = True, None, None
        if loop is None or thread is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            asyncio.run_coroutine_threadsafe(self._session.aclose(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    async def aclose(self) -> None:
        """``close`` for async code."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- on the Client's own loop ----------------------------------------------

    async def _one(self, image: Any, args: TaskArgs, id: str | None,
                   on_delta: Callable[[str], None] | None) -> Result:
        found: list[Result] = []

        async def streamed(runner: TaskRunner, source: Source) -> Result:
            return await runner.run(source, on_delta=on_delta)

        await self._session.run(args, [as_source(image, id)], on_result=found.append,
                               run_one=streamed if on_delta is not None else None)
        return found[0]

    async def _many(self, images: Iterable[Any], args: TaskArgs, ordered: bool,
                    put: Callable[[Result], None]) -> None:
        if isinstance(images, (str, bytes)):
            raise TypeError("analyze_many takes a list (or any iterable) of images")
        await self._session.run(args, as_sources(images), on_result=put, ordered=ordered)

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("this llamavis.Client is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="llamavis-client",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._finalizer = weakref.finalize(self, _stop, loop)
            return self._loop

    def _submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        try:
            loop = self._start()
        except BaseException:
            work.close()
            raise
        return asyncio.run_coroutine_threadsafe(work, loop)

    def _wait(self, work: Coroutine[Any, Any, T]) -> T:
        future = self._submit(work)
        try:
            return future.result()
        except BaseException:  # Ctrl-C: stop the request too, not only the waiting
            future.cancel()
            raise

    async def _await(self, work: Coroutine[Any, Any, T]) -> T:
        future = self._submit(work)
        try:
            return await asyncio.wrap_future(future)
        finally:
            future.cancel()


def analyze(image: Any, task: str = "caption", **options: Any) -> Result:
    """Ask Llama 3.2 Vision about one image and return a Result (errors in Result.error).

    ``options``: the task's arguments (``question``, ``classes``, ``prompt``, ``schema``)
    and any ``Client`` option (``provider``, ``model``, ``cache``, ...). The cache is on
    by default, as on the command line; ``cache=False`` turns it off. Works inside a
    running event loop (a notebook); from async code ``await analyze_async(...)``.
    A missing or rejected key raises ConfigError/AuthError.
    """
    run_options, task_args = RunOptions.split(options)
    with _client(run_options) as client:
        return client.analyze(image, task, **task_args)


async def analyze_async(image: Any, task: str = "caption", **options: Any) -> Result:
    """``analyze`` for async code; ``on_delta=`` gets a text answer as it arrives."""
    run_options, task_args = RunOptions.split(options)
    async with _client(run_options) as client:
        return await client.aanalyze(image, task, **task_args)


def analyze_many(images: Iterable[Any], task: str = "caption", *,
                 on_result: Callable[[Result], None] | None = None,
                 **options: Any) -> list[Result]:
    """Ask about many images concurrently; the Results in input order.

    ``on_result`` is called with each Result as it is delivered. Options as for
    ``analyze`` (``concurrency`` defaults to 4).
    """
    run_options, task_args = RunOptions.split(options)
    results: list[Result] = []
    with _client(run_options) as client:
        for result in client.analyze_many(images, task, ordered=True, **task_args):
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def _client(options: RunOptions) -> Client:
    return Client(**options.as_kwargs())


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    """A Client dropped without close(): at least stop its thread."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
