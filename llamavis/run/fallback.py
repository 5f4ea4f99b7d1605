"""Failover: each image through a list of routes, moving on when a route cannot serve it.

A route is a provider and a model. The routes come from the route resolver
(``providers.resolve``): the one the user pinned and its ``--fallback`` routes, or, with
nothing pinned, every configured route, live first (the default failover). Each
route has its own Runner (so its own client, limiter and cache key). When a route fails
in a way another route can fix, it is dropped for the rest of the run at once, the image
is asked on the next live route, and one note says so. What counts as the route's fault
(``route_failure``): the model not served there, a server error after retries, the
endpoint unreachable, no credits (402), a key or licence the route rejects. Everything
else (a bad image, a refusal, an answer that never validates) is the image's own and
stays where it happened.

The seam is the client: each route's client is wrapped so that a route failure is raised
as ``RouteUnavailable``, a ConfigError, which ``tasks.Runner`` passes through untouched
(it only catches the image's own errors). Nothing here prints: notes go to ``on_note``.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO

from llamavis.errors import (
    ConfigError,
    LlamavisError,
)
from llamavis.run.clients import Sleep, open_client
from llamavis.run.config import TaskConfig
from llamavis.run.protocol import DeltaHook, ResetHook, Source, TaskRunner
from llamavis.run.stdin import read_once
from llamavis.types import Completion, JSONObject, Result, Usage

if TYPE_CHECKING:
    import httpx

    from llamavis.backends.protocol import ChatBackend, Payload, TextHook
    from llamavis.providers.resolve import Route
    from llamavis.store.cache import ResultCache

Note = Callable[[str], None]
# Usage and requests spent on routes that failed, for the image being asked (per task).
_SPENT: contextvars.ContextVar[list[Usage] | None] = contextvars.ContextVar("spent", default=None)


def route_failure(exc: BaseException) -> str | None:
    """Why ``exc`` means the route failed (another route may answer); None if the image's own."""
    from llamavis.providers.failures import classify

    return classify(exc).why


class RouteUnavailable(ConfigError):
    """A route failed in a way another route can fix; carries what it said."""

    def __init__(self, route: Lane, cause: LlamavisError, why: str) -> None:
        super().__init__(str(cause))
        self.route, self.cause, self.why = route, cause, why


class Lane:
    """A route's config, runner and fate within one run."""

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        self.name = f"{cfg.provider.name} {cfg.model_id}"
        self.runner: TaskRunner | None = None
        self.failure: RouteUnavailable | None = None


class _GuardedClient:
    """A route's client: route failures become RouteUnavailable; spending is counted."""

    def __init__(self, client: ChatBackend, route: Lane) -> None:
        self._client, self._route = client, route

    def request_for(self, payload: Payload) -> tuple[str, Payload]:
        return self._client.request_for(payload)

    def headers(self, *, redact: bool = False) -> dict[str, str]:
        return self._client.headers(redact=redact)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def chat(self, payload: Payload, *, on_delta: TextHook | None = None,
                   on_retry: TextHook | None = None) -> Completion:
        failure = self._route.failure
        if failure is not None:  # dropped while this image was on its way
            raise RouteUnavailable(self._route, failure.cause, failure.why)
        spent = _SPENT.get()
        if spent is not None:
            spent.append(Usage())  # one request asked, paid or not
        try:
            completion = await self._client.chat(payload, on_delta=on_delta, on_retry=on_retry)
        except LlamavisError as exc:
            why = route_failure(exc)
            if why is None:
                raise
            if spent is not None:  # its retries were requests sent for this image too
                spent.extend(Usage() for _ in range(exc.requests - 1))
            raise RouteUnavailable(self._route, exc, why) from exc
        if spent is not None:
            spent[-1] = completion.usage or Usage()
        return completion


class FallbackRunner:
    """A Runner's face (``run``, ``aclose``) over several routes, in order."""

    def __init__(self, routes: list[Lane], on_note: Note) -> None:
        self.routes = routes
        self.cfg = routes[0].cfg
        self._note = on_note

    def configs(self) -> list[TaskConfig]:
        return [route.cfg for route in self.routes if route.failure is None]

    async def dry_run(self, source: Source) -> JSONObject:
        """The request the first live route would be sent (the others only if it fails)."""
        return await self._live()[0].dry_run(source)

    def _live(self) -> list[TaskRunner]:
        return [r.runner for r in self.routes if r.failure is None and r.runner is not None]

    async def run(self, source: Source, *, on_delta: DeltaHook | None = None,
                  on_reset: ResetHook | None = None) -> Result:
        """Ask the first live route; on a route failure drop it and ask the next."""
        spent: list[Usage] = []
        token = _SPENT.set(spent)
        try:
            for route in self.routes:
                if route.failure is not None or route.runner is None:
                    continue
                done = len(spent)
                try:
                    result = await route.runner.run(source, on_delta=on_delta, on_reset=on_reset)
                except RouteUnavailable as exc:
                    self._drop(exc)
                    if on_reset is not None:
                        on_reset()  # a partial answer from the dropped route is not the answer
                    continue
                for usage in spent[:done]:  # what failed routes cost for this image
                    result.usage = result.usage + usage
                result.attempts += done
                return result
            return self._no_route(source, spent)
        finally:
            _SPENT.reset(token)

    async def cached(self, source: Source) -> Result | None:
        """A stored answer from any live route (each keys its own), sending nothing."""
        for runner in self._live():
            hit = await runner.cached(source)
            if hit is not None:
                return hit
        return None

    def _drop(self, exc: RouteUnavailable) -> None:
        route = exc.route
        if route.failure is not None:
            return  # another image already dropped it
        route.failure = exc
        left = [r.name for r in self.routes if r.failure is None]
        then = f"; asking {left[0]} instead" if left else "; no route left"
        self._note(f"{route.name} {exc.why}, dropped for the rest of the run: "
                   f"{exc.cause.message}{then}")

    def _no_route(self, source: Source, spent: list[Usage]) -> Result:
        """Every route is gone: a config failure everywhere stops the run, else this image fails."""
        causes = [r.failure.cause for r in self.routes if r.failure is not None]
        if all(isinstance(c, ConfigError) for c in causes):
            raise causes[0]
        first = self.routes[0]
        result = Result(image=str(source), task=self.cfg.task, provider=first.cfg.provider.name,
                        model=first.cfg.model_id, attempts=len(spent))
        for usage in spent:
            result.usage = result.usage + usage
        error = causes[0].to_dict()
        error["message"] = "no route could answer: " + "; ".join(
            f"{r.name}: {r.failure.cause.message}" for r in self.routes if r.failure is not None)
        result.error = error
        return result

    async def aclose(self) -> None:
        for route in self.routes:
            if route.runner is not None:
                await route.runner.aclose()

    async def __aenter__(self) -> FallbackRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def make_runner(cfg: TaskConfig, routes: Sequence[Route], *, on_note: Note,
                cache: ResultCache | None = None, stdin: BinaryIO | None = None,
                concurrency: int = 4, debug: Callable[[str], None] | None = None,
                transport: httpx.AsyncBaseTransport | None = None, sleep: Sleep | None = None,
                runner_class: Callable[..., TaskRunner] | None = None) -> TaskRunner:
    """A FallbackRunner over ``cfg``'s own route, then ``routes`` (the route resolver's);
    a plain Runner when there are none.

    ``runner_class`` makes each route's Runner (default ``run.runner.Runner``): a roboflow
    run gives one whose images are shared between its steps.
    """
    from llamavis.run.runner import Runner

    make: Callable[..., TaskRunner] = runner_class or Runner
    if not routes:
        return make(cfg, cache=cache, stdin=stdin, concurrency=concurrency, debug=debug,
                    transport=transport, sleep=sleep)
    lanes = [Lane(cfg), *(Lane(dataclasses.replace(
        cfg, provider=r.spec, model_id=r.model_id, base_url=r.base_url, api_key=r.api_key))
        for r in routes)]
    # An image given as `-` is read once and handed again to the next route.
    shared_stdin = read_once(stdin)
    for lane in lanes:
        client = open_client(lane.cfg, concurrency=concurrency, debug=debug,
                             transport=transport, sleep=sleep)
        lane.runner = make(lane.cfg, cache=cache, client=_GuardedClient(client, lane),
                           stdin=shared_stdin, concurrency=concurrency, debug=debug)
    return FallbackRunner(lanes, on_note)
