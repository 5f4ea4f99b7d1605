"""1. Batch throughput at -j 4/16/64 against 200 ms latency, and the zero-latency ceiling."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from common import PYTHON, Figure, Run, Workdir, cli, local, run_process
from loopback import Loopback, Stats

LATENCY = 0.2
JITTER = 0.05  # uniform in [150, 250] ms
GOALS = {16: 0.9, 64: 0.8}
CEILING_GOAL = 400.0  # requests/s at zero latency, -j 16, 640x480 JPEGs, wall clock
RAW_CLIENT = str(Path(__file__).with_name("rawclient.py"))
HTTPX_CLIENT = str(Path(__file__).with_name("httpxclient.py"))


def subset(folder: Path, count: int) -> Path:
    """A folder of the first ``count`` files of ``folder``, hard-linked (no copies)."""
    target = folder.parent / f"{folder.name}-first{count}"
    if not target.exists():
        target.mkdir()
        for name in sorted(os.listdir(folder))[:count]:
            os.link(folder / name, target / name)
    return target


def run_llamavis(server: Loopback, work: Workdir, folder: Path, j: int) -> tuple[Run, Stats]:
    server.reset()
    run = run_process(cli("caption", str(folder), "--jsonl", "--no-cache", "-j", str(j),
                          *local(server.url)), env=work.env(), cwd=work.root)
    return run, server.stats()


def httpx2_python(llm: str | None) -> str | None:
    """The Python of llm's throwaway venv if it can import httpx2 (llm's HTTP library)."""
    if not llm:
        return None
    python = Path(llm).parent / "python"
    try:
        ok = subprocess.run([str(python), "-c", "import httpx2"], capture_output=True,
                            timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return str(python) if ok else None


def run_raw(server: Loopback, work: Workdir, folder: Path, j: int,
            client: str = RAW_CLIENT, python: str = PYTHON,
            extra: tuple[str, ...] = ()) -> tuple[Run, Stats]:
    server.reset()
    run = run_process([python, client, str(folder), server.url, str(j), *extra],
                      env=work.env(), cwd=work.root)
    return run, server.stats()


def check(run: Run, stats: Stats, count: int, what: str) -> str:
    """Problems worth a note: a failed run, missing lines, more than -j in flight."""
    lines = run.stdout.count(b"\n")
    problems = []
    if run.code != 0:
        problems.append(f"{what} exited {run.code}: {run.stderr.decode(errors='replace')[-300:]}")
    if lines != count:
        problems.append(f"{what} wrote {lines} lines for {count} images")
    if stats.requests != count:
        problems.append(f"{what} sent {stats.requests} requests for {count} images")
    return "; ".join(problems)


def window(stats: Stats) -> float:
    """Seconds from the server's first request to its last response."""
    if stats.first_request is None or stats.last_response is None:
        return float("nan")
    return stats.last_response - stats.first_request


def throughput(server: Loopback, work: Workdir, folder: Path, rounds: int,
               httpx_at: tuple[int, ...] = (16, 64), httpx2: str | None = None) -> list[Figure]:
    """Images/s at each -j as a fraction of j / latency: wall clock, steady state, raw floor."""
    server.configure(latency=LATENCY, jitter=JITTER)
    figures: list[Figure] = []
    for j in (4, 16, 64):
        count = rounds * j
        images = subset(folder, count)
        ideal = j / LATENCY
        run, stats = run_llamavis(server, work, images, j)
        raw, raw_stats = run_raw(server, work, images, j)
        span = window(stats)
        busy = stats.busy_integral / (span * j) if span > 0 else float("nan")
        startup = (stats.first_request or run.started) - run.started
        problems = "; ".join(p for p in (check(run, stats, count, "llamavis"),
                                         check(raw, raw_stats, count, "raw client")) if p)
        goal = GOALS.get(j)
        label = f"ideal j/latency = {ideal:.0f}/s"
        note = (f"{count} images, {count / j:.0f} rounds; wall {run.wall:.2f} s, first request "
                f"{startup:.2f} s after start; max in flight {stats.max_in_flight}/{j}; "
                f"mean in flight {busy * j:.1f} ({busy:.0%} of j) during the server window")
        figures.append(Figure(
            "batch", f"-j {j}: images/s, wall clock from process start", count / run.wall,
            "img/s", ideal, label, goal=f"≥ {goal}" if goal else "", note=note + _sep(problems),
            met=None if goal is None else (count / run.wall) / ideal >= goal and not problems,
        ))  # fmt: skip
        steady = count / span
        figures.append(Figure(
            "batch", f"-j {j}: images/s, steady state (server's first request to last answer)",
            steady, "img/s", ideal, label, goal=f"≥ {goal}" if goal else "",
            met=None if goal is None else steady / ideal >= goal and not problems,
            note="excludes interpreter start-up, imports and exit",
        ))  # fmt: skip
        figures.append(Figure(
            "batch", f"-j {j}: raw stdlib client (floor of this machine + server)",
            count / raw.wall, "img/s", ideal, label,
            note=f"wall {raw.wall:.2f} s; max in flight {raw_stats.max_in_flight}",
        ))  # fmt: skip
        if j in httpx_at:
            figures.append(_httpx_alone(server, work, images, j, count, ideal, label))
        if j == 64 and httpx2:
            figures.append(_httpx_alone(server, work, images, j, count, ideal, label, httpx2))
    return figures


def _httpx_alone(server: Loopback, work: Workdir, images: Path, j: int, count: int,
                 ideal: float, label: str, httpx2: str | None = None) -> Figure:
    if httpx2:
        run, stats = run_raw(server, work, images, j, HTTPX_CLIENT, httpx2, ("httpx2",))
        name = f"-j {j}: the same payloads through one httpx2.AsyncClient (llm's library)"
        note = "httpx2 from llm's throwaway venv: the pydantic fork of httpx/httpcore"
    else:
        run, stats = run_raw(server, work, images, j, HTTPX_CLIENT)
        name = f"-j {j}: the same payloads through one httpx.AsyncClient, no llamavis"
        note = "what the HTTP library llamavis uses allows"
    problem = check(run, stats, count, "httpx client")
    return Figure("batch", name, count / run.wall, "img/s", ideal, label,
                  note=f"wall {run.wall:.2f} s; {note}" + _sep(problem))


def ceiling(server: Loopback, work: Workdir, folder: Path, count: int, j: int = 16) -> list[Figure]:
    """Zero latency: what the client itself can push, against the raw client in the same run."""
    server.configure(latency=0.0, jitter=0.0)
    images = subset(folder, count)
    run, stats = run_llamavis(server, work, images, j)
    raw, raw_stats = run_raw(server, work, images, j)
    problems = "; ".join(p for p in (check(run, stats, count, "llamavis"),
                                     check(raw, raw_stats, count, "raw client")) if p)
    raw_rate = count / raw.wall
    span = window(stats)
    alone, alone_stats = run_raw(server, work, images, j, HTTPX_CLIENT)
    rate = count / run.wall
    return [
        Figure("ceiling", f"zero latency, -j {j}: requests/s, wall clock", rate,
               "req/s", raw_rate, "raw stdlib client, same images",
               goal=f"≥ {CEILING_GOAL:.0f} req/s", met=rate >= CEILING_GOAL and not problems,
               note=f"{count} 640x480 JPEGs; wall {run.wall:.2f} s (raw {raw.wall:.2f} s); "
                    f"max in flight {stats.max_in_flight}" + _sep(problems)),
        Figure("ceiling", f"zero latency, -j {j}: requests/s, steady state", count / span,
               "req/s", count / window(raw_stats), "raw client, steady state",
               note="server's first request to last answer"),
        Figure("ceiling", f"zero latency, -j {j}: one httpx.AsyncClient, no llamavis",
               count / alone.wall, "req/s", raw_rate, "raw stdlib client, same images",
               note=f"wall {alone.wall:.2f} s" + _sep(check(alone, alone_stats, count, "httpx"))),
    ]


def _sep(text: str) -> str:
    return f"; PROBLEM: {text}" if text else ""


def profile_top(server: Loopback, work: Workdir, folder: Path, j: int, rows: int = 8) -> list[str]:
    """Where the CLI's main thread (the event loop) spends its time at -j ``j``, by cProfile."""
    import pstats

    server.configure(latency=LATENCY, jitter=JITTER)
    out = work.fresh("profile") / "cli.prof"
    cmd = [PYTHON, "-m", "cProfile", "-o", str(out), "-m", "llamavis", "caption", str(folder),
           "--jsonl", "--no-cache", "-j", str(j), *local(server.url)]
    run = run_process(cmd, env=work.env(), cwd=work.root)
    if run.code != 0 or not out.exists():
        return [f"profiling failed: exit {run.code}"]
    stats = pstats.Stats(str(out))
    total = stats.total_tt  # type: ignore[attr-defined]
    lines = [f"cProfile of the CLI at -j {j} ({total:.1f} s of main-thread time, "
             f"wall {run.wall:.1f} s under the profiler), by own time:"]
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    for (path, line, func), (_, calls, own, cumulative, _) in entries[:rows]:
        where = "/".join(Path(path).parts[-3:]) if path != "~" else "built-in"
        lines.append(f"{own:6.2f} s own, {cumulative:6.2f} s cumulative, {calls:>8,} calls  "
                     f"{func} ({where}:{line})")
    return lines
