"""Issue 5: bad networks, bad providers, bad files, and keys that never leak.

Every test runs the installed command (``python -m llamavis``) against tests/faultserver.py
on 127.0.0.1. Retry-After values are 0 or a few hundredths of a second, and backoff without
one is at most 0.5 s for a first retry, so no test waits long.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from llamavis.backends.client import ChatClient, build_payload
from llamavis.backends.providers import PROVIDERS
from llamavis.backends.retry import AdaptiveLimiter
from llamavis.run.batch import BatchSummary, run_batch
from llamavis.types import GenParams, Result

from faultserver import Fault, FaultServer, echo_key, error, overloaded, transient
from support.cli import invoke
from support.cli import llamavis as run_installed

KEY = "sk-or-v1-SENTINEL-5e1f0c2b9a7d41"
PHOTO = str(Path(__file__).parent.parent / "examples" / "shapes.jpg")
ENV = {"OPENROUTER_API_KEY": KEY}


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def jsonl(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines()]


def llamavis(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Run:
    """The command with piped streams (no terminal): what a script sees. Run in this process."""
    proc = invoke(*args, env=env, input=stdin)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def installed(*args: str, env: dict[str, str] | None = None) -> Run:
    """The installed command in its own process: for an environment read at start-up."""
    proc = run_installed(*args, env=env)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def llamavis_on_tty(*args: str, env: dict[str, str] | None = None) -> Run:
    """The command with stdout on a terminal: a single answer is streamed (stream: true)."""
    proc = invoke(*args, env=env, tty=True)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def tiny_images(folder: Path, n: int) -> list[str]:
    """n small, distinct PNGs (distinct bytes: distinct requests and cache keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:03d}.png"
        Image.new("RGB", (8, 8), (i % 256, (i * 7) % 256, (i // 256) * 40)).save(path)
        paths.append(str(path))
    return paths


def to(server: FaultServer, *more: str, provider: str = "openrouter") -> list[str]:
    return ["-P", provider, "--base-url", server.url, *more]


# -- retries ---------------------------------------------------------------------------------


def test_200_images_a_third_failing_transiently_all_succeed_under_2_requests_each(tmp_path):
    images = tiny_images(tmp_path / "in", 200)
    with FaultServer(transient(every=3)) as server:
        run = llamavis("caption", *images, *to(server, "-j", "16", "--jsonl"), env=ENV)
    assert run.code == 0, run.err
    results = run.jsonl()
    assert sorted(r["image"] for r in results) == images
    assert all(r["error"] is None and r["output"] == "a test answer" for r in results)
    failures = sum(n for answer, n in server.statuses.items() if answer != "200")
    assert failures == 67  # every third image's first request, one of each kind in turn
    for kind in ("429", "500", "502", "503", "reset", "reset_mid", "cut"):
        assert server.statuses[kind] >= 9, server.statuses
    assert server.count() < 2 * len(images)  # 267: each failure costs one more request
    assert "Traceback" not in run.err and run.err == ""


def test_streams_cut_erroring_or_only_keep_alive_are_retried_never_answers():
    """On a terminal a single answer streams: every broken stream is asked again from the start."""
    image = PHOTO
    for broken in ("stream_error", "cut", "reset_mid", "keepalive", "finish_error"):
        with FaultServer([Fault(broken), Fault(text="the whole answer")]) as server:
            run = llamavis_on_tty("caption", image, *to(server, "--no-cache"), env=ENV)
        assert run.code == 0, (broken, run.err)
        assert [r.stream for r in server.requests] == [True, True]
        assert run.out.rstrip().endswith("the whole answer"), (broken, run.out)
        assert run.err == ""


def test_an_error_chunk_that_persists_is_one_line_with_the_providers_message():
    image = PHOTO
    with FaultServer(Fault("stream_error")) as server:
        run = llamavis_on_tty("caption", image, *to(server, "--no-cache", "--max-retries", "1"),
                              env=ENV)
    assert run.code == 1
    assert server.count() == 2
    assert len(run.err_lines) == 1, run.err
    assert "Provider disconnected unexpectedly" in run.err and "Lambda" in run.err
    assert "openrouter" in run.err and "[provider]" in run.err


MID_STREAM = [  # OpenRouter's in-stream errors (../shared/providers.md §0 #5, §5)
    ({"code": "server_error", "message": "Provider disconnected unexpectedly",
      "metadata": {"provider_name": "Lambda"}}, "provider"),
    ({"code": 429, "message": "Rate limit exceeded: free-models-per-min",
      "metadata": {"provider_name": "Lambda"}}, "rate_limited"),
]


@pytest.mark.parametrize("left_open", [False, True], ids=["closed", "hung-up-after-data-line"])
@pytest.mark.parametrize(("error", "kind"), MID_STREAM, ids=["server_error", "rate-limit"])
def test_a_providers_error_mid_stream_reaches_the_terminal_in_its_words_and_kind(
        error, kind, left_open):
    fault = Fault("stream_error", body=error, left_open=left_open)
    with FaultServer(fault) as server:
        run = llamavis_on_tty("caption", PHOTO, *to(server, "--no-cache", "--max-retries", "1"),
                              env=ENV)
    assert run.code == 1
    assert server.count() == 2  # retried once, as the same error outside a stream would be
    assert len(run.err_lines) == 1, run.err
    assert error["message"] in run.err and "Lambda" in run.err and f"[{kind}]" in run.err
    assert "stream ended" not in run.err


# -- keys the provider rejects ------------------------------------------------------------------

WRONG_KEY = [
    ("openrouter", error(401, message="User not found."), "openrouter HTTP 401: User not found."),
    ("deepinfra", Fault("status", status=403, body={"detail": {"error": "Not authenticated"}}),
     "deepinfra HTTP 403: Not authenticated"),
]


@pytest.mark.parametrize(("provider", "fault", "line"), WRONG_KEY,
                         ids=["openrouter-401", "deepinfra-403"])
def test_a_wrong_key_stops_a_100_image_batch_within_its_first_requests(
        tmp_path, provider, fault, line):
    images = tiny_images(tmp_path / "in", 100)
    with FaultServer(fault) as server:
        run = llamavis("caption", *images, *to(server, "-j", "8", "--jsonl", provider=provider),
                       env={"DEEPINFRA_API_KEY": KEY, **ENV})
    assert run.code == 3
    assert server.count() <= 8 + 2, server.count()
    assert run.err_lines == [f"llamavis: error: {line} (check the key: set "
                             f"{'OPENROUTER' if provider == 'openrouter' else 'DEEPINFRA'}_API_KEY "
                             f"or run `llamavis keys set {provider}`)"]
    assert KEY not in run.out + run.err


# -- provider error shapes (providers.md section 6), through the command ---------------------------

SHAPES = [
    ("openrouter", Fault("status", status=402, body={"error": {
        "code": 402, "message": "This request requires more credits, or fewer max_tokens. "
        "You requested up to 80 tokens, but can only afford 12."}}),
     ["openrouter HTTP 402", "can only afford 12", "add credits or lower --max-tokens"]),
    ("openrouter", error(502, "openrouter-raw", "CUDA out of memory"),
     ["openrouter HTTP 502", "DeepInfra", "CUDA out of memory"]),
    ("openrouter", Fault("status", status=404, body={"error": {
        "message": "No endpoints found for meta-llama/llama-3.2-11b-vision-instruct:free.",
        "error_type": "not_found", "http_status": 404,
        "availability": {"code": "free_variant_ended"}}}),
     ["openrouter HTTP 404", "No endpoints found", "llamavis doctor", "--fallback"]),
    ("local", error(400, "openai", "Prompting with images is incompatible with system messages."),
     ["local HTTP 400", "incompatible with system messages"]),
    ("local", error(400, "vllm-flat", "The model does not support image input"),
     ["local HTTP 400", "does not support image input"]),
    ("local", error(422, "tgi", "Input validation error: grammar is not supported"),
     ["local HTTP 422", "grammar is not supported"]),
    ("local", error(500, "llamacpp", "image input is not supported - hint: use --mmproj"),
     ["local HTTP 500", "image input is not supported"]),
    ("deepinfra", error(400, "openai", "Model is not available"),
     ["deepinfra HTTP 400", "Model is not available"]),
    ("ollama", Fault("status", status=404, body={"error": {
        "message": 'model "llama3.2-vision:11b" not found, try pulling it first',
        "type": "not_found_error", "param": None, "code": None}}),
     ["ollama HTTP 404", "try pulling it first"]),
    ("novita", Fault("status", status=403, body={"error": {
        "message": "model_access_denied: identity verification required", "code": 403}}),
     ["novita HTTP 403", "identity verification required"]),
    ("openrouter", Fault("finish_error"),
     ["openrouter error during the answer", "Upstream provider failed mid-generation"]),
]


@pytest.mark.parametrize(("provider", "fault", "needles"), SHAPES,
                         ids=[f"{p}-{n[0].split()[-1]}" for p, _, n in SHAPES])
def test_each_provider_error_shape_is_one_line_with_status_provider_and_message(
        provider, fault, needles):
    image = PHOTO
    env = {"NOVITA_API_KEY": KEY, "DEEPINFRA_API_KEY": KEY, "LLAMAVIS_API_KEY": KEY, **ENV}
    with FaultServer(fault) as server:
        run = llamavis("caption", image, *to(server, "--no-cache", "--max-retries", "0",
                                             provider=provider), env=env)
    assert run.code == 1, run.err
    assert len(run.err_lines) == 1, run.err
    for needle in needles:
        assert needle in run.err_lines[0], (needle, run.err)
    assert run.out == "" and "Traceback" not in run.err and KEY not in run.err


def test_length_cut_is_a_truncated_text_answer_and_invalid_structured_output(tmp_path):
    image = PHOTO
    cut = Fault(text="A red ball on green grass under a", finish_reason="length")
    with FaultServer(cut) as server:
        caption = llamavis("caption", image, *to(server, "--json"), env=ENV)
    assert caption.code == 0, caption.err
    doc = json.loads(caption.out)
    assert doc["truncated"] is True and doc["output"] == "A red ball on green grass under a"
    with FaultServer(Fault(text='{"colour": "re', finish_reason="length")) as server:
        structured = llamavis("structured", image, "--field", "colour=the ball's colour",
                              *to(server, "--json", "--max-retries", "1"), env=ENV)
    assert structured.code == 1
    doc = json.loads(structured.out)
    assert doc["output"] is None and doc["error"]["kind"] == "invalid_output"
    assert "cut off at the token limit" in doc["error"]["message"]
    assert server.count() == 2 and doc["attempts"] == 2


# -- timeouts --------------------------------------------------------------------------------------


def test_timeout_ends_a_silent_hang_and_the_batch_goes_on(tmp_path):
    images = tiny_images(tmp_path / "in", 4)
    Image.new("RGB", (9, 9), "white").save(tmp_path / "in" / "hangs.png")
    hangs = str(tmp_path / "in" / "hangs.png")

    def schedule(req):
        size = Image.open(io.BytesIO(req.image_bytes())).size
        return Fault("hang") if size == (9, 9) else Fault()

    with FaultServer(schedule) as server:
        run = llamavis("caption", hangs, *images, *to(server, "--timeout", "1", "--max-retries", "0",
                                                     "--jsonl"), env=ENV)
    assert run.code == 1
    results = {r["image"]: r for r in run.jsonl()}
    assert len(results) == 5 and all(results[p]["error"] is None for p in images)
    assert results[hangs]["error"]["kind"] == "timeout"
    # one try, at most (on a loaded machine a try can run out of its second before the server
    # has seen it); --max-retries 0 so the test waits one second, not three
    assert server.statuses["hang"] <= 1
    assert run.err_lines == [f"llamavis: {hangs}: openrouter did not finish answering within 1 s "
                             "(raise --timeout for slow models) [timeout]"]


@pytest.mark.parametrize("fault", [Fault("drip", interval=0.2), Fault("keepalive", comments=None)],
                         ids=["bytes-dripping", "keep-alive-forever"])
def test_timeout_bounds_the_whole_request_not_each_read(fault):
    # The server keeps sending something well past --timeout (15 s of dripping, or
    # comments until it gives up at 30 s): only a limit on the whole request ends it.
    # --timeout 1 is the least it takes: the test waits that second, no more.
    image = PHOTO
    with FaultServer(fault) as server:
        run = llamavis("caption", image, *to(server, "--timeout", "1", "--max-retries", "0",
                                             "--no-cache"), env=ENV)
    assert run.code == 1
    assert "did not finish answering within 1 s" in run.err and "[timeout]" in run.err
    assert server.count() <= 1


# -- bad files ----------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A real 1-bit PNG of width x height (900 megapixels) that is ~100 kB on disk."""
    packer = zlib.compressobj(9)
    rows = (b"\x00" * (1 + (width + 7) // 8)) * 1000
    idat = b"".join(packer.compress(rows) for _ in range(height // 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def saved(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60x30; shown rotated 90 degrees: 30x60
    return saved(Image.new("RGB", (60, 30), (200, 50, 50)), "JPEG", exif=exif)


def animated_gif() -> bytes:
    frames = [Image.new("P", (20, 20), i) for i in (1, 2, 3)]
    return saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def transparent_png() -> bytes:
    img = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    img.paste((0, 200, 0, 255), (5, 5, 15, 15))
    return saved(img, "PNG")


GOOD_FILES = {
    "cmyk.jpg": lambda: saved(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"),
    "deep16.png": lambda: saved(Image.new("I;16", (30, 20), 40000), "PNG"),
    "palette.png": lambda: saved(Image.new("RGB", (30, 20), (10, 200, 30)).convert("P"), "PNG"),
    "transparent.png": transparent_png,
    "animated.gif": animated_gif,
    "rotated.jpg": rotated_jpeg,
    "panorama.jpg": lambda: saved(Image.new("RGB", (20000, 500), (90, 140, 200)), "JPEG",
                                  quality=50),
}
BAD_FILES = {
    "empty.jpg": (lambda: b"", "empty file"),
    "truncated.jpg": (lambda: saved(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG")[:900],
                      "truncated"),
    "notes.txt": (lambda: b"shopping list: eggs, milk\n" * 20, "not an image"),
    "random.png": (lambda: bytes(range(256)) * 40, "not an image"),
    "drawing.svg": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
                    "SVG is not supported"),
    "bomb.png": (bomb_png, "too large to decode safely"),
}


def test_every_bad_file_gets_its_own_line_and_the_good_ones_succeed_in_one_batch(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, make in GOOD_FILES.items():
        (folder / name).write_bytes(make())
    for name, (make, _) in BAD_FILES.items():
        (folder / name).write_bytes(make())
    assert (folder / "bomb.png").stat().st_size < 500_000
    paths = [str(folder / name) for name in [*GOOD_FILES, *BAD_FILES]]
    with FaultServer(Fault(text="a picture")) as server:
        run = llamavis("caption", *paths, *to(server, "--jsonl", "-j", "4"), env=ENV)
    assert run.code == 1
    results = {r["image"]: r for r in run.jsonl()}
    assert sorted(results) == sorted(paths)
    for name in GOOD_FILES:
        assert results[str(folder / name)]["error"] is None, results[str(folder / name)]
    for name, (_, reason) in BAD_FILES.items():
        err = results[str(folder / name)]["error"]
        assert err["kind"] == "bad_image" and str(folder / name) in err["message"], err
        assert reason in err["message"] and "\n" not in err["message"], err
    assert len(run.err_lines) == len(BAD_FILES)
    assert "Traceback" not in run.err
    sizes = sorted(Image.open(io.BytesIO(r.image_bytes())).size for r in server.requests)
    assert (30, 60) in sizes  # EXIF orientation applied
    assert (1120, 28) in sizes  # the panorama, shrunk to 1120 px on its long side
    assert server.count() == len(GOOD_FILES)


# -- secrets ------------------------------------------------------------------------------------


def _files_with_key(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


@pytest.mark.parametrize("how", ["env", "keys-file", "flag"])
def test_the_key_appears_in_no_output_and_no_file_but_the_keys_file(tmp_path, how):
    config, cache = Path(os.environ["LLAMAVIS_CONFIG_DIR"]), Path(os.environ["LLAMAVIS_CACHE_DIR"])
    images = tiny_images(tmp_path / "in", 3)
    env, flag = {}, []
    if how == "env":
        env = ENV
    elif how == "flag":
        flag = ["--api-key", KEY]
    else:
        assert llamavis("keys", "set", "openrouter", stdin=(KEY + "\n").encode()).code == 0
    runs: list[Run] = []
    with FaultServer() as server:

        def call(*args: str, schedule: Fault | None = None, tty: bool = False) -> Run:
            server.schedule = schedule or Fault(text="a red square")
            cli = llamavis_on_tty if tty else llamavis
            run = cli(*args, *to(server, *flag), env=env)
            runs.append(run)
            return run

        assert call("caption", images[0], "--json", "--output-dir", str(tmp_path / "out")).code == 0
        assert call("classify", *images, "-c", "red,blue", "--jsonl",
                    "--output-dir", str(tmp_path / "out2")).code == 0
        assert call("caption", *images, "--dry-run").code == 0
        assert call("caption", images[1], "--debug", "--no-cache").code == 0
        assert call("caption", images[1], "--debug", "--no-cache", "--max-retries", "1",
                    schedule=error(500, "openai")).code == 1
        assert call("caption", *images, "--debug", "--no-cache", schedule=error(401)).code == 3
        assert call("caption", *images, "--jsonl", "--debug", "--no-cache",
                    schedule=echo_key(400)).code == 1
        assert call("caption", images[2], "--debug", "--no-cache", schedule=echo_key(401)).code == 3
        assert call("caption", images[2], "--json", "--no-cache",
                    schedule=echo_key(kind="finish_error")).code == 1
        assert call("caption", images[2], "--no-cache", "--max-retries", "0",
                    schedule=echo_key(kind="stream_error"), tty=True).code == 1
    assert {r.authorization for r in server.requests} == {f"Bearer {KEY}"}  # the key was sent
    echoes = [r for r in runs if "Invalid header value" in r.out + r.err]
    assert len(echoes) == 4 and all("Bearer ***" in r.out + r.err for r in echoes)
    for run in runs:
        assert KEY not in run.out and KEY not in run.err
        assert KEY[-12:] not in run.out + run.err
    assert _files_with_key(cache) == []
    assert _files_with_key(tmp_path) == []
    keys_file = config / "keys.json"
    assert _files_with_key(config) == ([keys_file] if how == "keys-file" else [])
    if how == "keys-file":
        assert keys_file.stat().st_mode & 0o777 == 0o600


# -- tracebacks ---------------------------------------------------------------------------------

BUG = '''
import os
import llamavis.{module} as target

_real = target.{name}

def {name}(*args, **kwargs):
    secret_local = os.environ.get("OPENROUTER_API_KEY")
    if secret_local:
        raise RuntimeError("simulated bug")
    return _real(*args, **kwargs)

target.{name} = {name}
'''


def with_bug(tmp_path: Path, module: str, name: str) -> dict[str, str]:
    """An environment whose llamavis has a bug in module.name, with the key in a local."""
    site = tmp_path / "bug"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BUG.format(module=module, name=name))
    return {**ENV, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.subprocess
def test_an_internal_error_is_one_line_and_debug_adds_a_traceback_without_locals(tmp_path):
    env = with_bug(tmp_path, "run.config", "build_config")
    image = PHOTO
    plain = installed("caption", image, "--base-url", "http://127.0.0.1:9/v1", env=env)
    assert plain.code == 1
    assert plain.err_lines == ["llamavis: error: internal error: RuntimeError: simulated bug "
                               "(run with --debug for the traceback)"]
    debug = installed("caption", image, "--base-url", "http://127.0.0.1:9/v1", "--debug", env=env)
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.err and "simulated bug" in debug.err
    assert "sitecustomize.py" in debug.err  # where it happened...
    assert KEY not in debug.err  # ...but never the values of local variables (one holds the key)


@pytest.mark.subprocess
def test_an_internal_error_on_one_image_fails_that_image_and_debug_shows_its_traceback(tmp_path):
    env = with_bug(tmp_path, "images.prepare", "prepare_image")
    images = tiny_images(tmp_path / "in", 2)
    with FaultServer() as server:
        plain = installed("caption", *images, *to(server, "--jsonl"), env=env)
        debug = installed("caption", *images, *to(server, "--jsonl", "--debug", "--no-cache"),
                         env=env)
    for run in (plain, debug):
        assert run.code == 1
        results = run.jsonl()
        assert len(results) == 2
        assert all("RuntimeError: simulated bug" in r["error"]["message"] for r in results)
        assert KEY not in run.out + run.err
    assert "Traceback" not in plain.err
    assert "Traceback (most recent call last)" in debug.err


# -- adaptive concurrency under 429 ---------------------------------------------------------------


class Capacity:
    """An in-process server taking ``limit`` requests at once, 429 beyond; each answer takes
    ``latency`` turns of the event loop. No thread, no clock: every run goes the same way."""

    def __init__(self, limit: int, latency: int = 3) -> None:
        self.limit, self.latency = limit, latency
        self.in_flight = self.peak = self.refused = self.answered = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.in_flight >= self.limit:
            self.refused += 1
            return httpx.Response(429, headers={"Retry-After": "0.05"},
                                  json={"error": {"message": "Rate limit exceeded", "code": 429}})
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(self.latency):
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        self.answered += 1
        return httpx.Response(200, json={"choices": [{"message": {"content": "fine"},
                                                      "finish_reason": "stop"}]})


def batch_against(server: Capacity, limiter: AdaptiveLimiter | None, n: int = 200,
                  concurrency: int = 16) -> BatchSummary:
    """n requests through ChatClient and run_batch; the retry waits are asked for, not slept."""
    spec = PROVIDERS["openrouter"]
    payload = build_payload(spec, "m", [{"role": "user", "content": "hi"}], GenParams(),
                            stream=False)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    async def go() -> BatchSummary:
        async with ChatClient(spec, api_key="k", base_url="http://llm.test/v1", sleep=sleep,
                              limiter=limiter, max_retries=50,
                              transport=httpx.MockTransport(server)) as client:
            async def one(src: str) -> Result:
                return Result(image=src, task="caption", output=(await client.chat(payload)).text)

            return await run_batch([f"img{i}" for i in range(n)], one, concurrency=concurrency)

    summary = asyncio.run(go())
    assert set(waits) <= {0.05}  # each 429 waited as long as it asked
    return summary


def test_under_429s_the_batch_slows_down_instead_of_hammering():
    adaptive, fixed = Capacity(4), Capacity(4)
    summary = batch_against(adaptive, AdaptiveLimiter(16))
    assert (summary.succeeded, adaptive.answered) == (200, 200)
    # -j 16 against a limit of 4: the first burst refuses 12 of 16; after that the limiter
    # probes for more at most once per 10 successes, and a probe costs one 429.
    assert adaptive.refused <= 12 + 200 // 10
    assert batch_against(fixed, None).succeeded == 200
    assert fixed.refused > 5 * adaptive.refused  # what not slowing down would have cost


def test_under_429s_the_command_answers_every_image_and_slows_down(tmp_path):
    images = tiny_images(tmp_path / "in", 200)
    with FaultServer(overloaded(4, Fault(delay=0.03), retry_after=0.05)) as server:
        run = llamavis("caption", *images, *to(server, "-j", "16", "--jsonl", "--max-retries", "20"),
                       env=ENV)
    assert run.code == 0, run.err
    assert len(run.jsonl()) == 200
    too_many = server.statuses["429"]
    assert server.count() == 200 + too_many  # each refused request asked again, none lost
    # Bounds that hold at any speed (exact counts: the in-process test above). Without
    # slowing down, -j 16 against 4 would be refused several times per image.
    assert too_many < 200, server.statuses

