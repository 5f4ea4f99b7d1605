"""``llamavis doctor`` for ``-P transformers``: can this machine run the model in-process?

Judged without importing torch or loading anything: the local extra is installed, and the
weights are in a local directory or in the Hugging Face cache. Whether they fit in memory
shows only when the model loads.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from llamavis.engine.failures import INSTALL_HINT
from llamavis.engine.loader import model_ref
from llamavis.errors import ConfigError

EXTRA = ("torch", "transformers", "accelerate", "llguidance")


def local_verdict(model_id: str) -> tuple[str, str]:
    """(verdict, detail) in doctor's words: "live" or "not_configured"."""
    missing = [name for name in EXTRA if find_spec(name) is None]
    if missing:
        return "not_configured", f"not installed: {', '.join(missing)} ({INSTALL_HINT})"
    try:
        ref = model_ref(model_id)
    except ConfigError as exc:
        return "not_configured", str(exc)
    if Path(ref).is_dir():
        return "live", f"a model directory ({ref}); it loads in this process on first use"
    cached = _cached_config(model_id)
    if cached is None:
        return "not_configured", (
            f"{model_id} is not in the local Hugging Face cache: accept the licence on "
            f"https://huggingface.co/{model_id}, run `hf auth login`, then `hf download "
            f"{model_id}` (or let the first run download it)")
    return "live", f"in the local Hugging Face cache ({cached.parent}); loads on first use"


def _cached_config(model_id: str) -> Path | None:
    """The cached config.json of a repo id, if the cache holds one."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id or cache is simply "not cached"
        return None
    return Path(found) if isinstance(found, str) else None
