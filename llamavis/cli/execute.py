"""Run one task command: its typed options into the core, images into a batch, results out.

Commands are thin: they collect options and call ``execute``, which builds the core's
``Engine`` (llamavis.run.session) from them, as ``llamavis.Client`` does. Results go to stdout
(plain text, TSV, JSON or JSONL); progress, notes and errors to stderr.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from llamavis.cli.invocation import Invocation, parse_vars
from llamavis.cli.output import render
from llamavis.errors import ExitCode, LlamavisError, UsageError
from llamavis.run.config import TaskConfig
from llamavis.run.session import Engine, TaskArgs
from llamavis.types import Result

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
    engine = Engine(options, stdin=sys.stdin.buffer, require_key=not opts.dry_run,
                    debug=render.debug_line if opts.debug else None, on_warning=render.note)
    args = opts.task_args(task)
    cfg = engine.config(args)  # usage and configuration errors before any image is read
    from llamavis.cli import dataset
    from llamavis.run.composite import check

    check(cfg.task_spec.output, task, options.captions, options.tiles)
    head, sources = peek(dataset.pages(task, opts, image_sources(opts)), 2)
    if not head:
        raise UsageError("no images found in the given inputs")
    single = len(head) == 1
    sidecars = None
    if opts.output_dir:
        from llamavis.cli.output.writers import SidecarWriter, sidecar_roots

        sidecars = SidecarWriter(Path(opts.output_dir), task=task, overwrite=opts.overwrite,
                                 roots=sidecar_roots(opts.images or []))
        if not opts.dry_run:
            sidecars.check_writable()
        sources = skip_done(sources, sidecars)  # a dry run counts only what a run would send
    outs = dataset.outputs(opts, sidecars)
    if outs is not sidecars:  # captions beside the images, a manifest, metadata
        sidecars = outs
        sources = dataset.skip_done(sources, outs)
    if opts.dry_run:
        return dry_run(engine, cfg, sources)
    total = None
    if not single and render.is_tty(sys.stderr) and not list_on_stdin(opts):
        # A person watching a progress bar wants N/N and an ETA: count the inputs first;
        # but not a list still coming down a pipe (`find | llamavis`): that streams in.
        listed = list(sources)
        sources, total = iter(listed), len(listed)
    try:
        code = asyncio.run(run_many(engine, args, sources, single=single, sidecars=sidecars,
                                    opts=opts, total=total))
    finally:
        getattr(sidecars, "close", lambda: None)()
    # an answer its caption file or metadata could not take is a failed image
    return max(code, ExitCode.FAILED if getattr(sidecars, "failed", 0) else ExitCode.OK)


def skip_done(sources: Iterator[str], sidecars: Any) -> Iterator[str]:
    skipped = 0
    for src in sources:
        if sidecars.should_skip(src):  # --overwrite redoes them
            skipped += 1
            continue
        yield src
    if skipped:
        render.note(f"skipped {skipped} image(s) whose sidecar exists (--overwrite to redo them)")


async def run_many(engine: Engine, args: TaskArgs, sources: Iterator[str], *, single: bool,
                   sidecars: Any, opts: Invocation, total: int | None = None) -> int:
    cfg = engine.config(args)  # resolved already: this is the same config
    if opts.max_cost is not None and cfg.spec.price(cfg.model_id) is None:
        render.note(f"no price is known for {cfg.spec.name} {cfg.model_id}: --max-cost counts only "
                    "costs the provider itself reports")
    out = render.ResultSink(task=cfg.task, single=single, opts=opts, sidecars=sidecars)
    live = out.live_stream() if single else None

    async def run_one(runner: Any, source: str) -> Result:
        if live is None:
            result: Result = await runner.run(source)
            return result
        with live:
            result = await runner.run(source, on_delta=live.delta, on_reset=live.reset)
            if result.error is not None:
                live.fail()  # a partial answer on the screen must not pass for the answer
            return result

    try:
        summary = await engine.run(args, sources, on_result=out.write,
                                   on_progress=out.progress, total=total, run_one=run_one)
    except LlamavisError as exc:  # auth failure or interrupt: report what finished, then stop
        out.close()
        partial = getattr(exc, "summary", None)
        if partial is not None:
            out.summary(partial, show_usage=opts.usage)
        raise
    finally:
        out.close()
        SKIPS.close()
        await engine.aclose()
    out.summary(summary, show_usage=opts.usage)
    if summary.stopped_reason == "max_cost":
        render.note(f"stopped: the batch reached --max-cost ${opts.max_cost:g}; "
                    "finished results are kept")
    return ExitCode.OK if summary.failed == 0 and not summary.stopped_reason else ExitCode.FAILED


def dry_run(engine: Engine, cfg: TaskConfig, sources: Iterator[str]) -> int:
    """Print the requests that would be sent, their number and estimated cost; send nothing.

    An image whose answer is in the cache would be answered from it: no request, no cost."""
    from llamavis.backends.pricing import estimate_request

    runner = engine.runner(cfg, fallback=False)
    requests: list[dict[str, Any]] = []
    cost: float | None = 0.0
    failed = cached = 0

    async def prepare_all() -> None:  # one event loop for every image, not one each
        nonlocal cost, failed, cached
        for source in sources:
            # (standard input can be read once: "-" is counted as a request)
            if runner.cache is not None and source != "-" and await runner.cached(source):
                cached += 1
                continue
            try:
                req = await runner.dry_run(source)
            except LlamavisError as exc:  # a bad image is reported, the rest go on
                render.error_line(source, exc.to_dict())
                failed += 1
                continue
            for one in req if isinstance(req, list) else [req]:  # --tiles, --captions: several
                est = estimate_request(cfg.spec, cfg.model_id, cfg.prompt_text, cfg.params.max_tokens)
                cost = None if cost is None or est is None else cost + est
                requests.append(one)

    asyncio.run(prepare_all())
    if engine.cache is not None:
        engine.cache.close()
    doc = {
        "provider": cfg.spec.name, "model": cfg.model_id, "request_count": len(requests),
        "cached_count": cached, "estimated_cost_usd": None if cost is None else round(cost, 8),
        "requests": requests,
    }
    SKIPS.close()
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    price = ("unknown (no price known for this model)" if cost is None
             else f"about ${cost:.6f} (one answer per image at --max-tokens; re-asks add to it)")
    from_cache = f"{cached} image(s) already answered in the cache (no request, no cost); " if cached else ""
    render.note(f"dry run: {len(requests)} request(s) to {cfg.spec.name} {cfg.model_id}; "
                f"{from_cache}estimated cost {price}; nothing was sent")
    return ExitCode.FAILED if failed else ExitCode.OK


def show_schema(task: str, params: dict[str, Any]) -> int:
    """--show-schema: print the JSON Schema the options build."""
    schema = Invocation(**params).json_schema(task)
    if schema is None:
        raise UsageError("--show-schema needs --field or --schema")
    sys.stdout.write(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    return ExitCode.OK
