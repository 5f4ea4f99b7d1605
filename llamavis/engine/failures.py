"""What can go wrong loading or running the local model, said in one line with the way out.

The boundary where exceptions from torch, transformers and huggingface_hub become
``ConfigError`` (exit 3: nothing will work until the user changes something) or stay per-image
errors. Messages never carry a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from llamavis.errors import ConfigError

INSTALL_HINT = ("pip install 'llamavis[local]', plus torch for your machine "
                "(README: 'In-process engine')")
_GB = 1024**3


def missing_extra(exc: ImportError) -> ConfigError:
    """The local extra (or torch) is not installed."""
    name = getattr(exc, "name", None) or str(exc)
    return ConfigError(f"-P transformers needs packages that are not installed ({name})",
                       hint=INSTALL_HINT)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _offline() -> bool:
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return "the Hugging Face cache"


def load_failure(exc: BaseException, model_id: str) -> ConfigError | None:
    """A ConfigError for a model that cannot be fetched or read; None if ``exc`` is not that."""
    names = [type(e).__name__ for e in _chain(exc)]
    page = f"https://huggingface.co/{model_id}"
    login = "`hf auth login` (or set HF_TOKEN)"
    if "GatedRepoError" in names:
        return ConfigError(
            f"{model_id} is a gated model and this Hugging Face account has no access to it",
            hint=f"accept the licence on {page}, then run {login}")
    if "RepositoryNotFoundError" in names:
        return ConfigError(f"no model {model_id} on the Hugging Face Hub, or it is private",
                           hint=f"check -m; for a private or gated repo run {login}")
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names:
        where = f"{model_id} is not in the local Hugging Face cache ({_hub_cache()})"
        if _offline():
            return ConfigError(
                f"{where} and HF_HUB_OFFLINE is set",
                hint=f"to download it once: unset HF_HUB_OFFLINE, accept the licence on {page}, "
                     f"run `hf auth login`, then `hf download {model_id}`; "
                     "or give -m a local model directory")
        return ConfigError(f"{where} and the Hugging Face Hub could not be reached",
                           hint="check the network or proxy, or give -m a local model directory")
    if any(n in ("HfHubHTTPError", "HTTPError") for n in names) and "401" in str(exc):
        return ConfigError(f"the Hugging Face Hub refused access to {model_id} (401)",
                           hint=f"run {login}; for Meta's models accept the licence on {page}")
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, whatever class torch gave them."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _gb(n: float) -> str:
    return f"{n / _GB:.1f} GB"


def memory_error(action: str, device: str, weights: int | None, memory: tuple[int, int] | None,
                 hint: str) -> ConfigError:
    """Out of memory: what was being done, the figures, and the options that help."""
    parts = []
    if weights:
        parts.append(f"the weights take about {_gb(weights)}")
    if memory:
        total, free = memory
        parts.append(f"the {device} has {_gb(total)} ({_gb(free)} free)")
    figures = f": {'; '.join(parts)}" if parts else ""
    return ConfigError(f"out of memory on {device} {action}{figures}", hint=hint)


def device_memory(torch: object, device: str) -> tuple[int, int] | None:
    """(total, free) bytes of the device, where torch or psutil can tell."""
    try:
        if device == "cuda":
            free, total = torch.cuda.mem_get_info()  # type: ignore[attr-defined]
            return int(total), int(free)
        if device == "mps":
            total = int(torch.mps.recommended_max_memory())  # type: ignore[attr-defined]
            return total, max(0, total - int(torch.mps.driver_allocated_memory()))  # type: ignore[attr-defined]
        import psutil  # accelerate depends on it

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except Exception:  # noqa: BLE001 - figures are a courtesy; the error itself must still show
        return None
