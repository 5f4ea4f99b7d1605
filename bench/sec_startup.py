"""3. Start-up: `llamavis --help` against `python -c 'import typer'` (and `llm --help` if at hand),
and how soon after the process starts a caption's request reaches the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PYTHON, Figure, Workdir, cli, local, median, run_process
from loopback import Loopback

FIRST_REQUEST_GOAL = 0.25  # seconds from process start to the server holding the request
RAW_CLIENT = str(Path(__file__).with_name("rawclient.py"))

HEAVY = ("httpx", "PIL", "pydantic", "jsonschema", "rich", "markdown_it", "pygments")
# what a caption's first request waits for: the parser, the event loop, HTTP, images, store
ON_THE_WAY = ("typer", "pydantic", "asyncio", "httpx", "httpcore", "anyio", "PIL", "sqlite3",
              "rich", "jsonschema", "orjson")
LLM_VENV = Path(tempfile.gettempdir()) / "llamavis-bench-llm-venv"


def llamavis_command() -> list[str]:
    """The console script a user types, next to this interpreter; else ``python -m llamavis``."""
    script = Path(PYTHON).parent / "llamavis"
    return [str(script)] if script.exists() else [PYTHON, "-m", "llamavis"]


def find_llm(install: bool) -> tuple[str | None, str]:
    """``llm`` from $LLAMAVIS_BENCH_LLM, a throwaway venv, or (if ``install``) a fresh one."""
    given = os.environ.get("LLAMAVIS_BENCH_LLM")
    if given:
        return given, f"llm from LLAMAVIS_BENCH_LLM ({given})"
    exe = LLM_VENV / "bin" / "llm"
    if exe.exists():
        return str(exe), f"llm in the throwaway venv {LLM_VENV}"
    if not install:
        return None, "llm not installed (the full run installs it into a throwaway venv)"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LLM_VENV)], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([str(LLM_VENV / "bin" / "pip"), "install", "-q", "llm"], check=True,
                       capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(LLM_VENV, ignore_errors=True)
        return None, f"`pip install llm` into a throwaway venv failed ({type(exc).__name__})"
    return str(exe), f"llm installed into the throwaway venv {LLM_VENV} by this run"


def startup_figures(work: Workdir, reps: int, llm: str | None, llm_note: str) -> list[Figure]:
    """Median wall time of each command over ``reps`` interleaved runs."""
    ours = llamavis_command()
    commands = {
        "llamavis --help": [*ours, "--help"],
        "llamavis caption --help": [*ours, "caption", "--help"],
        "import typer": [PYTHON, "-c", "import typer"],
        "python -c pass": [PYTHON, "-c", "pass"],
    }
    if llm:
        commands["llm --help"] = [llm, "--help"]
    times: dict[str, list[float]] = {name: [] for name in commands}
    env = work.env(LLM_USER_PATH=str(work.fresh("llm-user")))
    for cmd in commands.values():  # warm the page cache and .pyc files first
        run_process(cmd, env=env, cwd=work.root)
    for _ in range(reps):
        for name, cmd in commands.items():
            run = run_process(cmd, env=env, cwd=work.root)
            if run.code != 0:
                raise RuntimeError(f"{name} exited {run.code}: {run.stderr[-300:]!r}")
            times[name].append(run.wall)
    med = {name: median(values) for name, values in times.items()}
    base = "python -c 'import typer'"
    figures = [
        Figure("startup", "llamavis --help: s (median)", med["llamavis --help"], "s",
               med["import typer"], base, note=f"median of {reps}; `python -c pass` "
               f"takes {med['python -c pass']:.3f} s here"),
        Figure("startup", "llamavis caption --help: s (median)", med["llamavis caption --help"],
               "s", med["import typer"], base),
    ]
    if llm:
        ratio = med["llamavis --help"] / med["llm --help"]
        figures.append(Figure(
            "startup", "llamavis --help against llm --help", med["llamavis --help"], "s",
            med["llm --help"], "llm --help (median, same run)", goal="≤ 0.3",
            met=ratio <= 0.3, note=llm_note,
        ))  # fmt: skip
    else:
        figures.append(Figure("startup", "llm --help", None, "s", goal="≤ 0.3", note=llm_note))
    return figures


def first_request_figures(server: Loopback, work: Workdir, image: Path, reps: int) -> list[Figure]:
    """Process start to the server's first request, median of ``reps`` one-image runs,
    beside the raw stdlib client doing the same (interpreter, asyncio, one read and post)."""
    server.configure(latency=0.0, jitter=0.0)
    folder = work.fresh("one-image")
    (folder / image.name).write_bytes(image.read_bytes())
    commands = {
        "llamavis": cli("caption", str(folder / image.name), "--jsonl", "--no-cache",
                        *local(server.url)),
        "raw": [PYTHON, RAW_CLIENT, str(folder), server.url, "1"],
    }
    firsts: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # compile the request path's bytecode before timing it
        run_process(cmd, env=work.env(), cwd=work.root)
    for _ in range(reps):
        for name, cmd in commands.items():
            server.reset()
            run = run_process(cmd, env=work.env(), cwd=work.root)
            first = server.stats().first_request
            if run.code != 0 or first is None:
                raise RuntimeError(f"{name} exited {run.code}: {run.stderr[-300:]!r}")
            firsts[name].append(first - run.started)
    ours, raw = median(firsts["llamavis"]), median(firsts["raw"])
    return [Figure(
        "startup", "first request after process start: s (median)", ours, "s", raw,
        "raw stdlib client's first request (median, same run)",
        goal=f"≤ {FIRST_REQUEST_GOAL} s", met=ours <= FIRST_REQUEST_GOAL,
        note=f"median of {reps} runs of `llamavis caption IMAGE --no-cache` (one 640x480 JPEG); "
             f"fastest {min(firsts['llamavis']):.3f} s",
    )]  # fmt: skip


def heavy_imports(work: Workdir, args: list[str], heavy: tuple[str, ...] = HEAVY) -> dict[str, str]:
    """Heavy top-level modules imported by ``llamavis ARGS``, each with its importer chain."""
    run = run_process([PYTHON, "-X", "importtime", "-m", "llamavis", *args],
                      env=work.env(), cwd=work.root)
    rows = []
    for line in run.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or line.count("|") < 2:
            continue
        own, _, raw = line.split("|", 2)
        own = own.removeprefix("import time:").strip()
        if not own.isdigit():  # the header line
            continue
        rows.append((len(raw) - len(raw.lstrip()), raw.strip(), int(own)))
    found: dict[str, str] = {}
    for index, (_, name, _) in enumerate(rows):
        top = name.split(".")[0]
        if top in heavy and top not in found:
            spent = sum(row[2] for row in rows if row[1].split(".")[0] == top) / 1000
            found[top] = f"{_chain(rows, index)} ({spent:.0f} ms in its own modules)"
    return found


def _chain(rows: list[tuple[int, str, int]], index: int) -> str:
    """'pkg (N ms) ← importer ← ...': importtime lists a module before the one importing it."""
    chain = [rows[index]]
    indent = rows[index][0]
    for row in rows[index + 1:]:
        if row[0] < indent:
            chain.append(row)
            indent = row[0]
    top = chain[0][1].split(".")[0]
    own = [row for row in chain if row[1].split(".")[0] == top]
    rest = [row[1] for row in chain[len(own):]]
    # the outer modules of other third-party packages say enough; llamavis's are all named
    shown = [name for i, name in enumerate(rest) if name.startswith("llamavis")
             or i + 1 == len(rest) or rest[i + 1].split(".")[0] != name.split(".")[0]]
    head = top
    return " ← ".join([head, *shown]) if shown else f"{head}, imported at top level"
