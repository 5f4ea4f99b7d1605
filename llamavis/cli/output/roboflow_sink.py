"""Where ``llamavis roboflow`` writes each image's outputs as the image finishes.

A workflow's declared outputs: ``--json`` / ``--jsonl`` give one object per image keyed by
output name, in input order, as Roboflow's engine returns them; otherwise one
``PATH<TAB>OUTPUT<TAB>VALUE`` line per output. ``--steps`` (or nothing declared): the
per-image object (``roboflow_run.record``), or ``PATH<TAB>STEP<TAB>ANSWER`` lines.
Failures go to stderr, one line per distinct error of an image.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any, cast

from llamavis.cli.output import render
from llamavis.cli.output.writers import (
    JsonArrayWriter,
    JsonlWriter,
    answer_text,
    tsv_escape,
)
from llamavis.roboflow.graph import Graph
from llamavis.roboflow.run import TASK, declared, record
from llamavis.roboflow.workflow import Step
from llamavis.types import Result


class Sink:
    """Writes each finished image where the options say, as soon as it finishes."""

    def __init__(self, steps: list[Step], opts: dict[str, Any], *, single: bool,
                 graph: Graph | None = None) -> None:
        self.steps, self.graph = steps, graph
        self.progress_bar: render.Progress | None = None
        self.show_progress = (not single and render.is_tty(sys.stderr)
                              and os.environ.get("TERM") != "dumb")
        shared = self.show_progress and render.is_tty(sys.stdout)  # lines go above the bar
        self.stdout = cast("IO[str]", render.AboveBar(sys.stdout, cast(Any, self))) if shared else sys.stdout
        self.writer: Any = None
        if opts.get("jsonl"):
            self.writer = JsonlWriter(self.stdout)
        elif opts.get("json_out"):
            # declared outputs are always a list, one object per image, as Roboflow returns them
            self.writer = JsonArrayWriter(self.stdout, single=single and graph is None)

    def write(self, result: Result) -> None:
        doc = record(result, self.steps)
        self._report_errors(result.image, doc)
        if self.graph is not None:
            self._write_outputs(result, self.graph)
            return
        if self.writer is not None:
            self.writer.write(doc)
            return
        for step in self.steps:
            item = doc[step.name]
            if item["error"] is None:
                text = answer_text(Result(image=result.image, task=TASK, output=item["parsed"]))
                self.stdout.write(f"{tsv_escape(result.image)}\t{tsv_escape(step.name)}\t"
                                  f"{tsv_escape(text)}\n")
        self.stdout.flush()

    def _write_outputs(self, result: Result, graph: Graph) -> None:
        outputs = declared(result, graph)
        if not any(doc["error"] for doc in record(result, self.steps).values()
                   if isinstance(doc, dict)) and result.error is not None:
            render.error_line(result.image, result.error)  # a formatter block's, not a step's
        if self.writer is not None:
            self.writer.write(outputs)
            return
        for name, value in outputs.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            self.stdout.write(f"{tsv_escape(result.image)}\t{tsv_escape(name)}\t{tsv_escape(text)}\n")
        self.stdout.flush()

    def _report_errors(self, image: str, doc: dict[str, Any]) -> None:
        """One stderr line per distinct error; steps named unless all of them failed alike."""
        groups: dict[tuple[str, str], list[str]] = {}
        for step in self.steps:
            error = doc[step.name]["error"]
            if error is not None:
                groups.setdefault((error["kind"], error["message"]), []).append(step.name)
        for (kind, message), names in groups.items():
            if len(names) < len(self.steps):
                message = f"step {', '.join(map(repr, names))}: {message}"
            render.error_line(image, {"kind": kind, "message": message})

    def progress(self, event: Any) -> None:
        if not self.show_progress:
            return
        if self.progress_bar is None:
            self.progress_bar = render.Progress(event.total)
        self.progress_bar.update(event)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.progress_bar is not None:
            self.progress_bar.stop()
            self.progress_bar = None

    def summary(self, summary: Any, *, show_usage: bool) -> None:
        if not (show_usage or self.show_progress):
            return
        usage = summary.usage
        cost = render.cost_text(summary)
        render.note(
            f"{summary.succeeded} image(s) succeeded, {summary.failed} failed, "
            f"{summary.cached} cached · {usage.prompt_tokens:,} in + {usage.completion_tokens:,} "
            f"out tokens · {cost} · {summary.elapsed_s:.1f} s"
        )
