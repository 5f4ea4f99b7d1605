"""A real third-party server for the integration tests: `transformers serve` with a tiny mllama.

The session-scoped `realserver` fixture takes the tiny model (see build_tiny_mllama.py) that
tests/conftest.py's `tiny_model_home` builds once per session into a temporary HF_HOME, starts
`HF_HUB_OFFLINE=1 transformers serve` on 127.0.0.1 with its output in a log file, waits until
`/v1/models` answers, and stops the server at the end. Everything stays on the loopback
interface: offline flags set, proxies dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
SKIP_REASON = "needs llamavis[realserver]: pip install -e '.[realserver]'"
READY_TIMEOUT_S = 60.0
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass(frozen=True)
class RealServer:
    """Where the running server listens and what it serves."""

    base_url: str  # "http://127.0.0.1:PORT/v1"
    model: str  # the id to send as `model`, e.g. "llamavis-test/tiny-mllama"
    log_path: Path
    hf_home: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def root_url(self) -> str:
        """The server's root, without `/v1`."""
        return self.base_url.removesuffix("/v1")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this directory `realserver`."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.realserver)


def offline_env(hf_home: Path | None = None) -> dict[str, str]:
    """The environment for anything started here: offline, no proxies, loopback only."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
    )
    if hf_home is not None:
        env["HF_HOME"] = str(hf_home)
    return env


def _transformers_cli() -> str | None:
    """The `transformers` command next to this interpreter, else the one on PATH."""
    sibling = Path(sys.executable).parent / "transformers"
    return str(sibling) if sibling.is_file() else shutil.which("transformers")


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> bool:
    """Poll `url` until it answers 200, the process dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.get(url).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server, killing it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _start(cli: str, hf_home: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start `transformers serve` on a free loopback port; return the process and root URL."""
    port = _free_port()
    cmd = [cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--log-level", "info"]
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        # One intra-op thread: concurrent requests otherwise oversubscribe a small CI machine.
        env = {**offline_env(hf_home), "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def realserver(tiny_model_home, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """A running `transformers serve` with the tiny mllama model, on 127.0.0.1."""
    cli = _transformers_cli()
    if cli is None:
        pytest.skip(f"the `transformers` command is not installed; {SKIP_REASON}")
    hf_home, model_id, build_s = tiny_model_home
    log_path = tmp_path_factory.mktemp("realserver") / "transformers-serve.log"
    for _attempt in range(2):  # a second try only if the port was taken meanwhile
        started = time.monotonic()
        proc, root = _start(cli, hf_home, log_path)
        if _wait_ready(proc, f"{root}/v1/models", READY_TIMEOUT_S):
            break
        _stop(proc)
    else:
        pytest.fail(f"transformers serve did not become ready:\n{log_path.read_text()[-4000:]}")
    timings = {"build_s": build_s, "start_s": time.monotonic() - started}
    server = RealServer(f"{root}/v1", model_id, log_path, hf_home, timings)
    try:
        timings["first_load_s"] = _preload(server)
        yield server
    finally:
        _stop(proc)


def _preload(server: RealServer) -> float:
    """Have the server load the model now, so the first test does not pay for it."""
    started = time.monotonic()
    # Older servers lack /load_model; then the first request loads the model instead.
    with httpx.Client(trust_env=False, timeout=60.0) as client, contextlib.suppress(httpx.HTTPError):
        client.post(f"{server.root_url}/load_model", json={"model": server.model}).read()
    return time.monotonic() - started


@pytest.fixture
def loopback_env() -> dict[str, str]:
    """The environment for a llamavis subprocess: this test's isolated dirs, offline, no proxies."""
    return offline_env()


@pytest.fixture(scope="session")
def llamavis_exe() -> str:
    """The installed `llamavis` command (next to this interpreter, else on PATH)."""
    sibling = Path(sys.executable).parent / "llamavis"
    exe = str(sibling) if sibling.is_file() else shutil.which("llamavis")
    if exe is None:
        pytest.skip("the `llamavis` command is not installed: pip install -e '.[realserver]'")
    return exe
