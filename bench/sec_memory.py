"""4. Peak memory for a small and a large batch; 5. a re-run answered from the cache."""

from __future__ import annotations

import json
from pathlib import Path

from common import PYTHON, Figure, Run, Workdir, cli, local, run_process
from loopback import Loopback
from sec_batch import check

RSS = str(Path(__file__).with_name("rss.py"))


def memory_figures(server: Loopback, work: Workdir, small: Path, large: Path,
                   counts: tuple[int, int], j: int = 32) -> list[Figure]:
    """Peak RSS of the CLI process (see rss.py) for two batch sizes at zero latency."""
    server.configure(latency=0.0, jitter=0.0)
    peaks, rates, notes = [], [], []
    idle, _ = peak_rss(work, cli("--help"))
    for folder, count in zip((small, large), counts, strict=True):
        server.reset()
        peak, run = peak_rss(work, cli("caption", str(folder), "--jsonl", "--no-cache", "-j",
                                       str(j), *local(server.url)))
        peaks.append(peak)
        rates.append(count / run.wall)
        notes.append(check(run, server.stats(), count, f"{count:,}-image run"))
    problems = "; ".join(n for n in notes if n)
    small_n, large_n = counts
    full = counts == (1000, 10000)
    return [
        Figure("memory", f"peak RSS, {small_n:,} images, -j {j}", peaks[0], "MiB", idle,
               "peak RSS of `llamavis --help`", note=f"64x48 JPEGs, each a different picture; {rates[0]:.0f} img/s at zero latency"),
        Figure("memory", f"peak RSS, {large_n:,} images, -j {j}", peaks[1], "MiB", peaks[0],
               f"peak RSS for {small_n:,} images", goal="≤ 1.2",
               met=(peaks[1] / peaks[0] <= 1.2 and not problems),
               note=(f"{rates[1]:.0f} img/s at zero latency" if full else
                     f"quick run: {small_n:,} vs {large_n:,}, not the goal's 1,000 vs 10,000")
               + (f"; PROBLEM: {problems}" if problems else "")),
    ]


def peak_rss(work: Workdir, cmd: list[str]) -> tuple[float, Run]:
    """Peak RSS in MiB of ``cmd``, forked by the small rss.py process."""
    peak_file = work.fresh("rss") / "peak"
    run = run_process([PYTHON, RSS, str(peak_file), *cmd], env=work.env(), cwd=work.root,
                      timeout=600)
    return int(peak_file.read_text()) / 1024, run


def cache_figures(server: Loopback, work: Workdir, folders: dict[str, Path], count: int,
                  startup: float | None, j: int = 16) -> list[Figure]:
    """Fill a fresh cache at zero latency, then time the same command again."""
    server.configure(latency=0.0, jitter=0.0)
    figures = []
    for label, folder in folders.items():
        home = work.fresh("cache-home")
        cmd = cli("caption", str(folder), "--jsonl", "-j", str(j), *local(server.url))
        server.reset()
        fill = run_process(cmd, env=work.env(home), cwd=work.root)
        problems = check(fill, server.stats(), count, "filling run")
        server.reset()
        again = run_process(cmd, env=work.env(home), cwd=work.root)
        sent = server.stats().requests
        cached = sum(1 for line in again.stdout.splitlines() if json.loads(line).get("cached"))
        if again.code != 0 or cached != count or sent:
            problems += (f"; re-run exited {again.code}, {cached}/{count} cached, "
                         f"{sent} requests sent")
        goal = count == 1000 and label.startswith("640")
        figures.append(Figure(
            "cache", f"re-run of {count:,} cached {label} images: s", again.wall, "s",
            fill.wall, "first run of the same command: uncached, zero latency",
            goal="< 2 s" if goal else "", met=(again.wall < 2 and not problems) if goal else None,
            note=(f"-j {j}; {again.wall / startup:.1f}x `llamavis --help` start-up" if startup
                  else f"-j {j}") + (f"; PROBLEM: {problems.lstrip('; ')}" if problems else ""),
        ))  # fmt: skip
    return figures
