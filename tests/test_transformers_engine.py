"""The installed command with `-P transformers` and the tiny random Llama 3.2 Vision.

The tiny model (tests/realserver/build_tiny_mllama.py: the real config class, processor, chat
template and tokenizer rules, random weights) answers gibberish, so these tests check what
holds whatever the words are: every task completes in-process, the classes and the JSON are
held by constrained decoding even when sampling at a high temperature, a single answer
streams on a terminal, and a model that cannot be found is one line and exit 3.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from support.cli import invoke
from support.cli import llamavis as installed
from test_terminal import run_on_pty

LOCAL_EXTRA = ("torch", "transformers", "llguidance")
pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(not all(find_spec(name) for name in LOCAL_EXTRA),
                       reason="needs llamavis[local] and torch: "
                              "pip install torch==2.13.0 -e '.[local]'"),
]
CLASSES = ["cat", "dog", "bird"]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def tiny(tiny_model_home) -> tuple[str, dict[str, str]]:
    """(the tiny model's directory, an offline environment whose HF_HOME holds it)."""
    hf_home, model_id, _build_s = tiny_model_home
    repo = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
    snapshot = repo / "snapshots" / (repo / "refs" / "main").read_text().strip()
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    # One intra-op thread: on a small shared machine more spin against the other load.
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return str(snapshot), env


def make_images(directory: Path, count: int) -> Path:
    """`count` small PNGs of different colours and sizes, made with Pillow."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        colour = ((37 * i) % 256, (91 * i) % 256, (151 * i) % 256)
        Image.new("RGB", (24 + i % 9, 20 + i % 7), colour).save(directory / f"img{i:03d}.png")
    return directory


def llamavis(tiny: tuple[str, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    model, env = tiny
    return installed(*args, "-P", "transformers", "-m", model, "--no-cache", base_env=env,
                     timeout=300)


@pytest.fixture(scope="module")
def tiny_here(tiny) -> tuple[str, dict[str, str]]:
    """``tiny``, for runs in this process: the model is loaded once and stays loaded (as in any
    process that runs several commands), on one intra-op thread like the subprocesses."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, env = tiny
    yield model, {k: env[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
                                      "TOKENIZERS_PARALLELISM")}
    torch.set_num_threads(threads)


def here(tiny_here: tuple[str, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process, loading the tiny model from its directory."""
    model, env = tiny_here
    return invoke(*args, "-P", "transformers", "-m", model, "--no-cache", env=env)


def jsonl(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_caption_gives_text_with_provider_transformers_in_the_json_envelope(tiny_here, tmp_path):
    image = make_images(tmp_path / "one", 1) / "img000.png"
    proc = here(tiny_here, "caption", str(image), "--json", "--max-tokens", "12")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["provider"], result["model"], result["error"]) == ("transformers", tiny_here[0], None)
    assert isinstance(result["output"], str) and result["output"].strip()
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 12
    assert usage["cost_usd"] == 0


API_SCRIPT = """
import json, sys
import llamavis
from llamavis.engine import loader

loads = []
real_load = loader.load
loader.load = lambda *a, **k: loads.append(a[0]) or real_load(*a, **k)
image, model = sys.argv[1:]
asks = [("detailed-caption", {}), ("ocr", {}), ("vqa", {"question": "What colour?"}),
        ("prompt", {"prompt": "Describe the image."})]
results = [llamavis.analyze(image, task, provider="transformers", model=model, max_tokens=8,
                            engine={"device": "cpu"}, **extra).to_dict() for task, extra in asks]
print(json.dumps({"loads": len(loads), "results": results}))
"""


@pytest.mark.subprocess
def test_the_other_text_tasks_answer_from_one_model_loaded_once_per_process(tiny, tmp_path):
    model, env = tiny
    image = make_images(tmp_path / "one", 1) / "img000.png"
    # A cache of its own: the images are deterministic, so a shared cache could answer all four
    # and load nothing.
    env = {**env, "LLAMAVIS_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", API_SCRIPT, str(image), model], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["loads"] == 1  # four requests, one model in memory
    assert [r["task"] for r in report["results"]] == ["detailed-caption", "ocr", "vqa", "prompt"]
    for result in report["results"]:
        assert result["error"] is None and result["output"] and result["provider"] == "transformers"


def test_128_images_classified_all_land_in_the_set_at_the_first_attempt(tiny_here, tmp_path):
    images = make_images(tmp_path / "many", 128)
    # A high temperature makes the random model pick wild tokens: only the grammar keeps
    # the answers in the set, and --max-retries 0 leaves no second chance.
    proc = here(tiny_here, "classify", str(images), "-c", ",".join(CLASSES), "--jsonl",
                    "--batch-size", "16", "--temperature", "2.0", "--seed", "7", "--max-retries", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = jsonl(proc)
    assert len(results) == 128
    assert {r["output"] for r in results} <= set(CLASSES)
    assert {r["attempts"] for r in results} == {1}
    assert all(r["raw"] in CLASSES for r in results)


def test_multi_classify_gives_a_subset_of_the_classes(tiny_here, tmp_path):
    images = make_images(tmp_path / "eight", 8)
    proc = here(tiny_here, "multi-classify", str(images), "-c", ",".join(CLASSES), "--jsonl",
                    "--temperature", "1.5", "--seed", "3", "--max-retries", "0", "--batch-size", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = jsonl(proc)
    assert len(results) == 8
    for r in results:
        assert r["error"] is None and r["attempts"] == 1
        assert set(r["output"]) <= set(CLASSES)
        assert set(json.loads(r["raw"])) <= set(CLASSES)  # the raw answer is the JSON array itself


def test_structured_answers_validate_or_are_invalid_output_still_shaped_as_json(tiny_here, tmp_path):
    from jsonschema import validate

    images = make_images(tmp_path / "six", 6)
    fields = ["--field", "title=a short title", "--field", "count int=how many things"]
    schema = json.loads(invoke("structured", *fields, "--show-schema").stdout)
    proc = here(tiny_here, "structured", str(images), *fields, "--jsonl", "--temperature", "1.0",
                    "--seed", "5", "--max-tokens", "40", "--max-retries", "0", "--batch-size", "6")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    results = jsonl(proc)
    assert len(results) == 6
    for r in results:
        # The grammar writes the schema's own keys, in JSON, from the first character on.
        assert re.match(r'\{"(title|count)": ', r["raw"]), r["raw"]
        if r["error"] is None:
            validate(r["output"], schema)
        else:
            assert r["error"]["kind"] == "invalid_output"
            assert "cut off at the token limit" in r["error"]["message"]


@pytest.mark.subprocess
def test_an_uncached_repo_while_offline_exits_3_with_one_clear_line(tiny, tmp_path):
    _model, env = tiny
    image = make_images(tmp_path / "one", 1) / "img000.png"
    proc = installed("caption", str(image), "-P", "transformers",
                     "-m", "meta-llama/Llama-3.2-11B-Vision-Instruct",
                     base_env={**env, "HF_HOME": str(tmp_path / "empty")})
    assert proc.returncode == 3
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("llamavis: error: meta-llama/Llama-3.2-11B-Vision-Instruct is not "
                               "in the local Hugging Face cache")
    assert "HF_HUB_OFFLINE" in lines[0] and "hf auth login" in lines[0]


def test_a_single_caption_streams_token_by_token_on_a_terminal(tiny_here, tmp_path):
    model, env = tiny_here
    image = make_images(tmp_path / "one", 1) / "img000.png"
    args = ("caption", str(image), "-P", "transformers", "-m", model, "--no-cache",
            "--max-tokens", "24", "--temperature", "0", "--debug")
    streamed = run_on_pty(*args, env=env, stderr_tty=False, timeout=120)
    waited = run_on_pty(*args, "--no-stream", env=env, stderr_tty=False, timeout=120)
    assert streamed.returncode == 0 and waited.returncode == 0, streamed.stderr[-2000:]
    pieces = re.search(rb"streamed in (\d+) pieces", streamed.stderr)
    assert pieces and int(pieces.group(1)) > 1, streamed.stderr[-2000:]
    assert b"streamed in" not in waited.stderr
    # Streamed or not, the terminal ends up showing the same answer, once.
    assert streamed.screen(80, 24) == waited.screen(80, 24)
    assert any(line.strip() for line in streamed.screen(80, 24))
