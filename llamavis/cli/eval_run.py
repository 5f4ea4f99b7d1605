"""The body of ``llamavis eval``: options in, the core's evaluation (llamavis.eval), report out."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from llamavis.cli.invocation import Invocation
from llamavis.cli.output import render
from llamavis.errors import ExitCode, UsageError
from llamavis.eval.labels import Pairing
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.types import JSONObject

TASKS = ("classify", "multi-classify", "ocr", "vqa", "structured", "caption", "detailed-caption")


def evaluate(opts: dict[str, Any]) -> int:
    """Run the evaluation the options ask for; print it; the exit code."""
    from llamavis.eval.run import route_list

    inv = Invocation(**{k: v for k, v in opts.items() if k in Invocation.__dataclass_fields__})
    routes = route_list(opts["routes"])
    if len(routes) > 1 and opts["base_url"]:
        raise UsageError("--base-url names one endpoint; with several --routes set each "
                         "route's LLAMAVIS_<PROVIDER>_BASE_URL")
    if routes and opts["provider"]:
        raise UsageError("give either -P or --routes, not both")
    options = inv.run_options()
    with tempfile.TemporaryDirectory(prefix="llamavis-smoke-") as folder:
        if opts["smoke"]:  # asked live: a cached answer says nothing of the route today
            reports = smoke_reports(replace(options, cache=False), routes, opts, Path(folder))
            doc: JSONObject = {"version": 1, "smoke": True, "tasks": reports}
        else:
            reports = [labelled_report(inv, options, routes, opts)]
            doc = reports[0]
        if opts["html"]:  # while the smoke set's images still exist: their thumbnails
            from llamavis.eval.html import write_page

            write_page(Path(opts["html"]), reports)
            render.note(f"wrote {opts['html']}")
    if opts["json_out"]:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        from llamavis.cli.output.eval_table import write_report

        for report in reports:
            write_report(report, sys.stdout)
    return ExitCode.OK if all(_complete(r) for r in reports) else ExitCode.FAILED


def _complete(report: JSONObject) -> bool:
    return all(r["error"] is None and r["run"]["answered"] == r["run"]["images"]
               for r in report["routes"])


def labelled_report(inv: Invocation, options: RunOptions, routes: list[Any],
                    opts: dict[str, Any]) -> JSONObject:
    """Your labels: read, paired with the images, asked on every route, scored."""
    from llamavis.eval.labels import pair, read_labels

    task, images = _task_and_images(opts["inputs"])
    if opts["labels"] is None:
        why = ("caption has no reference metric: give reference captions (--labels with a "
               "text column)" if "caption" in task else "eval needs --labels FILE (or --smoke)")
        raise UsageError(why)
    labels = read_labels(opts["labels"], task)
    from llamavis.cli.execute import image_sources

    sources = list(image_sources({"images": images, "recursive": inv.recursive}))
    roots = [p for p in images if Path(p).is_dir()]
    pairing = pair(labels, sources, roots, labels_name=str(opts["labels"]))
    for line in pairing.problems:
        render.note(line)
    if not pairing.items:
        raise UsageError(f"no image has a row in {opts['labels']}")
    args, classes = _task_args(inv, task, pairing)
    return scored(task, args, pairing, options, routes, classes, debug=opts["debug"],
                  ignore_case=opts["ignore_case"])


def scored(task: str, args: TaskArgs, pairing: Pairing, options: RunOptions, routes: list[Any],
           classes: list[str], *, debug: bool = False, ignore_case: bool = False) -> JSONObject:
    """The images asked on every route, scored; route errors and outside labels noted."""
    from llamavis.eval.report import build
    from llamavis.eval.run import run_routes

    runs = asyncio.run(run_routes(args, pairing, options, routes, on_warning=render.note,
                                  debug=render.debug_line if debug else None))
    report = build(task, pairing, runs, classes=classes, ignore_case=ignore_case)
    for route in report["routes"]:
        for item in route["metrics"].get("outside_classes", []):
            render.note(f"{item['image']}: label {item['label']!r} is not one of -c "
                        f"({route['route']}: not scored)")
        if route["error"]:
            render.note(f"{route['route']}: {route['error']}")
    return report


def _task_and_images(inputs: list[str] | None) -> tuple[str, list[str]]:
    if not inputs:
        raise UsageError("eval needs a task and images (or --smoke)",
                         hint="e.g. llamavis eval classify photos/ --labels labels.csv")
    task, images = inputs[0], inputs[1:]
    if task not in TASKS:
        raise UsageError(f"eval has no metric for {task!r}", hint=f"one of {', '.join(TASKS)}")
    if not images:
        raise UsageError("eval: name the images or their folder after the task")
    return task, images


def _task_args(inv: Invocation, task: str, pairing: Pairing) -> tuple[TaskArgs, list[str]]:
    """The task's arguments; classes default to the gold labels, a schema to the fields."""
    from llamavis.run.config import split_classes

    classes = split_classes(inv.classes)
    if task in ("classify", "multi-classify") and not classes:
        seen = {v for _, _, g in pairing.items
                for v in (g.value if isinstance(g.value, list) else [g.value])}
        classes = sorted(str(v).strip() for v in seen if str(v).strip())
        render.note(f"no -c given: the classes are the labels' own: {','.join(classes)}")
    schema = inv.json_schema(task) if task == "structured" else None
    if task == "structured" and schema is None:
        schema = schema_of_fields(pairing)
    args = TaskArgs(task, question=inv.question, classes=classes or None, schema=schema)
    return args, classes


def schema_of_fields(pairing: Pairing) -> JSONObject:
    """A schema from the labels' columns: integers where every gold value is one."""
    names = sorted({k for _, _, g in pairing.items for k in g.value})
    props = {}
    for name in names:
        values = [g.value.get(name) for _, _, g in pairing.items]
        whole = all(isinstance(v, int) or (isinstance(v, str) and v.strip().lstrip("-").isdigit())
                    for v in values)
        props[name] = {"type": "integer" if whole else "string"}
    return {"type": "object", "properties": props, "required": names}


def smoke_reports(options: RunOptions, routes: list[Any], opts: dict[str, Any],
                  folder: Path) -> list[JSONObject]:
    """The built-in set, drawn into ``folder``, each of its tasks on every route."""
    from llamavis.eval.smoke import build_smoke

    return [scored(s.task, s.args, s.pairing, options, routes, s.classes, debug=opts["debug"],
                   ignore_case=opts["ignore_case"]) for s in build_smoke(folder)]


def smoke_quality(options: RunOptions, routes: list[tuple[str, str | None]]) -> list[JSONObject]:
    """`doctor --quality`: the smoke set on these routes, asked live; one report per task."""
    with tempfile.TemporaryDirectory(prefix="llamavis-smoke-") as folder:
        return smoke_reports(replace(options, cache=False), routes,
                             {"debug": False, "ignore_case": False}, Path(folder))
