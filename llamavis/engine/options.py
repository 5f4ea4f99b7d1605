"""The local engine's options (--device, --dtype, --load-in-4bit, --batch-size), checked up front."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llamavis.errors import UsageError

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")
# Images per generate call when --batch-size is not given. A GPU gains most from batching;
# on MPS and CPU memory, not arithmetic, runs out first (the 11B's cross-attention states
# take about 0.2 GB per image in 16-bit).
DEFAULT_BATCH = {"cuda": 8, "mps": 4, "cpu": 4}
# -j when the user does not give it: two batches' worth of requests, so the next batch is
# already prepared and queued while the current one generates.
BATCHES_IN_FLIGHT = 2
HTTP_CONCURRENCY = 4  # the -j default of every HTTP provider
CLI_NAMES = ("device", "dtype", "load_in_4bit", "batch_size")


@dataclass(frozen=True)
class EngineOptions:
    """How to load and feed the in-process model."""

    device: str = "auto"
    dtype: str = "auto"
    load_in_4bit: bool = False
    batch_size: int | None = None  # None: DEFAULT_BATCH for the device

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> EngineOptions:
        """Options from a dict (the CLI's or the API's ``engine=``); UsageError if one is wrong."""
        values = {k: v for k, v in (values or {}).items() if v is not None}
        unknown = sorted(set(values) - set(CLI_NAMES))
        if unknown:
            raise UsageError(f"unknown engine option(s): {', '.join(unknown)}; "
                             f"known: {', '.join(CLI_NAMES)}")
        device = str(values.get("device", "auto")).strip().lower()
        dtype = str(values.get("dtype", "auto")).strip().lower()
        if device not in DEVICES:
            raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
        if dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        batch = values.get("batch_size")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise UsageError(f"--batch-size must be a whole number of 1 or more, got {batch!r}")
        return cls(device, dtype, bool(values.get("load_in_4bit", False)), batch)

    def batch_size_for(self, device: str) -> int:
        """--batch-size, else the default for the device the model was loaded on."""
        return self.batch_size or DEFAULT_BATCH.get(device, DEFAULT_BATCH["cpu"])


def engine_from_cli(opts: Mapping[str, Any]) -> EngineOptions:
    """The engine options the user typed, checked (the one check they get)."""
    return EngineOptions.from_mapping({name: opts.get(name) for name in CLI_NAMES})


def default_concurrency(wire: str, engine: EngineOptions) -> int:
    """-j when not given: 4 requests for HTTP, two batches' worth for the in-process engine."""
    if wire != "transformers":
        return HTTP_CONCURRENCY
    return BATCHES_IN_FLIGHT * (engine.batch_size or max(DEFAULT_BATCH.values()))
