"""The model and its processor, loaded once per process on first use, on the device asked for.

``get_engine`` is thread-safe: concurrent callers wait for one load. A load that fails is
not remembered, so fixing the cause (logging in, freeing memory) and asking again works.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamavis.engine import failures
from llamavis.engine.options import EngineOptions
from llamavis.errors import ConfigError

Log = Callable[[str], None]
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Engine:
    """A loaded model, ready for ``generate.run_batch``."""

    model: Any
    processor: Any
    model_id: str
    device: str  # "cuda", "mps" or "cpu"
    dtype: str
    eos_ids: tuple[int, ...]
    pad_id: int
    logits_size: int  # the tokenizer may hold one more token (<|image|>) than the logits cover
    weights_bytes: int
    load_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generate at a time
    grammars: Any = None  # grammar.Grammars, built on first constrained request

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer


_ENGINES: dict[tuple[str, str, str, bool], Engine] = {}
_LOAD_LOCK = threading.Lock()


def get_engine(model_id: str, options: EngineOptions, log: Log | None = None) -> Engine:
    """The engine for this model and options, loading it the first time (ConfigError if it cannot)."""
    key = (model_id, options.device, options.dtype, options.load_in_4bit)
    with _LOAD_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = load(model_id, options, log or (lambda _line: None))
        return engine


def import_stack() -> tuple[Any, Any]:
    """torch and transformers (and llguidance present), or a ConfigError naming the extra."""
    try:
        import llguidance  # noqa: F401 - needed by every constrained task; checked up front
        import torch
        import transformers
    except ImportError as exc:
        raise failures.missing_extra(exc) from None
    transformers.utils.logging.set_verbosity_error()  # progress bars and advice are not ours to print
    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars
        from huggingface_hub.utils import logging as hub_logging

        disable_progress_bars()
        hub_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        pass
    return torch, transformers


def pick_device(asked: str, torch: Any) -> str:
    """--device: 'auto' takes CUDA, then Apple MPS, then the CPU."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if asked == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if asked == "cuda" and not cuda:
        raise ConfigError(f"--device cuda: this torch ({torch.__version__}) sees no CUDA GPU",
                          hint="install a CUDA build of torch (README) or use --device cpu")
    if asked == "mps" and not mps:
        raise ConfigError("--device mps: Apple's Metal (MPS) is not available here",
                          hint="use --device cpu, or auto")
    return asked


def pick_dtype(asked: str, device: str, torch: Any) -> str:
    """--dtype: 'auto' is bfloat16 on CUDA where supported, float16 on MPS, float32 on CPU."""
    if asked != "auto":
        return asked
    if device == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float16" if device == "mps" else "float32"


def quantization(options: EngineOptions, device: str, dtype: str, transformers: Any) -> Any:
    """The 4-bit config for --load-in-4bit, or None; ConfigError where it cannot work."""
    if not options.load_in_4bit:
        return None
    if device != "cuda":
        raise ConfigError(f"--load-in-4bit needs a CUDA GPU (bitsandbytes); the device is {device}",
                          hint="drop --load-in-4bit, or use --dtype float16/bfloat16 to halve memory")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("--load-in-4bit needs bitsandbytes, which is not installed",
                          hint="pip install bitsandbytes") from None
    return transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                           bnb_4bit_compute_dtype=dtype)


def model_ref(model_id: str) -> str:
    """A local directory's path, or the repo id; ConfigError for a path that holds no model."""
    path = Path(model_id).expanduser()
    looks_like_path = model_id.startswith(("/", ".", "~")) or os.sep != "/" and os.sep in model_id
    if not path.exists():
        if looks_like_path:
            raise ConfigError(f"-m {model_id}: no such directory",
                              hint="give a directory holding a saved model, or a repo id like 11b")
        return model_id
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ConfigError(f"-m {model_id}: no model there (no config.json)",
                          hint="give the directory a Hugging Face model was saved or downloaded into")
    return str(path)


def load(model_id: str, options: EngineOptions, log: Log) -> Engine:
    """Load the processor and model; every failure becomes a one-line ConfigError."""
    started = time.monotonic()
    ref = model_ref(model_id)  # before the imports: a wrong path is said in a moment
    torch, transformers = import_stack()
    device = pick_device(options.device, torch)
    dtype = pick_dtype(options.dtype, device, torch)
    quant = quantization(options, device, dtype, transformers)
    try:
        config = transformers.AutoConfig.from_pretrained(ref)
        if getattr(config, "model_type", None) != "mllama":
            raise ConfigError(f"-m {model_id} is a {config.model_type!r} model, not Llama 3.2 "
                              "Vision (mllama)", hint="give a Llama 3.2 Vision repo id or directory")
        processor = transformers.AutoProcessor.from_pretrained(ref)
        model = transformers.MllamaForConditionalGeneration.from_pretrained(
            ref, dtype=getattr(torch, dtype), quantization_config=quant,
            device_map="auto" if device == "cuda" else device if device == "mps" else None,
        ).eval()
    except ConfigError:
        raise
    except Exception as exc:
        raise _load_error(exc, model_id, ref, device, dtype, torch, transformers) from exc
    engine = _engine(model, processor, model_id, device, dtype, time.monotonic() - started)
    log(f"loaded {model_id} on {device} in {dtype} in {engine.load_s:.1f} s "
        f"({engine.weights_bytes / 1e9:.2f} GB of weights)")
    return engine


def _engine(model: Any, processor: Any, model_id: str, device: str, dtype: str,
            load_s: float) -> Engine:
    processor.tokenizer.padding_side = "left"  # generation continues from the right edge
    gen = model.generation_config
    eos = gen.eos_token_id if gen.eos_token_id is not None else processor.tokenizer.eos_token_id
    eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else (int(eos),)
    pad = gen.pad_token_id if gen.pad_token_id is not None else processor.tokenizer.pad_token_id
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return Engine(model, processor, model_id, device, dtype, eos_ids,
                  int(pad if pad is not None else eos_ids[0]),
                  int(model.get_output_embeddings().weight.shape[0]), int(weights), load_s)


def _load_error(exc: Exception, model_id: str, ref: str, device: str, dtype: str, torch: Any,
                transformers: Any) -> ConfigError:
    found = failures.load_failure(exc, model_id)
    if found is not None:
        return found
    if failures.is_out_of_memory(exc):
        return failures.memory_error(
            f"loading {model_id} in {dtype}", device, _weights_estimate(ref, dtype, transformers, torch),
            failures.device_memory(torch, device),
            hint="try --load-in-4bit (CUDA), --dtype float16/bfloat16, or another --device")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"could not load {model_id}: {first}",
                       hint="check -m; --debug shows the whole error")


def _weights_estimate(ref: str, dtype: str, transformers: Any, torch: Any) -> int | None:
    """Parameters x bytes per parameter, counted on the meta device (no memory spent)."""
    try:
        config = transformers.AutoConfig.from_pretrained(ref)
        with torch.device("meta"):
            model = transformers.MllamaForConditionalGeneration(config)  # public API
        return sum(p.numel() for p in model.parameters()) * _BYTES.get(dtype, 2)
    except Exception:  # noqa: BLE001 - a figure for an error message only
        return None
