"""``llamavis eval``: score routes' answers against labels, side by side (core: llamavis/eval/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llamavis.cli import options as o

EVAL = "Evaluation"
SHARED = ("provider", "model", "base_url", "api_key", "max_tokens", "temperature", "seed",
          "timeout", "max_retries", "json_out", "concurrency", "no_cache", "recursive",
          "debug")

OWN: list[o.Param] = [
    ("inputs", Annotated[list[str] | None, typer.Argument(
        help="The task (classify, multi-classify, ocr, vqa, structured, caption), then "
        "image files or folders.", metavar="TASK IMAGE...", show_default=False)], None),
    o.option("labels", Path | None, None, "--labels", panel=EVAL, metavar="FILE",
           help="CSV or JSONL keyed by file_name (relative to the image folder): label, "
           "labels (;-separated), text, answer (+ question), or one column per field."),
    o.option("routes", str | None, None, "--routes", panel=EVAL, metavar="ROUTE[,ROUTE...]",
           help="Ask the same images on each route (provider or provider:model), each with "
           "its own cache, and print them side by side."),
    o.option("html", Path | None, None, "--html", panel=EVAL, metavar="FILE",
           help="Write a page with each image's thumbnail, the gold and every route's answer."),
    o.option("smoke", bool, False, "--smoke", panel=EVAL,
           help="Use the built-in labelled set (shapes, text lines, counts): is this route healthy?"),
    o.option("ignore_case", bool, False, "--ignore-case", panel=EVAL,
           help="ocr/caption: compare text ignoring case (whitespace is always collapsed)."),
    o.CLASSES, o.QUESTION, o.FIELD, o.SCHEMA,
]


def _params() -> list[o.Param]:
    shared = {p[0]: p for p in o.COMMON}
    return [*OWN, *(shared[name] for name in SHARED)]


def _body(**opts: Any) -> None:
    from llamavis.cli.eval_run import evaluate

    raise typer.Exit(evaluate(opts))


def register(app: typer.Typer) -> None:
    """Add ``llamavis eval``."""
    app.command(
        "eval", rich_help_panel="Setup",
        help="Score a route's answers against your labels (or the built-in --smoke set): "
        "accuracy, F1, CER/WER, exact match, schema-valid rate, plus failures, attempts, "
        "latency, tokens and cost per route.",
        epilog="Examples:\n\n  $ llamavis eval classify photos/ --labels labels.csv -c cat,dog,bird"
        "\n\n  $ llamavis eval ocr scans/ --labels truth.jsonl --routes nvidia,cloudflare --json"
        "\n\n  $ llamavis eval --smoke -P cloudflare",
    )(o.with_params(_params(), _body))
