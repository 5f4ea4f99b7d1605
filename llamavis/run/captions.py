"""``--captions N``: N answers per image, each its own request with its own seed.

The seeds are ``--seed``, ``--seed + 1``, ... (so a re-run finds every answer in the
cache), or random ones when no seed is given. The N requests of an image run
concurrently through ordinary Runners (one per seed) and make one Result: ``captions``
holds each answer, ``output`` them one per line, ``usage`` and ``attempts`` their sums.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from llamavis.run.config import TaskConfig
from llamavis.types import Result, Usage


def seeds(first: int | None, n: int) -> list[int]:
    """``first, first + 1, ...``; random seeds when no seed is given."""
    if first is None:
        pick = random.SystemRandom()
        return [pick.randrange(2**31) for _ in range(n)]
    return [first + i for i in range(n)]


class MultiCaptionRunner:
    """The Runner's face over N Runners that differ only in their seed."""

    def __init__(self, cfg: TaskConfig, n: int, make: Callable[[TaskConfig], Any]) -> None:
        self.cfg = cfg
        self.runners = [make(replace(cfg, params=replace(cfg.params, seed=s)))
                        for s in seeds(cfg.params.seed, n)]

    @property
    def cache(self) -> Any:
        return self.runners[0].cache

    async def run(self, source: Any, **_streaming: Any) -> Result:
        """Every seed's answer for one image (N answers do not stream onto a terminal)."""
        results = await asyncio.gather(*(r.run(source) for r in self.runners))
        return merge(results)

    async def cached(self, source: Any) -> Result | None:
        hits = [await r.cached(source) for r in self.runners]
        return None if any(h is None for h in hits) else merge(hits)

    async def dry_run(self, source: Any) -> list[dict[str, Any]]:
        return [await r.dry_run(source) for r in self.runners]

    def configs(self) -> list[Any]:
        """The routes a run would ask (the first seed's: every seed asks the same ones)."""
        return list(self.runners[0].configs())

    async def aclose(self) -> None:
        """Nothing of its own: the Engine closes the clients and routes its Runners share."""


def merge(results: list[Result]) -> Result:
    """One Result of N answers; the first failure, if any, is the image's failure (the
    answers that came are in the cache: a re-run with --seed asks only for the rest)."""
    first = results[0]
    usage = sum((r.usage for r in results), Usage())
    common: dict[str, Any] = {"usage": usage, "attempts": sum(r.attempts for r in results),
              "cached": all(r.cached for r in results),
              "elapsed_s": max(r.elapsed_s for r in results)}
    failed = next((r for r in results if r.error is not None), None)
    if failed is not None:
        return replace(first, output=None, raw=failed.raw, error=failed.error, **common)
    texts = [r.output if isinstance(r.output, str) else str(r.output) for r in results]
    return replace(first, output="\n".join(" ".join(t.split()) for t in texts),
                   raw="\n".join(r.raw or "" for r in results), captions=texts,
                   truncated=any(r.truncated for r in results), **common)
