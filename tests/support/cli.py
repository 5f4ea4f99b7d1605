"""Run ``llamavis``: as the installed command in a subprocess, or in this process.

Both return a ``subprocess.CompletedProcess[str]`` (returncode, stdout, stderr), so a test
can switch between them without changing its assertions. Use the subprocess where the
process itself matters (signals, a pseudo-terminal, closed descriptors, two processes, the
environment at start-up, the console script); ``invoke`` everywhere else.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TIMEOUT = 120.0  # seconds: the one default for a command a test runs
COMMAND = [sys.executable, "-m", "llamavis"]


def _bytes(data: bytes | str | None) -> bytes | None:
    return data.encode("utf-8") if isinstance(data, str) else data


def _env(env: dict[str, str] | None, base: dict[str, str] | None) -> dict[str, str]:
    return {**(os.environ if base is None else base), **(env or {})}


def llamavis(*args: str, env: dict[str, str] | None = None, input: bytes | str | None = None,
             timeout: float = TIMEOUT, base_env: dict[str, str] | None = None,
             **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed command (``python -m llamavis``) and decode its output as UTF-8.

    The environment is ``base_env`` (default: this process's) plus ``env``; stdin is empty
    (/dev/null) unless ``input`` or ``stdin`` is given.
    """
    if input is None and "stdin" not in popen:
        popen["stdin"] = subprocess.DEVNULL
    if "stdout" not in popen and "stderr" not in popen:
        popen["capture_output"] = True
    proc = subprocess.run([*COMMAND, *args], env=_env(env, base_env), input=_bytes(input),
                          timeout=timeout, **popen)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       (proc.stdout or b"").decode("utf-8", "replace"),
                                       (proc.stderr or b"").decode("utf-8", "replace"))


def start(*args: str, env: dict[str, str] | None = None, base_env: dict[str, str] | None = None,
          **popen: Any) -> subprocess.Popen[bytes]:
    """Start the installed command with piped streams (stdin, stdout, stderr unless given)."""
    for stream in ("stdin", "stdout", "stderr"):
        popen.setdefault(stream, subprocess.PIPE)
    return subprocess.Popen([*COMMAND, *args], env=_env(env, base_env), **popen)


class Pipe(io.TextIOWrapper):
    """A text stream over bytes: like a pipe, no terminal (unless ``tty``)."""

    def __init__(self, data: bytes = b"", *, tty: bool = False) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8", errors="strict", newline=None,
                         write_through=True)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]


@contextmanager
def _environment(env: dict[str, str | None]) -> Iterator[None]:
    """``env`` added to os.environ for the block (a None value unsets the variable)."""
    saved = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def run_here(args: list[str], env: dict[str, str | None] | None, stdin: Any, stdout: Any,
             stderr: Any) -> int:
    """``llamavis ARGS`` in this process with the given standard streams; its exit status."""
    from llamavis.cli import execute
    from llamavis.cli.main import run

    saved = sys.stdin, sys.stdout, sys.stderr
    execute.SKIPS.count = 0  # one process, one count: each command starts from none
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    try:
        with _environment(env or {}):
            return run(list(args))
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def invoke(*args: str, env: dict[str, str] | None = None, input: bytes | str | None = None,
           timeout: float = TIMEOUT, tty: bool = False, **_: Any) -> subprocess.CompletedProcess[str]:
    """Run ``llamavis ARGS`` in this process: what the installed command would print and exit with.

    stdin, stdout and stderr are pipes (no terminal); ``tty`` makes stdout say it is a terminal
    (a single answer then streams; with NO_COLOR, as conftest sets, as plain text). ``env`` is
    added to the environment for the call only. ``timeout`` is accepted for symmetry with
    :func:`llamavis` (pytest-timeout bounds the test). Rendering on a real terminal: pyte in
    tests/test_terminal.py.
    """
    stdin, stdout, stderr = Pipe(_bytes(input) or b""), Pipe(tty=tty), Pipe()
    code = run_here(list(args), dict(env or {}), stdin, stdout, stderr)
    return subprocess.CompletedProcess(["llamavis", *args], code, stdout.text(), stderr.text())
