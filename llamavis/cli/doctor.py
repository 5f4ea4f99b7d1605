"""``llamavis doctor``: which routes serve the model right now (core: llamavis/providers/diagnose.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

COLUMNS = ("provider", "model", "verdict", "latency_s", "known", "detail")
_STYLE = {"live": "green", "dead": "red", "blocked": "yellow", "not_configured": "dim",
          "unreachable": "red", "unknown": "yellow"}


def doctor(
    provider: Annotated[list[str] | None, typer.Option(
        "-P", "--provider", help="Only this provider (repeatable). Default: all.")] = None,
    model: Annotated[str | None, typer.Option(
        "-m", "--model", help="11b (default), 90b, scout, maverick or a model id.")] = None,
    probe: Annotated[bool, typer.Option(
        "--probe", help="Send one request with a tiny image to every route that is set up "
        "(says first what it may cost).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="The endpoint of the one provider named with -P.")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="The key of the one provider named with -P.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1.0,
                                           help="Seconds allowed per route.")] = 30.0,
    quality: Annotated[bool, typer.Option(
        "--quality", help="Then score every live route on the built-in smoke set "
        "(`llamavis eval --smoke`: 20 small images, 20 requests per route).")] = False,
) -> None:
    """Say which routes serve the model right now, and what blocks the others.

    One verdict per provider: live, dead, blocked, not_configured, unreachable or
    unknown. Without --probe no chat request is sent. Exit 0 when at least one route
    is live, else 1.

    Example:  llamavis doctor --probe -P deepinfra -P cloudflare
    """
    import asyncio  # not on the path of --help

    from llamavis.cli.output.render import note
    from llamavis.providers.diagnose import any_live, diagnose
    verdicts = asyncio.run(diagnose(provider, model=model, probe=probe, base_url=base_url,
                                    api_key=api_key, timeout=timeout, on_note=note))
    rows = [v.to_dict() for v in verdicts]
    live = [v.provider for v in verdicts if v.verdict == "live"]
    reports = _quality(verdicts, rows, base_url, api_key, timeout) if quality and live else []
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        _table(rows)
        from llamavis.cli.output.eval_table import write_report

        for report in reports:
            write_report(report, sys.stdout)
    if not (live and json_out):  # the live list only beside the table; "none live" always
        note(_advice(live))
    raise typer.Exit(0 if any_live(verdicts) else 1)


def _advice(live: list[str]) -> str:
    """The one line after the table: what to type next."""
    if live:
        return (f"live: {', '.join(live)}; with no -P, `llamavis caption IMAGE` asks the routes "
                f"you have keys for, live first (-P {live[0]} pins one)")
    return ("no route is live: see the details above; `llamavis providers` shows how to set "
            "one up, `llamavis models` which provider serves which model")


def _quality(verdicts: list[Any], rows: list[dict[str, Any]], base_url: str | None,
             api_key: str | None, timeout: float) -> list[dict[str, Any]]:
    """The smoke set on every live route; each live row gets its scores under "quality"."""
    from llamavis.cli.eval_run import smoke_quality
    from llamavis.eval.report import headline
    from llamavis.run.options import RunOptions

    live = [(v.provider, v.model) for v in verdicts if v.verdict == "live"]
    one = len(live) == 1  # --base-url/--api-key belong to the one provider named
    options = RunOptions(base_url=base_url if one else None, api_key=api_key if one else None,
                         timeout=timeout)
    from llamavis.cli.output.render import note

    note(f"--quality: the smoke set, 20 requests to each of {len(live)} live route(s)")
    reports = smoke_quality(options, live)
    for row in rows:
        if row["verdict"] == "live":
            row["quality"] = {r["task"]: headline(r, f"{row['provider']}:{row['model']}")
                              for r in reports}
    return reports


def _table(rows: list[dict[str, Any]]) -> None:
    from llamavis.cli.output.render import fancy

    if fancy(sys.stdout):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(*COLUMNS)
        for row in rows:  # Text, not markup: a provider's words may hold "[...]"
            verdict = row["verdict"]
            table.add_row(Text(row["provider"]), Text(row["model"]),
                          Text(verdict, style=_STYLE[verdict]), _latency(row["latency_s"]),
                          Text(_known(row)), Text(row["detail"]))
        Console().print(table)
        return
    widths = {c: max(len(c), *(len(_cell(r, c)) for r in rows)) for c in COLUMNS[:-1]}
    sys.stdout.write("  ".join(c.upper().ljust(widths.get(c, 0)) for c in COLUMNS).rstrip() + "\n")
    for row in rows:
        cells = [_cell(row, c).ljust(widths.get(c, 0)) for c in COLUMNS]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "known":
        return _known(row)
    return _latency(row[column]) if column == "latency_s" else str(row[column])


def _known(row: dict[str, Any]) -> str:
    """The route facts and their age: 'served, 92 d old'."""
    if not row.get("known"):
        return "-"
    return f"{row['known']}, {row['age_days']} d old"


def _latency(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
