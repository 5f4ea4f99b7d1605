"""Ask every route about the labelled images, through the one core.

Each route is a ``Session`` derived from one root session (llamavis.run.session): its own
options (provider, model, no fallback: the route itself is measured), its own client,
and the root's result cache, whose keys hold the provider, endpoint and model, so each
route has answers of its own there. Routes run concurrently; a route that cannot run at
all keeps its error as its column's reason and the others still report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace

from llamavis.errors import LlamavisError, UsageError
from llamavis.eval.labels import Pairing
from llamavis.eval.report import RouteRun
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.run.session import Session
from llamavis.types import Result

Group = tuple[TaskArgs, list[tuple[str, str]]]  # the task's arguments, (key, source) pairs


def route_list(routes: str | None) -> list[tuple[str, str | None]]:
    """--routes 'a,b:90b' -> [(provider, model or None), ...]; UsageError if malformed."""
    from llamavis.providers.resolve import parse_routes

    return [(r.provider, r.model) for r in parse_routes(routes)]


def groups(args: TaskArgs, pairing: Pairing) -> list[Group]:
    """The images by the arguments they are asked with: vqa's question may differ per row."""
    if args.task != "vqa":
        return [(args, [(key, source) for key, source, _ in pairing.items])]
    by_question: dict[str, list[tuple[str, str]]] = {}
    for key, source, gold in pairing.items:
        question = gold.question or args.question
        if not question:
            raise UsageError(f"eval vqa: {key} has no question",
                             hint="give the labels a question column, or -q for every image")
        by_question.setdefault(question, []).append((key, source))
    return [(replace(args, question=q), items) for q, items in by_question.items()]


async def run_routes(
    args: TaskArgs, pairing: Pairing, options: RunOptions,
    routes: Sequence[tuple[str, str | None]], *,
    on_warning: Callable[[str], None] | None = None,
    debug: Callable[[str], None] | None = None,
) -> list[RouteRun]:
    """Every route's answers to every paired image; with no routes, the options' own route.

    With a single route its errors are raised (exit codes as for any command); with
    several, each route's error is kept in its RouteRun."""
    jobs = groups(args, pairing)
    root = Session(replace(options, fallback=None), on_warning=on_warning, debug=debug)
    try:
        if not routes:
            return [await _one(root, None, jobs, raise_errors=True)]
        sessions = [(root.derive(replace(options, provider=p, model=m or options.model,
                                         fallback=None)), p + (f":{m}" if m else ""))
                    for p, m in routes]
        return list(await asyncio.gather(*(
            _one(s, name, jobs, raise_errors=len(routes) == 1) for s, name in sessions)))
    finally:
        await root.aclose()


async def _one(session: Session, name: str | None, jobs: Sequence[Group], *,
               raise_errors: bool) -> RouteRun:
    run = RouteRun(name or session.options.provider or "default")
    try:
        for args, items in jobs:
            cfg = session.config(args)
            run.provider, run.model = cfg.provider.name, cfg.model_id
            if name is None:
                run.name = cfg.provider.name
            await _ask(session, args, items, run)
    except LlamavisError as exc:
        if raise_errors:
            raise
        run.error = str(exc)
    return run


async def _ask(session: Session, args: TaskArgs, items: Sequence[tuple[str, str]],
               run: RouteRun) -> None:
    key_of = {source: key for key, source in items}

    def collect(result: Result) -> None:
        key = key_of.get(result.image)
        if key is not None:
            run.results[key] = result

    await session.run(args, [source for _, source in items], on_result=collect, ordered=False)
