"""Run one task command: its typed options into the core, images into a batch, results out.

Commands are thin: they collect options and call ``execute``, which builds the core's
``Session`` (llamavis.run.session) from them, as ``llamavis.Client`` does; a dry run goes
through the same session (so --fallback's routes are shown). Results go to stdout
(plain text, TSV, JSON or JSONL); progress, notes and errors to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from llamavis.cli.invocation import Invocation, parse_vars
from llamavis.cli.output import render
from llamavis.errors import ExitCode, LlamavisError, UsageError
from llamavis.run.dryrun import DryRun
from llamavis.run.options import TaskArgs
from llamavis.run.protocol import Source, TaskRunner
from llamavis.run.session import Session
from llamavis.types import Result
from llamavis.urls import shown

__all__ = ["execute", "parse_vars", "show_schema"]

SKIPS = render.SkipNotes()


def _inputs(opts: Invocation | Mapping[str, Any]) -> Invocation:
    """The input options of a task command, or of another command's options by name
    (`llamavis roboflow` shares these)."""
    if isinstance(opts, Invocation):
        return opts
    return Invocation(**{k: opts[k] for k in ("images", "files_from", "recursive", "null")
                         if k in opts})


def image_sources(opts: Invocation | Mapping[str, Any]) -> Iterator[str]:
    """The images named, expanded lazily; a piped stdin is a path list when none are named."""
    from llamavis.images.sources import iter_sources

    opts = _inputs(opts)
    images = list(opts.images or [])
    stdin_is_list = not images and not opts.files_from and not sys.stdin.isatty()
    if not images and not opts.files_from and not stdin_is_list:
        raise UsageError("no image given: name files, directories or URLs, or pipe a list of paths")
    return iter_sources(
        images, recursive=opts.recursive, files_from=opts.files_from,
        null_separated=opts.null, stdin=sys.stdin, read_stdin_list=stdin_is_list, on_skip=SKIPS,
    )


def list_on_stdin(opts: Invocation | Mapping[str, Any]) -> bool:
    """True when the image paths come from standard input (-T -, or a pipe and no IMAGE)."""
    opts = _inputs(opts)
    if opts.files_from == "-":
        return True
    return not opts.images and not opts.files_from and not render.is_tty(sys.stdin)


def peek(it: Iterator[str], n: int) -> tuple[list[str], Iterator[str]]:
    head = list(itertools.islice(it, n))
    return head, itertools.chain(head, it)


def execute(task: str, params: dict[str, Any]) -> int:
    """The body of every task command; returns the exit code."""
    opts = Invocation(**params)
    if opts.json_out and opts.jsonl:
        raise UsageError("give either --json or --jsonl, not both")
    options = opts.run_options()
    if opts.dry_run:  # a dry run reads the cache (a cached image costs nothing), creates none
        from llamavis.store.cache import default_path

        options = replace(options, cache=options.cache and default_path().exists())
    session = Session(options, stdin=sys.stdin.buffer, require_key=not opts.dry_run,
                      debug=render.debug_line if opts.debug else None, on_warning=render.note)
    args = opts.task_args(task)
    cfg = session.config(args)  # usage and configuration errors before any image is read
    from llamavis.cli import dataset
    from llamavis.run.composite import check

    check(cfg.task_spec.output, task, options.captions, options.tiles)
    head, sources = peek(dataset.pages(task, opts, image_sources(opts)), 2)
    if not head:
        raise UsageError("no images found in the given inputs")
    single = len(head) == 1
    sidecars, sources = _outputs(task, opts, session, args, sources)
    if opts.dry_run:
        code = asyncio.run(dry_run(session, args, sources))
        return ExitCode.FAILED if getattr(sidecars, "problems", 0) else code
    total = None
    if not single and render.is_tty(sys.stderr) and not list_on_stdin(opts):
        # A person watching a progress bar wants N/N and an ETA: count the inputs first;
        # but not a list still coming down a pipe (`find | llamavis`): that streams in.
        listed = list(sources)
        sources, total = iter(listed), len(listed)
    try:
        code = asyncio.run(run_many(session, args, sources, single=single, sidecars=sidecars,
                                    opts=opts, total=total))
    finally:
        getattr(sidecars, "close", lambda: None)()
    # an answer its caption file or metadata could not take is a failed image
    return max(code, ExitCode.FAILED if getattr(sidecars, "failed", 0) else ExitCode.OK)


def _outputs(task: str, opts: Invocation, session: Session, args: TaskArgs,
             sources: Iterator[str]) -> tuple[Any, Iterator[str]]:
    """Where answers go besides stdout (--output-dir, captions beside the images, a manifest,
    metadata), and the sources left once what is already there is skipped."""
    from llamavis.cli import dataset

    sidecars = None
    if opts.output_dir:
        from llamavis.cli.output.writers import SidecarWriter, sidecar_roots

        sidecars = SidecarWriter(Path(opts.output_dir), task=task, overwrite=opts.overwrite,
                                 roots=sidecar_roots(opts.images or []), on_problem=_kept_note)
        if not opts.dry_run:
            sidecars.check_writable()
        # a dry run counts only what a run would send
        sources = skip_done(sources, sidecars, lambda src: session.identify(args, src),
                            ask_anyway=bool(opts.json_out or opts.jsonl))
    outs = dataset.outputs(opts, sidecars)
    if outs is not sidecars:  # captions beside the images, a manifest, metadata
        sidecars = outs
        sources = dataset.skip_done(sources, outs)
    return sidecars, sources


def skip_done(sources: Iterator[str], sidecars: Any, identify: Any, *,
              ask_anyway: bool = False) -> Iterator[str]:
    """The sources still to ask: not those whose sidecar holds this very request's answer,
    nor (unless their answer goes to --json/--jsonl) those whose sidecar holds another one."""
    skipped = 0
    for src in sources:
        verdict = sidecars.verdict(src, identify, ask_anyway=ask_anyway)
        if verdict == "done":  # --overwrite redoes them
            skipped += 1
        elif verdict == "ask":
            yield src
    if skipped:
        render.note(f"skipped {skipped} image(s) whose sidecar holds this answer already "
                    "(--overwrite to redo them)")


def _kept_note(image: str, why: str) -> None:
    render.error_line(image, {"kind": "usage", "message": f"sidecar not written: {why}"})


async def run_many(session: Session, args: TaskArgs, sources: Iterator[str], *, single: bool,
                   sidecars: Any, opts: Invocation, total: int | None = None) -> int:
    cfg = session.config(args)  # resolved already: this is the same config
    if opts.max_cost is not None and cfg.provider.price(cfg.model_id) is None:
        render.note(f"no price is known for {cfg.provider.name} {cfg.model_id}: --max-cost counts only "
                    "costs the provider itself reports")
    out = render.ResultSink(task=cfg.task, single=single, opts=opts, sidecars=sidecars)
    live = out.live_stream() if single else None

    async def run_one(runner: TaskRunner, source: Source) -> Result:
        if live is None:
            return await runner.run(source)
        with live:
            result = await runner.run(source, on_delta=live.delta, on_reset=live.reset)
            if result.error is not None:
                live.fail()  # a partial answer on the screen must not pass for the answer
            return result

    from llamavis.cli.dataset import PagesInOrder

    order = PagesInOrder(out.write)  # a document's pages in page order
    sources = order.track(sources)
    try:
        with every_ctrl_c_cancels():
            summary = await session.run(args, sources, on_result=order,
                                        on_progress=out.progress, total=total, run_one=run_one,
                                        grace=interrupt_grace(), on_interrupt=_waiting_note)
    except LlamavisError as exc:  # auth failure or interrupt: report what finished, then stop
        order.flush()
        out.close()
        partial = getattr(exc, "summary", None)
        if partial is not None:
            out.summary(partial, show_usage=opts.usage)
        raise
    finally:
        order.flush()
        out.close()
        SKIPS.close()
        await session.aclose()
    out.summary(summary, show_usage=opts.usage)
    if summary.stopped_reason == "max_cost":
        render.note(f"stopped: the batch reached --max-cost ${opts.max_cost:g}; "
                    "finished results are kept")
    kept = getattr(sidecars, "problems", 0) > 0  # an answer not on disk as asked
    ok = summary.failed == 0 and not summary.stopped_reason and not kept
    return ExitCode.OK if ok else ExitCode.FAILED


GRACE_S = 5.0  # after Ctrl-C, how long the answers in flight are waited for


def interrupt_grace() -> float:
    """GRACE_S, or LLAMAVIS_INTERRUPT_GRACE seconds (0: stop at once)."""
    try:
        return max(0.0, float(os.environ.get("LLAMAVIS_INTERRUPT_GRACE", GRACE_S)))
    except ValueError:
        return GRACE_S



def _waiting_note(in_flight: int, grace: float) -> None:
    render.note(f"interrupted: waiting up to {grace:g} s for {in_flight} answer(s) in flight "
                "(Ctrl-C again to stop now)")


@contextlib.contextmanager
def every_ctrl_c_cancels() -> Iterator[None]:
    """While a batch runs, each Ctrl-C cancels it (asyncio.run's own handler turns the
    second one into a KeyboardInterrupt outside the batch): the first lets the answers in
    flight arrive, the second stops at once."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    try:
        assert task is not None
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread; Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)  # back to Python's KeyboardInterrupt


async def dry_run(session: Session, args: TaskArgs, sources: Iterator[str]) -> int:
    """Print the requests a run would send (to the routes it would use), their number and
    estimated cost; send nothing. An image whose answer is cached costs nothing."""
    def bad_image(source: str, exc: LlamavisError) -> None:
        render.error_line(source, exc.to_dict())

    try:
        plan = await session.dry_run(args, sources, on_error=bad_image)
    finally:
        await session.aclose()
        SKIPS.close()
    sys.stdout.write(json.dumps(dry_run_doc(plan), indent=2, ensure_ascii=False) + "\n")
    first, cost = plan.routes[0], plan.cost_usd
    price = ("unknown (no price known for this model)" if cost is None
             else f"about ${cost:.6f} (one answer per image at --max-tokens; re-asks add to it)")
    from_cache = (f"{plan.cached} image(s) already answered in the cache (no request, no cost); "
                  if plan.cached else "")
    then = "".join(f", then {c.provider.name} {c.model_id}" for c in plan.routes[1:])
    render.note(f"dry run: {len(plan.requests)} request(s) to {first.provider.name} "
                f"{first.model_id}{then}; {from_cache}estimated cost {price}; nothing was sent")
    return ExitCode.FAILED if plan.failed else ExitCode.OK


def dry_run_doc(plan: DryRun) -> dict[str, Any]:
    """The JSON a dry run prints: the first route's names, every route, the requests."""
    first, cost = plan.routes[0], plan.cost_usd
    return {
        "provider": first.provider.name, "model": first.model_id,
        "routes": [{"provider": c.provider.name, "model": c.model_id, "base_url": shown(c.base_url)}
                   for c in plan.routes],
        "request_count": len(plan.requests), "cached_count": plan.cached,
        "estimated_cost_usd": None if cost is None else round(cost, 8),
        "requests": [_shown_request(r) for r in plan.requests],
    }


def _shown_request(request: Any) -> Any:
    """A dry run's request as shown: never a password or a key in its URL."""
    if isinstance(request, dict) and isinstance(request.get("url"), str):
        return {**request, "url": shown(request["url"])}
    return request


def show_schema(task: str, params: dict[str, Any]) -> int:
    """--show-schema: print the JSON Schema the options build."""
    schema = Invocation(**params).json_schema(task)
    if schema is None:
        raise UsageError("--show-schema needs --field or --schema")
    sys.stdout.write(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    return ExitCode.OK
