"""Shared fixtures: every test gets its own config and cache dirs and no API keys."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

KEY_VARS = (
    "OPENROUTER_API_KEY",
    "NOVITA_API_KEY",
    "DEEPINFRA_API_KEY",
    "DEEPINFRA_TOKEN",
    "LLAMAVIS_API_KEY",
    "LLAMAVIS_PROVIDER",
    "LLAMAVIS_MODEL",
    "LLAMAVIS_BASE_URL",
    "LLAMAVIS_FALLBACK",
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_AUTH_TOKEN",
    "CLOUDFLARE_ACCOUNT_ID",
    "AZURE_AI_CHAT_KEY",
    "AZURE_AI_CHAT_ENDPOINT",
)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point config and cache at fresh temp dirs and drop every provider key."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("LLAMAVIS_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("LLAMAVIS_CACHE_DIR", str(base / "cache"))
    for var in list(os.environ):
        if var.endswith(("_API_KEY", "_BASE_URL")) or var in KEY_VARS:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    yield base


def make_image_bytes(
    size: tuple[int, int] = (64, 48),
    fmt: str = "JPEG",
    mode: str = "RGB",
    color=(200, 30, 30),
    **save_kwargs,
) -> bytes:
    """An image made with Pillow, encoded in memory."""
    from PIL import Image

    img = Image.new(mode, size, color)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


@pytest.fixture
def make_image(tmp_path: Path):
    """Write an image made with Pillow into tmp_path and return its path."""

    def _make(name: str = "img.jpg", size=(64, 48), fmt: str | None = None, **kw) -> Path:
        fmt = fmt or {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP",
                      "gif": "GIF", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}[name.rsplit(".", 1)[-1].lower()]
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_image_bytes(size, fmt, **kw))
        return path

    return _make


TINY_BUILDER = Path(__file__).resolve().parent / "realserver" / "build_tiny_mllama.py"
TINY_SKIP = "needs torch, transformers and tokenizers: pip install torch==2.13.0 -e '.[local]'"


def load_tiny_builder():
    """Import realserver/build_tiny_mllama.py without touching sys.path."""
    spec = importlib.util.spec_from_file_location("_build_tiny_mllama", TINY_BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_model_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """The tiny random Llama 3.2 Vision, built once per session for the real-server and the
    in-process engine tests; (HF_HOME, model id, build seconds)."""
    for name in ("torch", "transformers", "tokenizers"):
        pytest.importorskip(name, reason=TINY_SKIP)
    builder = load_tiny_builder()
    hf_home = tmp_path_factory.mktemp("hf_home")
    started = time.monotonic()
    builder.build(hf_home, builder.MODEL_ID)
    return hf_home, builder.MODEL_ID, time.monotonic() - started


# A library probing the system when it is first imported (pyexiv2 calls platform.architecture(),
# which runs `file`) is not the test starting a process.
_PROBES = (os.sep + "platform.py", os.sep + os.path.join("ctypes", "util.py"))


class _WatchedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """subprocess.Popen that notes, for the marker check below, that the test started a process."""

    started = 0

    def __init__(self, *args, **kwargs) -> None:
        frame = sys._getframe(1)
        while frame is not None and not frame.f_code.co_filename.endswith(_PROBES):
            frame = frame.f_back
        if frame is None:
            type(self).started += 1
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def subprocess_marker_is_true(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A test that starts a process carries the `subprocess` marker (`-m "not subprocess"` is
    then the in-process suite). Fixtures that start one for a whole session (realserver's
    server) count for the test that first asked for them."""
    monkeypatch.setattr(subprocess, "Popen", _WatchedPopen)
    before = _WatchedPopen.started
    yield
    started = _WatchedPopen.started - before
    if started and request.node.get_closest_marker("subprocess") is None:
        pytest.fail(f"started {started} process(es) without @pytest.mark.subprocess", pytrace=False)
