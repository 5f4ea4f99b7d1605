"""The one core that the command line, the Python API and Roboflow runs all run on.

A ``Session`` holds what a run (or a ``llamavis.Client``) shares: the ``RunOptions``, the
task configs resolved so far (by their call arguments), the provider route and key
(resolved once), the result cache and the clients. It is the one composition root:
``Session.config`` is the one caller of ``run.config.build_config``, ``Session.run`` and
``Session.dry_run`` the one place where config, cache, runner and batch are wired
together. ``llamavis`` commands, their ``--dry-run``, ``llamavis.Client`` and Roboflow
steps (``Session.derive``) go through it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

from llamavis.providers.resolve import Route, RoutePlan
from llamavis.run.config import TaskConfig
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.run.protocol import Source, TaskRunner
from llamavis.run.stdin import read_once
from llamavis.types import Result

if TYPE_CHECKING:
    import httpx

    from llamavis.backends.protocol import ChatBackend
    from llamavis.errors import LlamavisError
    from llamavis.run.batch import BatchSummary, ProgressEvent
    from llamavis.run.clients import Sleep
    from llamavis.run.dryrun import DryRun
    from llamavis.store.cache import ResultCache

__all__ = ["RunOptions", "Session", "TaskArgs", "run"]

RunOne = Callable[[TaskRunner, Source], Awaitable[Result]]
RunnerFactory = Callable[..., TaskRunner]  # Runner's keywords -> a runner (Roboflow's steps)


class Session:
    """What one run, or one Client, shares; see the module docstring.

    Nothing here touches the network until ``run``; ``config`` raises the usage and
    configuration errors up front. ``sleep`` and ``transport`` reach every client (tests).
    """

    def __init__(
        self,
        options: RunOptions | None = None,
        *,
        stdin: BinaryIO | None = None,
        debug: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,  # cache warnings, route notes
        require_key: bool = True,
        sleep: Sleep | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        environment: bool = True,
    ) -> None:
        self.options = options or RunOptions()
        self.environment = environment  # LLAMAVIS_PROVIDER/_MODEL/_BASE_URL fill what is unset
        # read once, its bytes given to every reader: a sidecar's name needs them too
        self.stdin = read_once(stdin)
        self.debug, self.on_warning = debug, on_warning
        self.require_key = require_key
        self._sleep, self._transport = sleep, transport
        self._configs: dict[str, TaskConfig] = {}
        self._plan: RoutePlan | None = None
        self._client: ChatBackend | None = None
        self._cache: ResultCache | None = None
        self.parent: Session | None = None
        self._children: list[Session] = []
        self._routed: dict[int, TaskRunner] = {}  # --fallback: a FallbackRunner per config

    def derive(self, options: RunOptions) -> Session:
        """A session for other options (a Roboflow step's route and model) that shares this
        one's cache, standard input and hooks; closed with it."""
        child = Session(options, stdin=self.stdin, debug=self.debug, on_warning=self.on_warning,
                        require_key=self.require_key, sleep=self._sleep,
                        transport=self._transport)
        child.parent = self
        self._children.append(child)
        return child

    def routes(self) -> RoutePlan:
        """Whom this session asks: the route resolver's plan, resolved once.

        The one caller of ``providers.resolve.resolve_routes``: runs, their dry runs, fallback,
        the default failover, ``doctor``, ``agree`` and ``models`` all get routes here.
        """
        if self._plan is None:
            from llamavis.providers.resolve import RouteRequest, resolve_routes

            o = self.options
            self._plan = resolve_routes(RouteRequest(
                provider=o.provider, model=o.model, base_url=o.base_url, api_key=o.api_key,
                fallback=o.routes(), failover=o.failover, require_key=self.require_key,
                environment=self.environment))
            for note in self._plan.skipped:
                (self.on_warning or _log_note)(note)
        return self._plan

    def route(self) -> Route:
        """The route asked first."""
        return self.routes().first

    def config(self, args: TaskArgs) -> TaskConfig:
        """The TaskConfig for these arguments; resolved once, then reused."""
        key = args.key()
        cfg = self._configs.get(key)
        if cfg is None:
            from llamavis.run import config as settings  # by module: tests may replace it

            cfg = settings.build_config(args, self.options, self.route)
            self._configs[key] = cfg
        return cfg

    def concurrency(self, cfg: TaskConfig) -> int:
        """Requests in flight: the option, else 4 (two batches' worth for -P transformers)."""
        if self.options.concurrency is not None:
            return self.options.concurrency
        from llamavis.engine.options import default_concurrency

        return default_concurrency(cfg.provider.wire, cfg.engine)

    @property
    def cache(self) -> ResultCache | None:
        """The result cache (opened on first use), or None when the options turn it off."""
        if not self.options.cache:
            return None
        if self.parent is not None:
            return self.parent.cache
        if self._cache is None:
            from llamavis.store.cache import ResultCache

            self._cache = ResultCache(on_warning=self.on_warning)
        return self._cache

    def client(self, cfg: TaskConfig) -> ChatBackend:
        """The one client of this session (every config shares its route)."""
        if self._client is None:
            from llamavis.run.clients import open_client

            self._client = open_client(cfg, concurrency=self.concurrency(cfg), debug=self.debug,
                                       sleep=self._sleep, transport=self._transport)
        return self._client

    def identify(self, args: TaskArgs, source: Any) -> tuple[str, str]:
        """(sha256 of the source's bytes, the fingerprint of the request it would be asked
        with) — reads the source; blocking. Raises the ImageError a run would report."""
        from llamavis.run.runner import Runner

        cfg = self.config(args)
        runner = Runner(cfg, cache=None, client=self.client(cfg), stdin=self.stdin,
                        debug=self.debug)
        data = runner.read(source)
        return hashlib.sha256(data).hexdigest(), runner.cache_key(data)

    def runner(self, cfg: TaskConfig, *, make: RunnerFactory | None = None) -> TaskRunner:
        """A runner for ``cfg``, made of several when --captions N or --tiles ask (run/composite)."""
        from llamavis.run.composite import compose

        return compose(cfg, lambda c: self._one_runner(c, make),  # type: ignore[no-any-return]
                       captions=self.options.captions, tiles=self.options.tiles)

    def _one_runner(self, cfg: TaskConfig, make: RunnerFactory | None = None) -> TaskRunner:
        """The runner for ``cfg`` over this session's cache and client.

        With routes to move on to (``--fallback``'s, or the default failover's) it is a
        FallbackRunner (each route has its own client), made once per config and closed
        by ``aclose``. ``make`` builds each route's runner from Runner's keywords
        (Roboflow shares one image between its steps).
        """
        if self.routes().then:
            return self._fallback_runner(cfg, make)
        from llamavis.run.runner import Runner

        return (make or Runner)(cfg, cache=self.cache, client=self.client(cfg), stdin=self.stdin,
                                debug=self.debug)

    def _fallback_runner(self, cfg: TaskConfig, make: RunnerFactory | None) -> TaskRunner:
        runner = self._routed.get(id(cfg))
        if runner is None:
            from llamavis.run.fallback import make_runner

            runner = self._routed[id(cfg)] = make_runner(
                cfg, self.routes().then, on_note=self.on_warning or _log_note,
                cache=self.cache, stdin=self.stdin, concurrency=self.concurrency(cfg),
                debug=self.debug, transport=self._transport, sleep=self._sleep,
                runner_class=make)
        return runner

    async def run(
        self,
        args: TaskArgs,
        sources: Iterable[Source],
        *,
        on_result: Callable[[Result], None] | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        total: int | None = None,
        run_one: RunOne | None = None,
        ordered: bool | None = None,
        grace: float = 0.0,
        on_interrupt: Callable[[int, float], None] | None = None,
    ) -> BatchSummary:
        """Every source through the task; results to ``on_result``; the BatchSummary.

        ``run_one(runner, source)`` may wrap each image (the CLI streams a single answer
        onto the terminal through it). Raises what ``llamavis.run.batch.run_batch`` raises.
        """
        cfg = self.config(args)
        runner = self.runner(cfg)

        async def one(source: Source) -> Result:
            if run_one is not None:
                return await run_one(runner, source)
            return await runner.run(source)

        return await self.batch(
            sources, one, concurrency=self.concurrency(cfg), on_result=on_result,
            ordered=ordered, on_progress=on_progress, total=total, task=cfg.task,
            # past --max-cost a cached answer is still given: it costs nothing
            cached=runner.cached if self.cache is not None else None,
            grace=grace, on_interrupt=on_interrupt,  # Ctrl-C: keep the answers in flight
        )

    async def batch(self, sources: Iterable[Source], one: Callable[[Source], Awaitable[Result]],
                    *, concurrency: int, task: str, ordered: bool | None = None,
                    **kwargs: Any) -> BatchSummary:
        """``one`` over every source, with --ordered and --max-cost (run_batch's ``kwargs``)."""
        from llamavis.run.batch import run_batch

        o = self.options
        return await run_batch(sources, one, concurrency=concurrency, task=task,
                               ordered=o.ordered if ordered is None else ordered,
                               max_cost=o.max_cost, **kwargs)

    async def dry_run(self, args: TaskArgs, sources: Iterable[Source], *,
                      on_error: Callable[[str, LlamavisError], None]) -> DryRun:
        """The requests a run would send (the routes it would ask, fallbacks too), how
        many images the cache answers and the estimated cost; sends nothing."""
        from llamavis.run.dryrun import plan_requests

        cfg = self.config(args)
        runner = self.runner(cfg)
        return await plan_requests(cfg, runner, sources, cached=self.cache is not None,
                                   on_error=on_error)

    async def aclose(self) -> None:
        """Close the clients, the derived sessions and the result cache (safe twice)."""
        client, self._client = self._client, None
        cache, self._cache = self._cache, None
        routed, self._routed = list(self._routed.values()), {}
        children, self._children = self._children, []
        try:
            for child in children:
                await child.aclose()
            for runner in routed:
                await runner.aclose()
            if client is not None:
                await client.aclose()
        finally:
            if cache is not None:
                cache.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _log_note(message: str) -> None:
    """Where the API's notes go (a route dropped): the "llamavis" logger."""
    import logging

    logging.getLogger("llamavis").warning(message)


async def run(
    args: TaskArgs,
    sources: Iterable[Source],
    options: RunOptions | None = None,
    *,
    on_result: Callable[[Result], None] | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> BatchSummary:
    """One batch from scratch: a Session for ``options``, run once, closed; the summary."""
    async with Session(options) as session:
        return await session.run(args, sources, on_result=on_result, on_progress=on_progress)
