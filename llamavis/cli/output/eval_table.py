"""The text of an eval report: one column per route, a row per metric, then the details."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import IO, Any

from llamavis.cli.output.term import one_line, safe_text
from llamavis.types import JSONObject

Row = tuple[str, Callable[[JSONObject], Any]]

HEADLINES: dict[str, list[Row]] = {
    "classify": [("accuracy", lambda r: r["metrics"]["accuracy"])],
    "multi-classify": [("micro F1", lambda r: r["metrics"]["micro_f1"]),
                       ("macro F1", lambda r: r["metrics"]["macro_f1"]),
                       ("exact set", lambda r: r["metrics"]["exact_set"])],
    "vqa": [("exact match", lambda r: r["metrics"]["exact_match"])],
    "structured": [("schema valid", lambda r: r["metrics"]["schema_valid"])],
}
TEXT_ROWS: list[Row] = [("CER", lambda r: r["metrics"]["cer"]),
                        ("WER", lambda r: r["metrics"]["wer"]),
                        ("exact", lambda r: r["metrics"]["exact"])]
RUN_ROWS: list[Row] = [
    ("answered/failed/invalid", lambda r: "{answered}/{failed}/{invalid}".format(**r["run"])),
    ("attempts per image", lambda r: r["run"]["attempts_per_image"]),
    ("latency p50/p95 s", lambda r: f"{_num(r['run']['latency_p50_s'])}/"
                                    f"{_num(r['run']['latency_p95_s'])}"),
    ("tokens in/out", lambda r: f"{r['run']['prompt_tokens']}/{r['run']['completion_tokens']}"),
    ("cost USD", lambda r: r["run"]["cost_usd"]),
]


def write_report(report: JSONObject, out: IO[str]) -> None:
    """The report as a table (routes side by side), confusion counts and disagreements."""
    routes = report["routes"]
    title = f"eval {report['task']}: {report['images']} image(s)"
    if report.get("classes"):
        title += f", classes {','.join(report['classes'])}"
    rows = [("route", [r["route"] for r in routes])]
    if any(r["error"] for r in routes):
        rows.append(("error", [one_line(r["error"] or "-")[:60] for r in routes]))
    for label, get in [*HEADLINES.get(report["task"], TEXT_ROWS), *_detail_rows(report),
                       *RUN_ROWS]:
        rows.append((label, [_num(get(r)) for r in routes]))
    width = max(len(label) for label, _ in rows)
    widths = [max(len(str(vals[i])) for _, vals in rows) for i in range(len(routes))]
    out.write(safe_text(title) + "\n")
    for label, values in rows:
        cells = "  ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True))
        out.write(safe_text(f"  {label.ljust(width)}  {cells}".rstrip()) + "\n")
    if report["task"] == "classify":
        for route in routes:
            _confusion(route, out)
    if report["disagreements"]:
        out.write(f"  routes disagree on {len(report['disagreements'])} image(s): "
                  + safe_text(", ".join(report["disagreements"])) + "\n")
    out.write("\n")


def _detail_rows(report: JSONObject) -> list[Row]:
    task = report["task"]
    if task in ("classify", "multi-classify"):
        return [(f"F1 {c}", partial(_class_f1, c)) for c in report.get("classes") or []]
    if task == "structured":
        names = sorted({k for r in report["routes"] for k in r["metrics"]["per_field"]})
        return [(f"field {n}", partial(_field, n)) for n in names]
    return []


def _class_f1(name: str, route: JSONObject) -> Any:
    return route["metrics"]["per_class"][name]["f1"]


def _field(name: str, route: JSONObject) -> Any:
    return route["metrics"]["per_field"].get(name)


def _confusion(route: JSONObject, out: IO[str]) -> None:
    matrix = route["metrics"]["confusion"]
    if not matrix or route["error"]:
        return
    columns = list(next(iter(matrix.values())))
    width = max(len(c) for c in [*columns, "gold \\ answer"])
    out.write(safe_text(f"  confusion, {route['route']} (gold by row, answer by column):") + "\n")
    out.write("    " + "gold \\ answer".ljust(width) + "  "
              + "  ".join(c.ljust(len(c)) for c in columns) + "\n")
    for gold, counts in matrix.items():
        cells = "  ".join(str(counts[c]).ljust(len(c)) for c in columns)
        out.write(safe_text(f"    {gold.ljust(width)}  {cells}".rstrip()) + "\n")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
