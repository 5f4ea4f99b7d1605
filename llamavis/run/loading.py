"""How a Runner reads, prepares and looks up one image: the bytes of a source, the
prepared image, the cache key (the request's fingerprint) and the stored answer.

``ImageLoading`` is Runner's base (run/runner.py); it needs the Runner's ``cfg``,
``cache``, ``stdin`` and ``clock``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, BinaryIO

from llamavis.errors import LlamavisError
from llamavis.run.config import TaskConfig
from llamavis.run.protocol import Source
from llamavis.types import JSONObject, PreparedImage, Result, Usage

if TYPE_CHECKING:
    from llamavis.store.cache import ResultCache

__all__ = ["ImageLoading", "Stored"]

Stored = JSONObject  # a Result as the cache keeps it


class ImageLoading:
    """Reading, preparing and the cache lookup of one image (Runner's first half)."""

    cfg: TaskConfig
    cache: ResultCache | None
    stdin: BinaryIO | None
    clock: Callable[[], float]

    async def prepare(self, source: Source) -> PreparedImage:
        """Read and prepare one image off the event loop (both cores work).

        ``source`` is a path, URL or "-" (as the command line names images) or an
        ``inputs.ImageInput`` (an image the Python API was handed in memory).
        """
        return await asyncio.to_thread(lambda: self._prepare(self._read(source), str(source)))

    def read(self, source: Source) -> bytes:
        """The source's bytes as a run reads them (standard input once); blocking."""
        return self._read(source)

    def _read(self, source: Source) -> bytes:
        """The bytes of one source: a file, URL or "-" as read_source reads them, or the
        bytes of an image handed over in memory."""
        from llamavis.images.inputs import ImageInput
        from llamavis.images.sources import read_source

        if isinstance(source, ImageInput):
            return source.read(self.stdin)
        return read_source(source, stdin=self.stdin)

    def _prepare(self, data: bytes, source: str) -> PreparedImage:
        from llamavis.images.prepare import prepare_image

        spec = self.cfg.provider
        return prepare_image(data, source=source, purpose=self.cfg.image_purpose,
                             accepted_mimes=spec.image_mimes, max_side=self._max_side(),
                             max_url=spec.max_image_url, provider=spec.name)

    def _max_side(self) -> int:
        from llamavis.backends.models import profile_for

        return profile_for(self.cfg.model_id).max_side  # the model family's own size

    def cache_key(self, data: bytes) -> str:
        """Keyed by the image as read plus how it is prepared: a re-run decodes nothing."""
        from llamavis.images.prepare import recipe
        from llamavis.store.cache import cache_key

        spec = self.cfg.provider
        how = recipe(self.cfg.image_purpose, spec.image_mimes, self._max_side(), 90,
                     spec.max_image_url)
        return cache_key(image=hashlib.sha256(data).hexdigest(), prepared=how,
                         **self.cfg.cache_parts())

    def lookup(self, data: bytes) -> tuple[str, Stored | None]:
        """(cache key, stored result) for an image's bytes; blocking (the store may wait on
        another process's lock), so call it off the event loop. The key is computed with
        the cache off too: it is the request's fingerprint (in-run sharing, sidecars)."""
        key = self.cache_key(data)
        return key, None if self.cache is None else self.cache.get(key)

    def fingerprint(self, source: Source) -> str:
        """The fingerprint of the request ``source`` would be asked with (reads it; blocking)."""
        return self.cache_key(self._read(source))

    async def load(self, source: Source) -> tuple[str, Stored | None, PreparedImage | None]:
        """(cache key, stored result, prepared image or None on a hit) for one source: read,
        look up and, on a miss, prepare it in one trip off the event loop."""
        return await asyncio.to_thread(self._load, source)

    def _load(self, source: Source, *, lookup_only: bool = False
              ) -> tuple[str, Stored | None, PreparedImage | None]:
        data = self._read(source)
        key, hit = self.lookup(data)
        if hit is not None or lookup_only:
            return key, hit, None
        return key, None, self._prepare(data, str(source))

    async def cached(self, source: Source) -> Result | None:
        """The stored answer for ``source``, or None; never sends a request (for --max-cost
        and --dry-run: a cached answer costs nothing)."""
        try:
            key, hit, _ = await asyncio.to_thread(self._load, source, lookup_only=True)
        except LlamavisError:
            return None
        if hit is None:
            return None
        result = Result(image=str(source), task=self.cfg.task, provider=self.cfg.provider.name,
                        model=self.cfg.model_id, fingerprint=key)
        return self._from_cache(result, hit, self.clock())

    def _from_cache(self, result: Result, hit: Stored, start: float) -> Result:
        """The stored answer under this run's names (the same image may have another path)."""
        stored = Result.from_dict(hit)
        first_cost = stored.cached_usage or stored.usage  # kept apart: it is not this run's spend
        return replace(stored, image=result.image, task=result.task,
                       provider=result.provider, model=result.model, attempts=0, cached=True,
                       usage=Usage(cost_usd=0.0), cached_usage=first_cost,
                       error=None, elapsed_s=self.clock() - start, fingerprint=result.fingerprint)
