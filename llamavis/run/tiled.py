"""``ocr --tiles auto|N``: one page as several requests, one Result.

The page is read at full resolution, cropped to its content and cut into tiles of at
most 1120 px (llamavis.images.tiles); each tile goes through the ordinary Runner as an
image of its own (prepared, cached, retried like any other) and all are asked
concurrently. The answers are joined in reading order into the page's one Result, whose
``tiles`` lists each tile's box (in page pixels), text, usage and attempts, and whose
``usage`` and ``attempts`` are their sums. A page too small to need tiles under ``auto``
is asked as it is.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from typing import Any

from llamavis.errors import ConfigError, LlamavisError, UsageError
from llamavis.images import tiles as tiling
from llamavis.images.inputs import ImageInput
from llamavis.types import Result, Usage

Cut = tuple[list[list[tiling.Box]], list[ImageInput]]


class TiledRunner:
    """The Runner's face over one Runner, asking each page tile by tile."""

    def __init__(self, cfg: Any, base: Any, tiles: str | int) -> None:
        self.cfg, self.base, self.tiles = cfg, base, tiles

    @property
    def cache(self) -> Any:
        return self.base.cache

    def configs(self) -> list[Any]:
        """The routes a run would ask: its base runner's."""
        return list(self.base.configs())

    async def _cut(self, source: Any) -> Cut | None:
        """The grid and the tile images of a page, or None when it is asked whole."""
        try:
            return await asyncio.to_thread(self._cut_now, source)
        except (ConfigError, UsageError):
            raise
        except LlamavisError:
            return None  # the ordinary Runner reads it again and reports the failure

    def _cut_now(self, source: Any) -> Cut | None:
        from PIL import Image, ImageOps

        data = self.base.read(source)
        with Image.open(io.BytesIO(data)) as opened:
            page = ImageOps.exif_transpose(opened)
            page = page.convert("L" if page.mode in ("1", "L", "I;16", "I") else "RGB")
        box = tiling.content_box(page)
        line = tiling.line_height(page, box) if self.tiles == "auto" else None
        if not tiling.wants_tiles(box, self.tiles, line):
            return None
        grid = tiling.plan(box, self.tiles)
        inputs = []
        for i, b in enumerate(b for row in grid for b in row):
            buf = io.BytesIO()
            page.crop(b).save(buf, format="PNG")  # lossless: the tile is the page's own pixels
            inputs.append(ImageInput(f"{source}#tile={i + 1}", data=buf.getvalue()))
        return grid, inputs

    async def run(self, source: Any, **_streaming: Any) -> Result:
        """One page; tiled when the option says so (tiles do not stream onto a terminal)."""
        cut = await self._cut(source)
        if cut is None:
            result: Result = await self.base.run(source)
            return result
        grid, inputs = cut
        results = await asyncio.gather(*(self.base.run(t) for t in inputs))
        return merge(str(source), grid, list(results))

    async def cached(self, source: Any) -> Result | None:
        cut = await self._cut(source)
        if cut is None:
            hit: Result | None = await self.base.cached(source)
            return hit
        grid, inputs = cut
        hits = [await self.base.cached(t) for t in inputs]
        return None if any(h is None for h in hits) else merge(str(source), grid, hits)

    async def dry_run(self, source: Any) -> list[dict[str, Any]]:
        """The request of every tile, each with its place on the page."""
        cut = await self._cut(source)
        if cut is None:
            return [await self.base.dry_run(source)]
        grid, inputs = cut
        boxes = [b for row in grid for b in row]
        out = []
        for i, (b, tile) in enumerate(zip(boxes, inputs, strict=True)):
            req = await self.base.dry_run(tile)
            out.append({**req, "image": str(source), "tile": {"index": i + 1, "of": len(boxes),
                                                               "box": list(b)}})
        return out

    async def aclose(self) -> None:
        """Nothing of its own: the Engine closes the client its Runner shares."""


def merge(image: str, grid: list[list[tiling.Box]], results: list[Result]) -> Result:
    """The page's Result from its tiles' (in grid order)."""
    boxes = [b for row in grid for b in row]
    tiles = [{"box": list(b), "text": r.output, "usage": r.usage.to_dict(),
              "attempts": r.attempts, "cached": r.cached, "error": r.error}
             for b, r in zip(boxes, results, strict=True)]
    first = results[0]
    common: dict[str, Any] = {"image": image, "tiles": tiles, "usage": sum((r.usage for r in results), Usage()),
              "attempts": sum(r.attempts for r in results),
              "cached": all(r.cached for r in results),
              "elapsed_s": max(r.elapsed_s for r in results)}
    failed = next((i for i, r in enumerate(results) if r.error is not None), None)
    if failed is not None:
        err = results[failed].error or {}
        error = {**err, "message": f"tile {failed + 1} of {len(results)}: {err.get('message', '')}"}
        return replace(first, output=None, raw=None, error=error, **common)
    texts, k = [], 0
    for row in grid:
        texts.append([str(results[k + j].output or "") for j in range(len(row))])
        k += len(row)
    text = tiling.join(texts)
    return replace(first, output=text, raw=text,
                   truncated=any(r.truncated for r in results), **common)
