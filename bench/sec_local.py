"""7. The in-process engine (`-P transformers`) with the tiny random Llama 3.2 Vision.

Two parts. The engine part runs in a fresh worker process (``python bench/sec_local.py
worker ...``) so that imports, loading and memory are its own: the fixed cost (importing
torch, transformers and llguidance; loading the model), peak RSS against the weights, images
per second at each --batch-size over the same images after the model is loaded (a ratio to
--batch-size 1 in the same process), and the time to the first streamed token. The command
part times the whole `llamavis caption DIR -P transformers` at --batch-size 8 against 1,
imports and loading included.

Both run with one intra-op thread (OMP_NUM_THREADS=1): on a small shared machine, torch's
default of one OpenMP thread per core spins against the other load and makes every small
operation slower, which flatters batching (fewer, larger operations) far beyond what a quiet
machine shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXTRA = ("torch", "transformers", "llguidance", "tokenizers")
QUICK = {"images": 32, "sizes": (1, 8), "tokens": 16, "command_images": 32, "rounds": 1}
FULL = {"images": 128, "sizes": (1, 4, 8, 16), "tokens": 16, "command_images": 128, "rounds": 3}
COMMAND_TOKENS = 64


def missing() -> list[str]:
    """The packages of the local extra that are not installed here."""
    return [name for name in EXTRA if find_spec(name) is None]


def build_tiny(root: Path) -> tuple[Path, Path]:
    """Build the tiny model into ROOT/hf (tests/realserver/build_tiny_mllama.py); (HF_HOME, dir)."""
    hf_home = root / "hf"
    builder = REPO / "tests" / "realserver" / "build_tiny_mllama.py"
    out = subprocess.run([sys.executable, str(builder), str(hf_home)], capture_output=True,
                         text=True, check=True, timeout=600)
    return hf_home, Path(out.stdout.strip().splitlines()[-1])


def local_figures(work, images_of, quick: bool) -> list:
    """The section's figures; ``images_of(n)`` makes a folder of n small images."""
    from common import Figure, cli, run_process

    absent = missing()
    if absent:
        return [Figure("local", "in-process engine", None, "",
                       note=f"not measured: {', '.join(absent)} not installed "
                            "(pip install torch==2.13.0 -e '.[local]')")]
    plan = QUICK if quick else FULL
    hf_home, model = build_tiny(work.fresh("tiny-model"))
    env = work.env(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    folder = images_of(plan["images"])
    sizes = ",".join(map(str, plan["sizes"]))
    run = run_process([sys.executable, __file__, "worker", str(model), str(folder), sizes,
                       str(plan["tokens"]), str(plan["rounds"])], env=env, cwd=work.root,
                      timeout=1800)
    if run.code != 0:
        raise RuntimeError(f"the engine worker exited {run.code}: {run.stderr[-600:]!r}")
    figures = engine_figures(json.loads(run.stdout), plan)
    walls = {}
    for batch in (1, 8):
        cmd = cli("caption", str(images_of(plan["command_images"])), "-P", "transformers",
                  "-m", str(model), "--batch-size", str(batch), "--max-tokens", str(COMMAND_TOKENS),
                  "--temperature", "0", "--jsonl", "--no-cache")
        done = run_process(cmd, env=env, cwd=work.root, timeout=1800)
        lines = [json.loads(x) for x in done.stdout.splitlines() if x.strip()]
        if done.code != 0 or len(lines) != plan["command_images"]:
            raise RuntimeError(f"caption --batch-size {batch} exited {done.code}: "
                               f"{done.stderr[-600:]!r}")
        tokens = sum(r["usage"]["completion_tokens"] for r in lines)
        walls[batch] = (done.wall, tokens)
    n = plan["command_images"]
    figures.append(Figure(
        "local", f"whole command: {n} captions of {COMMAND_TOKENS} tokens, --batch-size 8: images/s",
        n / walls[8][0], "img/s", n / walls[1][0], "--batch-size 1, same run", goal="≥ 1.8",
        met=walls[1][0] / walls[8][0] >= 1.8,
        note=f"wall clock incl. imports and loading: {walls[8][0]:.1f} s against {walls[1][0]:.1f} s; "
             f"{walls[8][1]} and {walls[1][1]} tokens generated"))
    return figures


def engine_figures(report: dict, plan: dict) -> list:
    """Figures from the worker's JSON report."""
    from common import Figure

    n, tokens = plan["images"], plan["tokens"]
    rates = {int(b): n / r["wall"] for b, r in report["batches"].items()}
    figures = [
        Figure("local", "fixed cost: import torch + transformers + llguidance: s",
               report["import_s"], "s", note="paid once per process, only by -P transformers"),
        Figure("local", "fixed cost: load the tiny model: s", report["load_s"], "s",
               note=f"{report['weights_mb']:.2f} MB of weights; the real 11B is ~21 GB in bf16"),
        Figure("local", "peak RSS of the engine process: MB", report["peak_rss_mb"], "MB",
               report["rss_after_imports_mb"], "RSS after the imports, before loading",
               note=f"weights {report['weights_mb']:.2f} MB: the RSS is the libraries, not the model"),
    ]
    for batch in sorted(rates):
        if batch == 1:
            continue
        row = report["batches"][str(batch)]
        figures.append(Figure(
            "local", f"images/s at --batch-size {batch} ({n} images, {tokens} tokens each)",
            rates[batch], "img/s", rates[1], "--batch-size 1, same process",
            goal="≥ 3" if batch == 8 else "", met=rates[batch] / rates[1] >= 3 if batch == 8 else None,
            note=f"counted after loading; best of {plan['rounds']} interleaved rounds; "
                 f"{row['tokens']} tokens, {row['errors']} errors"))
    figures.append(Figure(
        "local", "time to first streamed token after loading: s", report["ttft_s"], "s",
        report["answer_s"], f"the whole {tokens}-token answer", note="median of 5, one image"))
    return figures


def _rss_mb(field: str) -> float:
    """VmRSS/VmHWM of this process from /proc (reset by exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(model: str, folder: str, sizes: list[int], tokens: int, rounds: int) -> dict:
    """Measure the engine in this fresh process; the report as a dict."""
    started = time.monotonic()
    import llguidance  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import_s = time.monotonic() - started
    rss_imports = _rss_mb("VmRSS")
    import llamavis
    from llamavis.engine.loader import get_engine
    from llamavis.engine.options import EngineOptions

    started = time.monotonic()
    engine = get_engine(model, EngineOptions(device="cpu"))
    load_s = time.monotonic() - started
    images = sorted(str(p) for p in Path(folder).iterdir())
    common = {"provider": "transformers", "model": model, "max_tokens": tokens, "temperature": 0.0}
    llamavis.analyze(images[0], "caption", engine={"device": "cpu"}, **common)  # warm-up
    batches: dict[str, dict] = {}
    for _round in range(rounds):  # interleaved, best of: a shared machine's load comes and goes
        for batch in sizes:
            started = time.monotonic()
            results = llamavis.analyze_many(images, "caption", concurrency=2 * batch, cache=False,
                                            engine={"device": "cpu", "batch_size": batch}, **common)
            wall = time.monotonic() - started
            if str(batch) not in batches or wall < batches[str(batch)]["wall"]:
                batches[str(batch)] = {
                    "wall": wall, "tokens": sum(r.usage.completion_tokens for r in results),
                    "errors": sum(not r.ok for r in results),
                }
    firsts, totals = [], []
    for _ in range(5):
        seen: list[float] = []
        started = time.monotonic()
        llamavis.analyze(images[0], "caption", engine={"device": "cpu"},
                         on_delta=lambda _piece, seen=seen: seen or seen.append(time.monotonic()),
                         **common)
        totals.append(time.monotonic() - started)
        firsts.append((seen[0] if seen else time.monotonic()) - started)
    return {
        "import_s": import_s, "load_s": load_s, "weights_mb": engine.weights_bytes / 2**20,
        "rss_after_imports_mb": rss_imports, "peak_rss_mb": _rss_mb("VmHWM"),
        "batches": batches, "ttft_s": sorted(firsts)[2], "answer_s": sorted(totals)[2],
    }


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    model_dir, image_dir, size_list, max_tokens, repeat = sys.argv[2:7]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    report = worker(model_dir, image_dir, [int(s) for s in size_list.split(",")], int(max_tokens),
                    int(repeat))
    sys.stdout.write(json.dumps(report) + "\n")
