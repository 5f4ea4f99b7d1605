"""The one core that the command line and the Python API both run on.

``RunOptions`` is everything a run takes besides the task and the images, typed;
``TaskArgs`` is the task and its own arguments. An ``Engine`` holds what a run (or a
``llamavis.Client``) shares: the options, the task configs resolved so far (by their call
arguments), the provider route and key (resolved once), the result cache and one HTTP
client. ``Engine.run`` is the single place where config, cache, runner and batch are
wired together: ``llamavis`` commands call it, and so does ``llamavis.Client``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, BinaryIO

from llamavis.run.config import Route, TaskConfig
from llamavis.types import Result

RunOne = Callable[[Any, Any], Awaitable[Result]]  # (runner, source) -> Result


@dataclass(frozen=True)
class RunOptions:
    """What a run takes besides the task and the images: the CLI's options, typed.

    The defaults are the command line's: the cache is on, 4 requests in flight (two
    batches' worth for the in-process engine), 2 retries, 120 s per request.
    """

    provider: str | None = None  # None: LLAMAVIS_PROVIDER, else the first with a key set
    model: str | None = None  # an alias (11b, 90b) or a provider's model id
    base_url: str | None = None  # None: LLAMAVIS_BASE_URL, else the provider's endpoint
    api_key: str | None = field(default=None, repr=False)  # None: environment, keys file
    template: str | None = None  # a template name or .toml path (default: the task's)
    variables: Mapping[str, str] = field(default_factory=dict)  # template $variables
    max_tokens: int | None = None  # None: the template's
    temperature: float | None = None  # None: the template's
    seed: int | None = None
    timeout: float = 120.0  # seconds allowed for one request
    max_retries: int = 2  # retries of a failed request, and re-asks of an invalid answer
    concurrency: int | None = None  # requests in flight; None: 4 (in-process: 2 batches)
    cache: bool = True  # read and write the on-disk result cache
    max_cost: float | None = None  # USD: start no new request once the batch would pass it
    ordered: bool = False  # deliver results in input order (else as they finish)
    # -P transformers: device, dtype, load_in_4bit, batch_size (llamavis.engine.options)
    engine: Mapping[str, Any] = field(default_factory=dict)
    # routes to ask when the provider cannot serve an image: "deepinfra,cloudflare:11b" or a list
    fallback: str | Sequence[str] | None = None
    captions: int = 1  # answers per image, each its own request and seed (llamavis.run.captions)
    tiles: str | int | None = None  # ocr: "auto" or N strips per page (llamavis.run.tiled)

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[RunOptions, dict[str, Any]]:
        """(the RunOptions among ``kwargs``, the rest) — for ``analyze(..., **everything)``."""
        names = cls.names()
        return (cls(**{k: v for k, v in kwargs.items() if k in names}),
                {k: v for k, v in kwargs.items() if k not in names})


@dataclass(frozen=True)
class TaskArgs:
    """One task and its own arguments: what may differ from call to call on one Client."""

    task: str = "caption"
    question: str | None = None
    classes: Any = None  # a list of classes, or "a,b,c" as --classes takes it
    prompt: str | None = None
    schema: Any = None  # a JSON Schema dict, or what --schema takes (path, JSON, concise)

    def key(self) -> str:
        """A canonical text of the arguments: equal calls share one resolved config."""
        return json.dumps([self.task, self.question, self.classes, self.prompt, self.schema],
                          sort_keys=True, default=str)


class Engine:
    """What one run, or one Client, shares; see the module docstring.

    Nothing here touches the network until ``run``; ``config`` raises the usage and
    configuration errors up front.
    """

    def __init__(
        self,
        options: RunOptions | None = None,
        *,
        stdin: BinaryIO | None = None,
        debug: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,  # cache warnings, route notes
        require_key: bool = True,
        **client_args: Any,  # sleep=, transport= for tests; passed to the client
    ) -> None:
        self.options = options or RunOptions()
        self.stdin, self.debug, self.on_warning = stdin, debug, on_warning
        self.require_key = require_key
        self._client_args = client_args
        self._configs: dict[str, TaskConfig] = {}
        self._route: Route | None = None
        self._client: Any = None
        self._cache: Any = None
        self._routed: dict[int, Any] = {}  # --fallback: a FallbackRunner per config, kept

    def config(self, args: TaskArgs) -> TaskConfig:
        """The TaskConfig for these arguments; resolved once, then reused."""
        key = args.key()
        cfg = self._configs.get(key)
        if cfg is None:
            from llamavis.run import (
                config as settings,  # by module: a test may replace settings.build_config
            )

            o = self.options
            cfg = settings.build_config(
                args.task, question=args.question, classes=args.classes, prompt=args.prompt,
                schema=args.schema, template=o.template, variables=dict(o.variables),
                provider=o.provider, model=o.model, base_url=o.base_url, api_key=o.api_key,
                max_tokens=o.max_tokens, temperature=o.temperature, seed=o.seed,
                max_retries=o.max_retries, timeout=o.timeout, require_key=self.require_key,
                engine=dict(o.engine), route=self._route,
            )
            self._route = cfg.route
            self._configs[key] = cfg
        return cfg

    def concurrency(self, cfg: TaskConfig) -> int:
        """Requests in flight: the option, else 4 (two batches' worth for -P transformers)."""
        if self.options.concurrency is not None:
            return self.options.concurrency
        from llamavis.engine.options import default_concurrency

        return default_concurrency(cfg.spec.wire, cfg.engine)

    @property
    def cache(self) -> Any:
        """The result cache (opened on first use), or None when the options turn it off."""
        if self._cache is None and self.options.cache:
            from llamavis.store.cache import ResultCache

            self._cache = ResultCache(on_warning=self.on_warning)
        return self._cache

    def client(self, cfg: TaskConfig) -> Any:
        """The one HTTP client of this engine (every config shares its route)."""
        if self._client is None:
            from llamavis.run.runner import open_client

            self._client = open_client(cfg, concurrency=self.concurrency(cfg),
                                       debug=self.debug, **self._client_args)
        return self._client

    def runner(self, cfg: TaskConfig, *, fallback: bool = True) -> Any:
        """A Runner for ``cfg``, made of several when --captions N or --tiles ask (run/composite)."""
        from llamavis.run.composite import compose

        return compose(cfg, lambda c: self._one_runner(c, fallback=fallback),
                       captions=self.options.captions, tiles=self.options.tiles)

    def _one_runner(self, cfg: TaskConfig, *, fallback: bool = True) -> Any:
        """A Runner for ``cfg`` over this engine's cache and client.

        With ``fallback`` routes it is llamavis.run.fallback' FallbackRunner (the Runner's face;
        each route has its own client), made once per config and closed by ``aclose``;
        ``fallback=False`` gives the first route's own Runner (a dry run shows that one).
        """
        if fallback and self.options.fallback:
            return self._fallback_runner(cfg)
        from llamavis.run.runner import Runner

        return Runner(cfg, cache=self.cache, client=self.client(cfg), stdin=self.stdin,
                      debug=self.debug)

    def _fallback_runner(self, cfg: TaskConfig) -> Any:
        runner = self._routed.get(id(cfg))
        if runner is None:
            from llamavis.run.fallback import make_runner

            routes = self.options.fallback
            runner = self._routed[id(cfg)] = make_runner(
                cfg, routes if isinstance(routes, str) else list(routes or ()),
                on_note=self.on_warning or _log_note, cache=self.cache, stdin=self.stdin,
                concurrency=self.concurrency(cfg), debug=self.debug, **self._client_args)
        return runner

    async def run(
        self,
        args: TaskArgs,
        sources: Iterable[Any],
        *,
        on_result: Callable[[Result], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        total: int | None = None,
        run_one: RunOne | None = None,
        ordered: bool | None = None,
    ) -> Any:
        """Every source through the task; results to ``on_result``; the BatchSummary.

        ``run_one(runner, source)`` may wrap each image (the CLI streams a single answer
        onto the terminal through it). Raises what ``llamavis.run.batch.run_batch`` raises.
        """
        from llamavis.run.batch import run_batch

        cfg = self.config(args)
        runner = self.runner(cfg)

        async def one(source: Any) -> Result:
            if run_one is not None:
                return await run_one(runner, source)
            result: Result = await runner.run(source)
            return result

        o = self.options
        return await run_batch(
            sources, one, concurrency=self.concurrency(cfg), on_result=on_result,
            ordered=o.ordered if ordered is None else ordered, max_cost=o.max_cost,
            on_progress=on_progress, total=total, task=cfg.task,
            # past --max-cost a cached answer is still given: it costs nothing
            cached=runner.cached if self.cache is not None else None,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients and the result cache (safe to call twice)."""
        client, self._client = self._client, None
        cache, self._cache = self._cache, None
        routed, self._routed = list(self._routed.values()), {}
        try:
            for runner in routed:
                await runner.aclose()
            if client is not None:
                await client.aclose()
        finally:
            if cache is not None:
                cache.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _log_note(message: str) -> None:
    """Where the API's notes go (a route dropped): the "llamavis" logger."""
    import logging

    logging.getLogger("llamavis").warning(message)


async def run(
    args: TaskArgs,
    sources: Iterable[Any],
    options: RunOptions | None = None,
    *,
    on_result: Callable[[Result], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> Any:
    """One batch from scratch: an Engine for ``options``, run once, closed; the summary."""
    async with Engine(options) as engine:
        return await engine.run(args, sources, on_result=on_result, on_progress=on_progress)
