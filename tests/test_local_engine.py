"""The in-process engine's plumbing, without torch: options, constraint fields, requests,
the micro-batcher, the async client, and the one-line errors. The model itself is exercised
through the installed command in tests/test_transformers_engine.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import threading
from importlib.util import find_spec
from pathlib import Path

import pytest

from llamavis.backends.local_engine import LocalClient
from llamavis.backends.providers import get_provider
from llamavis.engine import failures
from llamavis.engine.batcher import MicroBatcher
from llamavis.engine.jobs import Job, grammar_of, job_from_payload
from llamavis.engine.options import EngineOptions, default_concurrency, engine_from_cli
from llamavis.errors import ConfigError, ExitCode, UsageError
from llamavis.tasks.answers import (
    ClassSpec,
    MultiClassSpec,
    SchemaSpec,
    TextSpec,
)
from llamavis.tasks.guided import class_list_regex, guided_fields
from llamavis.types import Completion

from support.cli import llamavis

ROOT = Path(__file__).resolve().parent.parent
SHAPES = str(ROOT / "examples" / "shapes.jpg")
SPEC = get_provider("transformers")


# -- options ---------------------------------------------------------------------------------


def test_engine_options_reject_an_unknown_device_dtype_or_batch_size():
    with pytest.raises(UsageError, match="--device must be one of auto, cuda, mps, cpu"):
        EngineOptions.from_mapping({"device": "gpu"})
    with pytest.raises(UsageError, match="--dtype"):
        EngineOptions.from_mapping({"dtype": "int8"})
    with pytest.raises(UsageError, match="--batch-size"):
        EngineOptions.from_mapping({"batch_size": 0})
    with pytest.raises(UsageError, match="unknown engine option"):
        EngineOptions.from_mapping({"devcie": "cpu"})


def test_batch_size_defaults_per_device_unless_given():
    assert EngineOptions().batch_size_for("cuda") == 8
    assert EngineOptions().batch_size_for("cpu") == 4
    assert EngineOptions(batch_size=3).batch_size_for("cuda") == 3


def test_concurrency_default_fills_two_batches_for_the_local_engine_only():
    assert default_concurrency("openai", EngineOptions(batch_size=32)) == 4
    assert default_concurrency("transformers", EngineOptions(batch_size=6)) == 12
    assert default_concurrency("transformers", EngineOptions()) == 16


def test_cli_engine_options_keep_only_what_was_typed():
    opts = {"device": "cpu", "dtype": None, "load_in_4bit": False, "batch_size": 2, "model": "x"}
    assert engine_from_cli(opts) == EngineOptions(device="cpu", batch_size=2)


@pytest.mark.subprocess
def test_bad_device_on_the_command_line_exits_2_before_loading_anything():
    proc = llamavis("caption", SHAPES, "-P", "transformers", "--device", "gpu")
    assert proc.returncode == ExitCode.USAGE
    assert proc.stderr.strip().splitlines() == [
        "llamavis: error: --device must be one of auto, cuda, mps, cpu, got 'gpu'"]


# -- constrained-decoding fields -----------------------------------------------------------------


def test_classify_sends_its_classes_as_guided_choice():
    assert guided_fields(ClassSpec(["cat", "dog"])) == {"guided_choice": ["cat", "dog"]}
    assert guided_fields(TextSpec()) is None
    assert guided_fields(SchemaSpec({"type": "object"})) is None  # the schema goes as response_format


def test_multi_label_regex_allows_json_arrays_of_the_classes_only():
    rx = re.compile(guided_fields(MultiClassSpec(["cat", "dog", "bird"]))["guided_regex"])
    for ok in ('[]', '["cat"]', '["dog", "cat"]', '["bird", "dog", "cat"]'):
        assert rx.fullmatch(ok), ok
    for bad in ('["cow"]', '["cat","dog"]', 'cat', '["cat", "dog", "bird", "cat"]', '[""]'):
        assert not rx.fullmatch(bad), bad


def test_multi_label_regex_matches_odd_class_names_literally():
    classes = ['a.b (c)', 'say "hi"', "x|y", "naïve"]
    rx = re.compile(class_list_regex(classes))
    assert rx.fullmatch(json.dumps(classes, ensure_ascii=False))
    assert not rx.fullmatch('["aXb (c)"]')
    assert not rx.fullmatch('["x"]')


@pytest.mark.subprocess
def test_dry_run_with_transformers_shows_the_constraint_and_imports_no_torch():
    script = (
        "import contextlib, io, json, sys\n"
        "from llamavis.cli.main import run\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    code = run(sys.argv[1:])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'llguidance'})\n"
        "print(json.dumps({'code': code, 'heavy': heavy, 'out': json.loads(out.getvalue())}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, "classify", SHAPES, "-c", "cat,dog",
                           "-P", "transformers", "--dry-run"],
                          capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stdout)
    assert report["code"] == 0, proc.stderr
    assert report["heavy"] == []
    body = report["out"]["requests"][0]["json"]
    assert body["guided_choice"] == ["cat", "dog"]
    assert body["model"] == "meta-llama/Llama-3.2-11B-Vision-Instruct"


@pytest.mark.subprocess
def test_http_providers_are_not_sent_the_guided_fields():
    proc = llamavis("classify", SHAPES, "-c", "cat,dog", "-P", "openrouter", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "guided_choice" not in json.loads(proc.stdout)["requests"][0]["json"]


# -- requests ------------------------------------------------------------------------------------


def _payload(**extra) -> dict:
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG-bytes").decode()
    return {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Describe."}]}],
        "max_tokens": 7, **extra}


def test_a_payload_becomes_the_models_own_chat_layout_with_the_image_bytes():
    job = job_from_payload(_payload(temperature=0.0, seed=3))
    assert job.messages == [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "Describe."}]}]
    assert job.images == [b"\x89PNG-bytes"]
    assert (job.max_tokens, job.temperature, job.seed, job.grammar) == (7, 0.0, 3, None)


def test_each_constraint_field_becomes_a_grammar():
    assert grammar_of({"guided_choice": ["a", "b"]}) == ("choice", '["a", "b"]')
    assert grammar_of({"guided_regex": "x+"}) == ("regex", "x+")
    assert grammar_of({"guided_json": {"type": "object"}}) == ("json", '{"type": "object"}')
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    rf = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert grammar_of({"response_format": rf}) == ("json", json.dumps(schema, sort_keys=True))
    assert grammar_of({"response_format": {"type": "json_object"}}) == ("json", '{"type": "object"}')


def test_an_image_that_is_not_a_data_url_is_refused():
    payload = _payload()
    payload["messages"][0]["content"][0]["image_url"]["url"] = "https://example.com/a.png"
    with pytest.raises(Exception, match="data: URLs"):
        job_from_payload(payload)


# -- the micro-batcher ---------------------------------------------------------------------------


def _job(temperature: float = 0.0) -> Job:
    return Job([{"role": "user", "content": "hi"}], [], temperature=temperature)


class FakeEngine:
    """Stands in for the model: records each batch and answers every job with its size."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ready = threading.Event()
        self.batches: list[list[Job]] = []

    def start(self) -> int:
        self.ready.wait(10)  # like loading a model: every job below is queued meanwhile
        return self.size

    def run(self, jobs: list[Job]) -> None:
        self.batches.append(jobs)
        for job in jobs:
            job.finish(Completion(f"batch of {len(jobs)}"))


def test_queued_requests_are_answered_in_batches_of_at_most_the_batch_size():
    engine = FakeEngine(size=3)
    batcher = MicroBatcher(engine.start, engine.run, gather_s=0)
    jobs = [_job() for _ in range(7)]
    futures = [batcher.submit(job) for job in jobs]
    engine.ready.set()
    answers = [f.result(10).text for f in futures]
    batcher.close()
    assert [len(b) for b in engine.batches] == [3, 3, 1]
    assert [job for batch in engine.batches for job in batch] == jobs  # first come, first served
    assert answers == ["batch of 3"] * 6 + ["batch of 1"]


def test_requests_with_other_sampling_settings_wait_for_a_batch_of_their_own():
    engine = FakeEngine(size=8)
    batcher = MicroBatcher(engine.start, engine.run, gather_s=0)
    jobs = [_job(0.0), _job(1.0), _job(0.0), _job(1.0), _job(0.0)]
    futures = [batcher.submit(job) for job in jobs]
    engine.ready.set()
    for f in futures:
        f.result(10)
    batcher.close()
    assert [[j.temperature for j in b] for b in engine.batches] == [[0.0, 0.0, 0.0], [1.0, 1.0]]


def test_a_failed_start_fails_every_request_with_its_error():
    def start() -> int:
        raise ConfigError("no model", hint="fix it")

    batcher = MicroBatcher(start, lambda jobs: None, gather_s=0)
    first = batcher.submit(_job())
    with pytest.raises(ConfigError, match="no model"):
        first.result(10)
    later = batcher.submit(_job())
    with pytest.raises(ConfigError, match="no model"):
        later.result(10)
    batcher.close()


def test_a_cancelled_request_is_left_out_of_its_batch():
    engine = FakeEngine(size=4)
    batcher = MicroBatcher(engine.start, engine.run, gather_s=0)
    jobs = [_job() for _ in range(3)]
    futures = [batcher.submit(job) for job in jobs]
    jobs[1].cancelled.set()
    engine.ready.set()
    futures[0].result(10)
    futures[2].result(10)
    batcher.close()
    assert engine.batches == [[jobs[0], jobs[2]]]


def test_an_error_while_generating_reaches_every_request_of_the_batch():
    def run(jobs: list[Job]) -> None:
        raise RuntimeError("boom")

    batcher = MicroBatcher(lambda: 2, run, gather_s=0)
    futures = [batcher.submit(_job()) for _ in range(2)]
    for f in futures:
        with pytest.raises(RuntimeError, match="boom"):
            f.result(10)
    batcher.close()


# -- the client ----------------------------------------------------------------------------------


def test_concurrent_chats_share_a_batch_and_stream_on_the_event_loop(monkeypatch):
    engine = FakeEngine(size=4)

    def run(self, model_id: str, jobs: list[Job]) -> None:
        for job in jobs:
            if job.on_delta is not None:
                for piece in ("a ", "b ", "c"):
                    job.on_delta(piece)
        engine.run(jobs)

    monkeypatch.setattr(LocalClient, "_start", lambda self, model_id: engine.start())
    monkeypatch.setattr(LocalClient, "_run", run)

    async def main() -> tuple[list[Completion], list[tuple[str, bool]]]:
        loop_thread = threading.get_ident()
        seen: list[tuple[str, bool]] = []
        client = LocalClient(SPEC, engine=EngineOptions(batch_size=4), api_key=None, timeout=5.0)
        calls = [client.chat(_payload(stream=True),
                             on_delta=lambda p: seen.append((p, threading.get_ident() == loop_thread)))]
        calls += [client.chat(_payload()) for _ in range(3)]
        tasks = [asyncio.ensure_future(c) for c in calls]
        await asyncio.sleep(0)
        engine.ready.set()
        done = await asyncio.gather(*tasks)
        await client.aclose()
        return done, seen

    completions, deltas = asyncio.run(main())
    assert [c.text for c in completions] == ["batch of 4"] * 4
    assert deltas == [("a ", True), ("b ", True), ("c", True)]
    assert LocalClient(SPEC).headers(redact=True) == {}


# -- one-line errors -----------------------------------------------------------------------------


def _named(name: str) -> type[Exception]:
    return type(name, (Exception,), {})


def test_a_gated_repo_says_to_accept_the_licence_and_log_in():
    cause = _named("GatedRepoError")("403 Client Error: access restricted")
    exc = OSError("You are trying to access a gated repo.")
    exc.__cause__ = cause
    err = failures.load_failure(exc, "meta-llama/Llama-3.2-11B-Vision-Instruct")
    assert isinstance(err, ConfigError) and err.exit_code == ExitCode.CONFIG
    assert "gated" in str(err)
    assert "https://huggingface.co/meta-llama/Llama-3.2-11B-Vision-Instruct" in str(err)
    assert "hf auth login" in str(err)


def test_an_uncached_model_offline_says_how_to_download_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exc = OSError("We couldn't connect to 'https://huggingface.co'")
    exc.__cause__ = _named("LocalEntryNotFoundError")("not in cache")
    err = failures.load_failure(exc, "meta-llama/Llama-3.2-90B-Vision-Instruct")
    assert "not in the local Hugging Face cache" in str(err) and "HF_HUB_OFFLINE" in str(err)
    assert "hf download meta-llama/Llama-3.2-90B-Vision-Instruct" in str(err)


def test_out_of_memory_is_recognised_and_reported_with_figures_and_options():
    assert failures.is_out_of_memory(_named("OutOfMemoryError")("CUDA out of memory."))
    assert failures.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not failures.is_out_of_memory(RuntimeError("shape mismatch"))
    gb = 1024**3
    err = failures.memory_error("generating a batch of 8", "cuda", 21 * gb, (24 * gb, gb // 2),
                                hint="lower --batch-size (it was 8)")
    assert str(err) == ("out of memory on cuda generating a batch of 8: the weights take about "
                        "21.0 GB; the cuda has 24.0 GB (0.5 GB free) (lower --batch-size (it was 8))")


@pytest.mark.subprocess
def test_a_directory_without_a_model_exits_3_in_one_line(tmp_path):
    proc = llamavis("caption", SHAPES, "-P", "transformers", "-m", str(tmp_path))
    assert proc.returncode == ExitCode.CONFIG
    assert proc.stderr.splitlines() == [
        f"llamavis: error: -m {tmp_path}: no model there (no config.json) "
        "(give the directory a Hugging Face model was saved or downloaded into)"]


HIDE_EXTRA = """
import sys
class _Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "llguidance"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Hidden())
"""


@pytest.mark.subprocess
def test_without_the_local_extra_the_provider_exits_3_naming_it(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(HIDE_EXTRA)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    proc = llamavis("caption", SHAPES, "-P", "transformers", "--no-cache",
                    env={"PYTHONPATH": path})
    assert proc.returncode == ExitCode.CONFIG, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "pip install 'llamavis[local]'" in lines[0]


@pytest.mark.skipif(not all(find_spec(m) for m in ("torch", "transformers", "accelerate", "llguidance")),
                    reason="needs llamavis[local] and torch")
@pytest.mark.subprocess
def test_doctor_says_whether_the_weights_are_here_without_loading_them(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "mllama"}')
    env = {"HF_HOME": str(tmp_path / "empty-hf"), "HF_HUB_OFFLINE": "1"}
    here = json.loads(llamavis("doctor", "-P", "transformers", "-m", str(model), "--json",
                               env=env).stdout)
    gone = llamavis("doctor", "-P", "transformers", "--json", env=env)
    assert [(v["provider"], v["verdict"]) for v in here] == [("transformers", "live")]
    verdict = json.loads(gone.stdout)[0]
    assert gone.returncode == 1 and verdict["verdict"] == "not_configured"
    assert "not in the local Hugging Face cache" in verdict["detail"]
    assert "hf download meta-llama/Llama-3.2-11B-Vision-Instruct" in verdict["detail"]
