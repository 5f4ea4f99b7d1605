"""The machine's description, BENCHMARKS.md, and the table printed last."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from common import Figure, fmt

SECTIONS = {
    "batch": "1. Batch throughput, 200 ms ± 50 ms latency, 640x480 JPEGs",
    "ceiling": "1b. Client ceiling at zero latency",
    "prepare": "2. Image preparation",
    "startup": "3. Start-up",
    "memory": "4. Memory",
    "cache": "5. Cache",
    "stream": "6. Streaming",
    "local": "7. In-process engine (-P transformers, tiny random model, one thread)",
}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine(repo: Path) -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal:")), 0)
    commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu,
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "RAM": f"{mem / 2**20:.1f} GiB",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "llamavis": f"{_version('llamavis')} (git {commit})",
        "libraries": ", ".join(f"{d} {_version(d)}" for d in
                               ("httpx", "httpcore", "pillow", "pillow-heif", "typer", "rich")),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _ratio(f: Figure) -> str:
    if f.ratio is None:
        return "–"
    return f"{f.ratio:.3f}" if f.ratio < 1 else f"{f.ratio:.2f}"


def _result(f: Figure) -> str:
    if not f.goal:
        return ""
    return {True: "met", False: "**MISSED**", None: "not measured"}[f.met]


def _value(f: Figure) -> str:
    return "–" if f.value is None else f"{fmt(f.value)} {f.unit}"


def markdown(figures: list[Figure], machine: dict[str, str], extra: dict[str, list[str]],
             quick: bool, durations: dict[str, float],
             loads: dict[str, float] | None = None) -> str:
    out = ["# Benchmarks", "",
           f"Written by `python bench/run.py{' --quick' if quick else ''}` "
           f"({'quick, reduced set' if quick else 'full run'}). Every figure is measured in "
           "one run on the machine below, beside a baseline measured in the same run; "
           "**ratio = value / baseline**. The machine is shared and noisy: compare ratios, "
           "not absolute times, between runs.", "", "## Machine", "",
           "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in machine.items()]
    missed = [f for f in figures if f.goal and f.met is False]
    unmeasured = [f for f in figures if f.goal and f.met is None]
    out += ["", "## Goals", ""]
    for f in in_order(figures):
        if f.goal:
            base = f" (baseline {fmt(f.baseline)} {f.unit}, ratio {_ratio(f)})" if f.baseline else ""
            out.append(f"- {_result(f)}: {f.name} — {_value(f)}{base}, goal {f.goal}")
    if not missed and not unmeasured:
        out.append("\nEvery goal was met in this run.")
    for section, title in SECTIONS.items():
        rows = [f for f in figures if f.section == section]
        if not rows:
            continue
        took = durations.get(section)
        load = (loads or {}).get(section)
        when = ", ".join(x for x in (f"{took:.0f} s" if took else "",
                                     f"load average {load:.2f} after it" if load is not None else "") if x)
        out += ["", f"## {title}" + (f" ({when})" if when else ""), "",
                "| figure | value | baseline | ratio | goal | result | notes |",
                "|---|---|---|---|---|---|---|"]
        for f in rows:
            base = "–" if f.baseline is None else f"{fmt(f.baseline)} {f.unit} ({f.baseline_label})"
            out.append(f"| {f.name} | {_value(f)} | {base} | {_ratio(f)} | {f.goal or ''} | "
                       f"{_result(f)} | {f.note.replace('|', '/')} |")
        for line in extra.get(section, []):
            out.append(line)
    found = diagnose(figures)
    if found:
        out += ["", "## What the figures point at", "", *[f"- {line}" for line in found]]
    out += ["", "## Method", "", *METHOD]
    return "\n".join(out) + "\n"


METHOD = [
    "- The CLI runs as a subprocess, exactly as installed: `python -m llamavis caption DIR "
    "--jsonl --no-cache -j N --provider local --base-url http://127.0.0.1:PORT/v1`, with "
    "`LLAMAVIS_CACHE_DIR`/`LLAMAVIS_CONFIG_DIR` pointing at fresh temp dirs, no keys and no "
    "proxies in its environment. Nothing leaves 127.0.0.1.",
    "- The server (`bench/loopback.py`) is stdlib asyncio in a thread of the benchmark "
    "process: one coroutine per connection, so 64+ slow requests cost nothing. Latency is "
    "uniform in [150, 250] ms (mean 200 ms); at zero latency it answers at once.",
    "- Every CLI run may write and use compiled bytecode, as an installed package does "
    "(`PYTHONDONTWRITEBYTECODE` is dropped from its environment); warm-up runs compile it "
    "before anything is timed.",
    "- Wall clock runs from process creation to exit: nothing is subtracted. The steady "
    "state runs from the server's first request to its last answer, which leaves out "
    "interpreter start-up, imports, and exit.",
    "- The raw client (`bench/rawclient.py`) reads, base64-encodes and posts the same "
    "images on kept-alive stdlib asyncio connections without decoding them: the floor of "
    "this machine and server, not a competitor.",
    "- A second baseline client (`bench/httpxclient.py`) sends the raw client's payloads "
    "through one `httpx.AsyncClient` with llamavis's pool limits: what the HTTP library "
    "allows before llamavis adds anything.",
    "- Peak RSS is `ru_maxrss` read by `bench/rss.py`, a small process that forks the CLI "
    "(Linux keeps a forking parent's high-water mark across exec, so the benchmark process, "
    "which holds large images, must not be the parent).",
    "- Images are made with Pillow: photo-like colour fields, texture and noise; batch "
    "folders reuse 32 pictures, each file made unique by a JPEG comment, so every file has "
    "its own bytes and cache key. Memory uses 64x48 JPEGs, every one a different picture.",
    "- Streaming: the server thinks 300 ms, then sends a token every 50 ms; the first "
    "answer byte is the first word of the answer appearing on stdout (a spinner before it "
    "does not count). On a pipe the CLI asks for a non-streamed answer, so the server's "
    "first token is when it would have been generated.",
]


def _find(figures: list[Figure], section: str, prefix: str) -> Figure | None:
    return next((f for f in figures if f.section == section and f.name.startswith(prefix)
                 and f.value is not None), None)


def diagnose(figures: list[Figure]) -> list[str]:
    """Plain sentences drawn from the figures: which baseline a missed figure sits next to."""
    lines = []
    for j in (16, 64):
        wall = _find(figures, "batch", f"-j {j}: images/s, wall")
        ours = _find(figures, "batch", f"-j {j}: images/s, steady")
        if wall and ours and wall.met is False and ours.met:
            lines.append(f"-j {j}: the steady state meets the goal and the wall clock does not: "
                         f"the difference is the fixed start-up ({wall.note.split('; ')[1]}) "
                         "and the last round's stragglers, a large share of a run this short "
                         f"({wall.note.split(';')[0]}).")
        alone = _find(figures, "batch", f"-j {j}: the same payloads through one httpx")
        raw = _find(figures, "batch", f"-j {j}: raw stdlib")
        if not (ours and raw and ours.met is False):
            continue
        text = (f"-j {j}: llamavis keeps {ours.value:.0f} img/s in steady state, while the raw "
                f"client reaches {raw.value:.0f} img/s on the same machine and server")
        if alone:
            text += (f", and one bare httpx.AsyncClient {alone.value:.0f} img/s (wall clock): "
                     + ("the HTTP client library is the bound, not llamavis's own code"
                        if alone.value < 0.6 * raw.value else "the HTTP library is not the bound"))
        if ours.value >= 0.9 * raw.value:
            text += (": the raw client does no better, so this run's length (start-up and the "
                     "last round's stragglers) and the machine's load are the bound")
        fork = _find(figures, "batch", f"-j {j}: the same payloads through one httpx2")
        if fork:
            text += f"; httpx2, the fork llm uses, reaches {fork.value:.0f} img/s in the same run"
        lines.append(text + ".")
    ours = _find(figures, "ceiling", "zero latency, -j 16: requests/s, wall")
    alone = _find(figures, "ceiling", "zero latency, -j 16: one httpx")
    if ours and alone and ours.baseline:
        text = (f"Zero latency: llamavis {ours.value:.0f} req/s, one bare httpx.AsyncClient "
                f"{alone.value:.0f} req/s, the raw client {ours.baseline:.0f} req/s: ")
        if ours.value < alone.value:
            text += (f"llamavis adds about {1000 / ours.value - 1000 / alone.value:.1f} ms of "
                     "wall time per image to what the HTTP library costs.")
        else:
            text += ("llamavis outruns the bare HTTP client: each of its pools carries one request "
                     "at a time, where one pool's per-request walk over all its connections costs "
                     "the bare client; what is left is the HTTP library's own per-request work.")
        if ours.met is False:
            text += (f" The goal of {ours.goal} is absolute: on a loaded machine every rate here "
                     "falls, the raw client's too (compare the ratio with earlier runs).")
        lines.append(text)
    big = _find(figures, "cache", "re-run of 1,000 cached 640x480")
    tiny = _find(figures, "cache", "re-run of 1,000 cached 64x48")
    if big and tiny and big.value > 1.3 * tiny.value:
        lines.append(f"Cache: a re-run of 1,000 cached 640x480 images takes {big.value:.2f} s "
                     f"against {tiny.value:.2f} s for 64x48 ones: both decode nothing (the key is "
                     "the bytes as read), so the difference is reading and hashing larger files.")
    first = _find(figures, "startup", "first request after process start")
    if first and first.met is False:
        lines.append(f"First request: {first.value:.3f} s after the process starts (the raw "
                     f"client's: {first.baseline:.3f} s), against a goal of {first.goal}: nearly "
                     "all of it is importing what the request needs (section 3 lists each "
                     "package and who imports it); typer imports pydantic to coerce options.")
    batch8 = _find(figures, "local", "images/s at --batch-size 8")
    if batch8 and batch8.ratio:
        lines.append(f"In-process engine: batch 8 gives {batch8.ratio:.1f}x the images/s of batch 1 "
                     "with the tiny random model on the CPU. That ratio is per-step Python and "
                     "kernel-launch overhead shared across a batch; it does not predict the real "
                     "11B's speed. On a GPU each decode step reads the ~21 GB of weights whatever the "
                     "batch, so batching should pay at least as much until memory (about 0.2 GB of "
                     "cross-attention states per image) runs out. The import cost carries over; "
                     "loading becomes reading ~21 GB from disk; time to first token becomes the "
                     "vision encoder plus prefill (hundreds of ms on a GPU, seconds on a CPU); "
                     "peak RSS here is libraries, not weights, which on a GPU live in its memory.")
    llm = _find(figures, "startup", "llamavis --help against llm")
    if llm and llm.met is False:
        lines.append(f"Start-up: llamavis --help takes {llm.value:.3f} s against llm's "
                     f"{llm.baseline:.3f} s (goal ≤ 0.3x, i.e. ≤ {0.3 * llm.baseline:.3f} s); "
                     "see the modules imported on --help under section 3.")
    return lines


def in_order(figures: list[Figure]) -> list[Figure]:
    order = list(SECTIONS)
    return sorted(figures, key=lambda f: order.index(f.section) if f.section in order else 99)


def print_table(figures: list[Figure]) -> None:
    headers = ("section", "figure", "value", "baseline", "ratio", "goal", "result")
    rows = [(f.section, f.name[:64], _value(f),
             "–" if f.baseline is None else f"{fmt(f.baseline)} {f.unit}",
             _ratio(f), f.goal, _result(f).strip("*")) for f in in_order(figures)]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
