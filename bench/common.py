"""Shared pieces: figures, isolated environments, running the installed CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable
# Variables that could send a request elsewhere, choose another provider, or use a real key.
_SCRUB_PREFIXES = ("LLAMAVIS_", "OPENROUTER_", "NOVITA_", "DEEPINFRA_", "OLLAMA_")
_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclass
class Figure:
    """One measured figure beside its in-run baseline."""

    section: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None  # value / baseline unless given
    goal: str = ""
    met: bool | None = None  # None: no goal, or not measurable in this run
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline


class Workdir:
    """A temp dir for the whole run, with fresh cache/config dirs on demand."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="llamavis-bench-"))
        self._n = 0

    def fresh(self, name: str) -> Path:
        self._n += 1
        path = self.root / f"{self._n:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def env(self, cache: Path | None = None, **extra: str) -> dict[str, str]:
        """The environment of one CLI run: isolated dirs, no keys, no proxies."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_SCRUB_PREFIXES) and k not in _PROXIES}
        # An installed package runs from compiled bytecode (pip writes the .pyc files); with
        # this set, an editable checkout would compile llamavis's sources on every start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cache = cache or self.fresh("cache")
        env["LLAMAVIS_CACHE_DIR"] = str(cache / "cache")
        env["LLAMAVIS_CONFIG_DIR"] = str(cache / "config")
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env.setdefault("TERM", "xterm-256color")
        env.update(extra)
        return env

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Run:
    """One finished subprocess: exit code, wall time from start, peak RSS, output."""

    code: int
    wall: float
    started: float  # time.monotonic() just before the process was created
    maxrss_kb: int
    stdout: bytes
    stderr: bytes


def run_process(cmd: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 300,
                stdin: bytes | None = None) -> Run:
    """Run ``cmd``, outputs to temp files (no pipe back-pressure); peak RSS from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
        if stdin is not None:
            proc.stdin.write(stdin)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # blocks without holding the GIL
        finally:
            killer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, wall, started, usage.ru_maxrss, out.read(), err.read())


def cli(*args: str) -> list[str]:
    """The installed CLI, the way the brief names it: ``python -m llamavis ...``."""
    return [PYTHON, "-m", "llamavis", *args]


def local(url: str) -> list[str]:
    return ["--provider", "local", "--base-url", url]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"
