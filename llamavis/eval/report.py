"""One evaluation's report: per route its metrics and how it ran, and where routes disagree.

The report is plain JSON (what ``--json`` prints); the text table and the HTML page are
drawn from it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llamavis.eval import metrics
from llamavis.eval.labels import Gold, Pairing
from llamavis.types import JSONObject, Result

REPORT_VERSION = 1


@dataclass
class RouteRun:
    """What one route answered, by image key; ``error`` when it could not run at all."""

    name: str
    provider: str | None = None
    model: str | None = None
    results: dict[str, Result] = field(default_factory=dict)
    error: str | None = None


def run_stats(run: RouteRun, keys: Sequence[str]) -> JSONObject:
    """answered/failed/invalid counts, attempts per image, p50/p95 latency, tokens, cost."""
    results = [run.results[k] for k in keys if k in run.results]
    invalid = sum(1 for r in results if (r.error or {}).get("kind") == "invalid_output")
    answered = sum(1 for r in results if r.ok)
    asked = [r for r in results if not r.cached]
    latency = sorted(r.elapsed_s for r in asked)
    costs = [r.usage.cost_usd for r in results]
    return {
        "images": len(keys), "answered": answered, "invalid": invalid,
        "failed": len(keys) - answered - invalid, "cached": len(results) - len(asked),
        "attempts_per_image": round(sum(r.attempts for r in asked) / len(asked), 3)
        if asked else None,
        "latency_p50_s": _percentile(latency, 50), "latency_p95_s": _percentile(latency, 95),
        "prompt_tokens": sum(r.usage.prompt_tokens for r in results),
        "completion_tokens": sum(r.usage.completion_tokens for r in results),
        "cost_usd": None if all(c is None for c in costs)
        else round(sum(c or 0.0 for c in costs), 8),
    }


def why_failed(run: RouteRun) -> str | None:
    """The route's own error, else the most common error when it answered nothing."""
    if run.error is not None:
        return run.error
    if run.results and not any(r.ok for r in run.results.values()):
        messages = Counter((r.error or {}).get("message", "failed") for r in run.results.values())
        return messages.most_common(1)[0][0]
    return None


def build(task: str, pairing: Pairing, runs: Sequence[RouteRun], *,
          classes: Sequence[str] = (), ignore_case: bool = False) -> JSONObject:
    """The whole report for ``task`` over these routes' runs."""
    keys = [key for key, _, _ in pairing.items]
    routes = []
    for run in runs:
        scored = [(gold, run.results.get(key)) for key, _, gold in pairing.items]
        routes.append({
            "route": run.name, "provider": run.provider, "model": run.model,
            "error": why_failed(run),
            "metrics": metrics.score(task, scored, classes=classes, ignore_case=ignore_case),
            "run": run_stats(run, keys),
        })
    images = [_image(task, key, source, gold, runs, ignore_case)
              for key, source, gold in pairing.items]
    return {
        "version": REPORT_VERSION, "task": task, "classes": list(classes) or None,
        "images": len(keys), "rows_without_image": pairing.rows_without_image,
        "images_without_row": pairing.images_without_row, "routes": routes,
        "disagreements": [i["image"] for i in images if i["disagree"]] if len(runs) > 1 else [],
        "per_image": images,
    }


def _image(task: str, key: str, source: str, gold: Gold, runs: Sequence[RouteRun],
           ignore_case: bool) -> JSONObject:
    answers = {}
    for run in runs:
        result = run.results.get(key)
        answers[run.name] = {
            "output": metrics.answer_of(result),
            "error": None if result is None else result.error,
            "correct": metrics.correct(task, gold, result, ignore_case=ignore_case),
        }
    distinct = {_canonical(a["output"]) for a in answers.values()}
    return {"image": key, "source": source, "gold": gold.value, "question": gold.question,
            "answers": answers, "disagree": len(distinct) > 1}


def _canonical(value: Any) -> str:
    import json

    if isinstance(value, list):
        value = sorted(str(v).casefold() for v in value)
    elif isinstance(value, str):
        value = " ".join(value.split()).casefold()
    return json.dumps(value, sort_keys=True, default=str)


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (p50 of 1..10 is 5, p95 is 10)."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100 * len(values)))
    return round(values[rank - 1], 3)


HEADLINE = {"classify": "accuracy", "multi-classify": "micro_f1", "ocr": "cer",
            "caption": "wer", "detailed-caption": "wer", "vqa": "exact_match",
            "structured": "schema_valid"}


def headline(report: JSONObject, route: str) -> JSONObject:
    """One route's main number in a report, with its answered count and error."""
    for entry in report["routes"]:
        if entry["route"] == route:
            name = HEADLINE[report["task"]]
            return {name: entry["metrics"].get(name), "answered": entry["run"]["answered"],
                    "images": entry["run"]["images"], "error": entry["error"]}
    return {"error": "not run"}
