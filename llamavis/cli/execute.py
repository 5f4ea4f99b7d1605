"""Run one task command: resolve options, feed images to the batch engine, write results.

Commands are thin: they collect options and call ``execute``. Results go to
stdout (plain text, TSV, JSON or JSONL); progress, notes and errors to stderr.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..engine.options import default_concurrency, engine_from_cli
from ..errors import ExitCode, LlamavisError, UsageError
from ..settings import TaskConfig, build_config
from ..types import Result
from . import render


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def resolve_schema(task: str, opts: dict[str, Any]) -> dict[str, Any] | None:
    if task != "structured":
        return None
    from ..schemas import schema_from_options

    return schema_from_options(opts.get("field"), opts.get("schema"))


def config_from_options(task: str, opts: dict[str, Any]) -> TaskConfig:
    """Everything the user typed, resolved into a TaskConfig (Usage/ConfigError up front)."""
    return build_config(
        task,
        question=opts.get("question"),
        classes=opts.get("classes"),
        prompt=opts.get("prompt"),
        schema=resolve_schema(task, opts),
        template=opts.get("template"),
        variables=parse_vars(opts.get("var")),
        provider=opts.get("provider"),
        model=opts.get("model"),
        base_url=opts.get("base_url"),
        api_key=opts.get("api_key"),
        max_tokens=opts.get("max_tokens"),
        temperature=opts.get("temperature"),
        seed=opts.get("seed"),
        max_retries=opts.get("max_retries", 2),
        timeout=opts.get("timeout", 120.0),
        require_key=not opts.get("dry_run"),
        engine=engine_from_cli(opts),
    )


SKIPS = render.SkipNotes()


def image_sources(opts: dict[str, Any]) -> Iterator[str]:
    """The images named, expanded lazily; a piped stdin is a path list when none are named."""
    from ..sources import iter_sources

    images = list(opts.get("images") or [])
    files_from = opts.get("files_from")
    stdin_is_list = not images and not files_from and not sys.stdin.isatty()
    if not images and not files_from and not stdin_is_list:
        raise UsageError("no image given: name files, directories or URLs, or pipe a list of paths")
    return iter_sources(
        images, recursive=opts.get("recursive", False), files_from=files_from,
        null_separated=opts.get("null", False), stdin=sys.stdin,
        read_stdin_list=stdin_is_list, on_skip=SKIPS,
    )


def list_on_stdin(opts: dict[str, Any]) -> bool:
    """True when the image paths come from standard input (-T -, or a pipe and no IMAGE)."""
    if opts.get("files_from") == "-":
        return True
    return not opts.get("images") and not opts.get("files_from") and not render.is_tty(sys.stdin)


def peek(it: Iterator[str], n: int) -> tuple[list[str], Iterator[str]]:
    head = list(itertools.islice(it, n))
    return head, itertools.chain(head, it)


def execute(task: str, opts: dict[str, Any]) -> int:
    """The body of every task command; returns the exit code."""
    if opts.get("json_out") and opts.get("jsonl"):
        raise UsageError("give either --json or --jsonl, not both")
    cfg = config_from_options(task, opts)
    if opts.get("concurrency") is None:  # -j not given: enough requests to fill a local batch
        opts["concurrency"] = default_concurrency(cfg.spec.wire, cfg.engine)
    head, sources = peek(image_sources(opts), 2)
    if not head:
        raise UsageError("no images found in the given inputs")
    single = len(head) == 1
    sidecars = None
    if opts.get("output_dir"):
        from ..outputs import SidecarWriter, sidecar_roots

        sidecars = SidecarWriter(Path(opts["output_dir"]), task=task, overwrite=opts.get("overwrite", False),
                                 roots=sidecar_roots(opts.get("images") or []))
        if not opts.get("dry_run"):
            sidecars.check_writable()
        sources = skip_done(sources, sidecars)  # a dry run counts only what a run would send
    if opts.get("dry_run"):
        return dry_run(cfg, sources, use_cache=not opts.get("no_cache"))
    if not single and render.is_tty(sys.stderr) and not list_on_stdin(opts):
        # A person watching a progress bar wants N/N and an ETA: count the inputs first;
        # but not a list still coming down a pipe (`find | llamavis`): that streams in.
        listed = list(sources)
        return asyncio.run(run_many(cfg, iter(listed), single=False, sidecars=sidecars,
                                    opts=opts, total=len(listed)))
    return asyncio.run(run_many(cfg, sources, single=single, sidecars=sidecars, opts=opts))


def skip_done(sources: Iterator[str], sidecars: Any) -> Iterator[str]:
    skipped = 0
    for src in sources:
        if sidecars.should_skip(src):  # --overwrite redoes them
            skipped += 1
            continue
        yield src
    if skipped:
        render.note(f"skipped {skipped} image(s) whose sidecar exists (--overwrite to redo them)")


async def run_many(cfg: TaskConfig, sources: Iterator[str], *, single: bool, sidecars: Any,
                   opts: dict[str, Any], total: int | None = None) -> int:
    from ..batch import run_batch
    from ..cache import ResultCache
    from ..routes import make_runner

    if opts.get("max_cost") is not None and cfg.spec.price(cfg.model_id) is None:
        render.note(f"no price is known for {cfg.spec.name} {cfg.model_id}: --max-cost counts only "
                    "costs the provider itself reports")
    cache = None if opts.get("no_cache") else ResultCache(on_warning=render.note)
    out = render.ResultSink(task=cfg.task, single=single, opts=opts, sidecars=sidecars)
    debug = render.debug_line if opts.get("debug") else None
    # --fallback: a route wrapper with the Runner's face (llamavis/routes.py); else a Runner.
    runner = make_runner(cfg, opts.get("fallback"), on_note=render.note, cache=cache,
                         stdin=sys.stdin.buffer, concurrency=opts.get("concurrency", 4), debug=debug)
    live = out.live_stream() if single else None

    async def run_one(source: str) -> Result:
        if live is None:
            return await runner.run(source)
        with live:
            result = await runner.run(source, on_delta=live.delta, on_reset=live.reset)
            if result.error is not None:
                live.fail()  # a partial answer on the screen must not pass for the answer
            return result

    try:
        summary = await run_batch(
            sources, run_one, concurrency=opts.get("concurrency", 4), on_result=out.write,
            ordered=opts.get("ordered", False), max_cost=opts.get("max_cost"),
            on_progress=out.progress, total=total, task=cfg.task,
            cached=runner.cached if cache is not None else None,
        )
    except LlamavisError as exc:  # auth failure or interrupt: report what finished, then stop
        out.close()
        partial = getattr(exc, "summary", None)
        if partial is not None:
            out.summary(partial, show_usage=opts.get("usage", False))
        raise
    finally:
        out.close()
        SKIPS.close()
        await runner.aclose()
        if cache is not None:
            cache.close()
    out.summary(summary, show_usage=opts.get("usage", False))
    if summary.stopped_reason == "max_cost":
        render.note(f"stopped: the batch reached --max-cost ${opts.get('max_cost'):g}; "
                    "finished results are kept")
    return ExitCode.OK if summary.failed == 0 and not summary.stopped_reason else ExitCode.FAILED


def dry_run(cfg: TaskConfig, sources: Iterator[str], *, use_cache: bool = True) -> int:
    """Print the requests that would be sent, their number and estimated cost; send nothing.

    An image whose answer is in the cache would be answered from it: no request, no cost."""
    from ..cache import ResultCache, default_path
    from ..pricing import estimate_request
    from ..tasks import Runner

    use_cache = use_cache and default_path().exists()  # a dry run creates no cache file
    runner = Runner(cfg, stdin=sys.stdin.buffer,
                    cache=ResultCache(on_warning=render.note) if use_cache else None)
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
            est = estimate_request(cfg, req)
            cost = None if cost is None or est is None else cost + est
            requests.append(req)

    asyncio.run(prepare_all())
    if runner.cache is not None:
        runner.cache.close()
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


def show_schema(task: str, opts: dict[str, Any]) -> int:
    """--show-schema: print the JSON Schema the options build."""
    schema = resolve_schema(task, opts)
    if schema is None:
        raise UsageError("--show-schema needs --field or --schema")
    sys.stdout.write(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    return ExitCode.OK
