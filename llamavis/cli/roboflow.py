"""``llamavis roboflow``: run the Llama 3.2 Vision steps of a Roboflow workflow on images.

The command reads the file (llamavis.roboflow.workflow), walks its declared outputs
(roboflow.graph), plans each step (roboflow.plan), runs them on the run's Session
(roboflow.run) and writes one object per image: the declared outputs by name, or with
``--steps`` (or none declared) ``{"image": PATH, "<step>": {"output", "classes", "parsed",
"error", ...}}``; piped plain text is ``PATH<TAB>OUTPUT<TAB>VALUE`` (``STEP``/``ANSWER``).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from typing import Annotated, Any

import typer

from llamavis.cli import options as o

HELP = "Run the Llama 3.2 Vision steps of a Roboflow workflow (or one step) on each image."
EPILOG = """Examples:

  $ llamavis roboflow examples/roboflow_workflow.json photos/ --input question='Any people?' --jsonl

  $ llamavis roboflow step.json shot.jpg --json

  $ llamavis roboflow examples/roboflow_workflow.json --print-commands

A workflow's declared outputs are given by name, one object per image (Roboflow's
formatters vlm_as_classifier, json_parser and property_definition run on the Llama answers);
--steps gives each Llama step's answer instead. $inputs.NAME bindings are filled from
--input NAME=VALUE, --inputs FILE.json or the workflow's default_value.
With no -P the route is the one model_version names (OpenRouter), and the step's api_key
is used for it alone; --fallback routes (e.g. deepinfra) answer when that route cannot, each
with its own key. -m, --max-tokens, --temperature and -j win over the steps' fields."""

WORKFLOW: o.Param = (
    "workflow",
    Annotated[str, typer.Argument(help="A workflow definition JSON, or one step of it.",
                                  metavar="STEP_OR_WORKFLOW.json", show_default=False)],
    inspect.Parameter.empty,
)
INPUT: o.Param = (
    "inputs",
    Annotated[list[str] | None, typer.Option(
        "--input", metavar="NAME=VALUE", rich_help_panel="Workflow",
        help="Value of a workflow input $inputs.NAME (repeatable). classes: a comma list or "
             "JSON list; output_structure: a JSON object.")],
    None,
)
INPUTS_FILE: o.Param = (
    "inputs_file",
    Annotated[str | None, typer.Option(
        "--inputs", metavar="FILE.json", rich_help_panel="Workflow",
        help="All workflow inputs at once: one JSON object of NAME: VALUE (--input wins).")],
    None,
)
STEPS: o.Param = (
    "steps",
    Annotated[bool, typer.Option(
        "--steps", rich_help_panel="Workflow",
        help="Each Llama step's answer per image ({\"image\", \"<step>\": {...}}) instead of "
             "the workflow's declared outputs.")],
    False,
)
PRINT_COMMANDS: o.Param = (
    "print_commands",
    Annotated[bool, typer.Option(
        "--print-commands", rich_help_panel="Workflow",
        help="Print the plain llamavis command of each step (keys as the variable to set) and exit.")],
    False,
)
CONCURRENCY: o.Param = (
    "concurrency",
    Annotated[int | None, typer.Option(
        "-j", "--concurrency", min=1, max=512, rich_help_panel=o.BATCH,
        help="Requests in flight per step. Default: each step's max_concurrent_requests, else 4.")],
    None,
)
# Task options that a step defines itself, or that have no meaning for several steps at once.
_LEFT_OUT = {"images", "template", "var", "output_dir", "overwrite", "no_stream", "concurrency"}


def register(app: typer.Typer) -> None:
    """Add the roboflow command to the app."""
    params = [WORKFLOW, o.IMAGES, INPUT, INPUTS_FILE, STEPS, PRINT_COMMANDS,
              *(p for p in o.COMMON if p[0] not in _LEFT_OUT), CONCURRENCY]
    app.command("roboflow", help=HELP, epilog=EPILOG, rich_help_panel="Workflows")(
        o.with_params(params, _body))


def _body(**opts: Any) -> None:
    try:
        code = run_command(opts)
    except BrokenPipeError:  # `llamavis roboflow ... | head -1`: stop quietly, as the tasks do
        from llamavis.cli.output.render import silence_stdout

        silence_stdout()
        code = 0
    raise typer.Exit(code)


def run_command(opts: dict[str, Any]) -> int:
    """The whole command; returns the exit code."""
    from llamavis.cli.execute import image_sources, peek
    from llamavis.cli.output.render import note
    from llamavis.errors import UsageError
    from llamavis.roboflow import plan as roboflow_plan
    from llamavis.roboflow import run as roboflow_run
    from llamavis.roboflow import workflow as roboflow

    if opts.get("json_out") and opts.get("jsonl"):
        raise UsageError("give either --json or --jsonl, not both")
    from llamavis.roboflow.inputs import parse_inputs

    workflow = roboflow.load(opts["workflow"], parse_inputs(opts.get("inputs"), opts.get("inputs_file")))
    graph = _graph(workflow, opts)
    for line in [*workflow.notes, *roboflow_plan.notes(workflow, opts)]:
        note(line)
    if opts.get("print_commands"):
        sys.stdout.write("".join(line + "\n" for line in roboflow_plan.command_lines(workflow, opts)))
        return 0
    session = _session(opts, ordered=graph is not None)
    runs = roboflow_run.configs(workflow, session)
    head, sources = peek(image_sources(opts), 2)
    if not head:
        raise UsageError("no images found in the given inputs")
    if opts.get("dry_run"):
        return _dry_run(session, runs, sources)
    total = None
    if len(head) > 1 and _progress_wanted() and not _list_on_stdin(opts):
        listed_sources = list(sources)  # a person watching the bar wants N/N and an ETA
        total, sources = len(listed_sources), iter(listed_sources)
    from llamavis.cli.output.roboflow_sink import Sink

    sink = Sink([r.step for r in runs], opts, single=len(head) == 1, graph=graph)
    import asyncio  # not on the path of --help
    return asyncio.run(_run(session, runs, sources, sink, opts, total, graph))


def _graph(workflow: Any, opts: dict[str, Any]) -> Any:
    """The declared outputs to give (None: the per-step view, --steps or none declared);
    the Llama steps they need are kept, the blocks nobody reads noted once."""
    from llamavis.cli.output.render import note
    from llamavis.errors import UsageError
    from llamavis.roboflow import graph as roboflow_graph
    from llamavis.roboflow.workflow import BLOCK_TYPE

    graph = None if opts.get("steps") else roboflow_graph.plan(workflow)
    if graph is None:
        if workflow.not_run:
            listed = ", ".join(f"{name} ({kind})" for name, kind in workflow.not_run)
            note(f"not run (not {BLOCK_TYPE} steps): {listed}")
        return None
    if not graph.llama:
        raise UsageError(f"no declared output reads a {BLOCK_TYPE} step; give --steps for "
                         "each step's answer")
    if graph.skipped:
        listed = ", ".join(f"{name} ({kind})" for name, kind in graph.skipped)
        note(f"not run (no declared output reads them): {listed}")
    workflow.steps = [s for s in workflow.steps if s.name in graph.llama]
    workflow.notes = [n for n in workflow.notes if not n.startswith("step ") or
                      any(n.startswith(f"step {s.name!r}") for s in workflow.steps)]
    if graph.inputs:  # an input a formatter reads is used, though no Llama step reads it
        workflow.notes = [n for n in workflow.notes if not n.startswith("--input ")
                          or not set(n[8:].split(":")[0].split(", ")) <= graph.inputs]
    return graph


def _session(opts: dict[str, Any], *, ordered: bool) -> Any:
    """The run's Session, from the options every task command takes (checked as they are:
    ``-P transformers --device bogus`` is exit 2 here too)."""
    import dataclasses

    from llamavis.cli.invocation import Invocation
    from llamavis.cli.output.render import debug_line, note
    from llamavis.run.session import Session

    names = {f.name for f in dataclasses.fields(Invocation)}
    invocation = Invocation(**{k: v for k, v in opts.items() if k in names})
    options = invocation.run_options()
    if ordered:  # declared outputs are a list in input order, as Roboflow returns them
        options = dataclasses.replace(options, ordered=True)
    if invocation.dry_run:  # a dry run opens no cache
        options = dataclasses.replace(options, cache=False)
    return Session(options, stdin=sys.stdin.buffer, require_key=not invocation.dry_run,
                   debug=debug_line if invocation.debug else None, on_warning=note)


def _progress_wanted() -> bool:
    from llamavis.cli.output.render import is_tty

    return is_tty(sys.stderr) and os.environ.get("TERM") != "dumb"


def _list_on_stdin(opts: dict[str, Any]) -> bool:
    from llamavis.cli.execute import list_on_stdin

    return list_on_stdin(opts)


async def _run(session: Any, runs: list[Any], sources: Any, sink: Any, opts: dict[str, Any],
               total: int | None, graph: Any) -> int:
    from llamavis.cli.execute import SKIPS
    from llamavis.cli.output.render import note
    from llamavis.errors import ExitCode, LlamavisError
    from llamavis.roboflow import run as roboflow_run

    try:
        summary = await roboflow_run.run(session, runs, sources, on_result=sink.write,
                                         on_progress=sink.progress, total=total, graph=graph)
    except LlamavisError as exc:  # a rejected key or an interrupt: report what finished, then stop
        sink.close()
        if getattr(exc, "summary", None) is not None:
            sink.summary(exc.summary, show_usage=opts.get("usage", False))  # type: ignore[attr-defined]
        raise
    finally:
        sink.close()
        SKIPS.close()
    sink.summary(summary, show_usage=opts.get("usage", False))
    if summary.stopped_reason == "max_cost":
        note(f"stopped: the batch reached --max-cost ${opts.get('max_cost'):g}; finished results are kept")
    return ExitCode.OK if summary.failed == 0 and not summary.stopped_reason else ExitCode.FAILED


def _dry_run(session: Any, runs: list[Any], sources: Any) -> int:
    from llamavis.cli.execute import SKIPS
    from llamavis.cli.output.render import error_line, note
    from llamavis.errors import ExitCode
    from llamavis.roboflow import run as roboflow_run

    failed = 0

    def on_error(source: str, exc: Any) -> None:
        nonlocal failed
        failed += 1
        error_line(source, exc.to_dict())

    import asyncio  # not on the path of --help
    doc = asyncio.run(roboflow_run.dry_run(session, runs, sources, on_error=on_error))
    SKIPS.close()
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    cost = doc["estimated_cost_usd"]
    price = ("unknown (no price known for a model)" if cost is None
             else f"about ${cost:.6f} (one answer per request at its max tokens; re-asks add to it)")
    note(f"dry run: {doc['request_count']} request(s) for {len(runs)} step(s); "
         f"estimated cost {price}; nothing was sent")
    return ExitCode.FAILED if failed else ExitCode.OK
