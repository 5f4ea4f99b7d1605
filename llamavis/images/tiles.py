"""Cutting a large page into tiles Llama 3.2 Vision can read at full resolution, and
joining what it read back into one text. Pure: Pillow images in, boxes and text out.

The model sees at most 1120 px a side: a 300 dpi A4 scan (2480 x 3508) shrunk to fit
loses its small print. Instead the page is cropped to its content, then cut into a grid
of tiles of at most ``TILE`` px a side that overlap by at least ``OVERLAP`` px (so a line
cut by one seam is whole in the neighbouring tile). The tiles' texts are joined in
reading order (rows top to bottom, each left to right) and a run of lines that a tile
shares with the tile above it (read twice in the overlap) is kept once.

``auto`` tiles a page only when its content's long side is above ``AUTO_LIMIT``
(1.5 x 1120 = 1680 px): shrinking such a page to 1120 px scales its text by less than
2/3, and 8-10 pt print scanned at 300 dpi (about 25-35 px a line) falls below the
~16 px a line the model still reads reliably.
"""

from __future__ import annotations

import math
from typing import Any

TILE = 1120
OVERLAP = 120  # px shared by neighbouring tiles: more than a line of 12 pt text at 300 dpi
AUTO_LIMIT = int(1.5 * TILE)
MARGIN = 16  # px kept around the content when cropping
INK = 32  # grey levels from the background colour that count as content

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)


def content_box(img: Any) -> Box:
    """The part of the page that is not background (the corners' colour), plus a margin."""
    from PIL import Image, ImageChops

    gray = img.convert("L")
    w, h = gray.size
    corners = sorted(gray.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)))
    background = Image.new("L", gray.size, int((corners[1] + corners[2]) / 2))
    mask = ImageChops.difference(gray, background).point(lambda v: 255 if v > INK else 0)
    box = mask.getbbox()
    if box is None:  # a blank page: nothing to crop to
        return (0, 0, w, h)
    x0, y0, x1, y1 = box
    return (max(0, x0 - MARGIN), max(0, y0 - MARGIN), min(w, x1 + MARGIN), min(h, y1 + MARGIN))


def spans(length: int, count: int = 1, tile: int = TILE, overlap: int = OVERLAP) -> list[tuple[int, int]]:
    """(start, end) of at least ``count`` equal pieces of ``length``, each at most ``tile``
    long, neighbours overlapping by at least ``overlap``."""
    n = max(count, math.ceil((length - overlap) / (tile - overlap)) if length > tile else 1)
    n = min(n, max(1, length // (overlap + 1)))  # never more pieces than overlaps fit
    if n == 1:
        return [(0, length)]
    size = min(length, math.ceil((length + (n - 1) * overlap) / n))
    starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
    return [(s, s + size) for s in starts]


def wants_tiles(box: Box, tiles: str | int) -> bool:
    """Whether to tile a page whose content is ``box``: always for a count, by size for auto."""
    if tiles != "auto":
        return True
    return max(box[2] - box[0], box[3] - box[1]) > AUTO_LIMIT


def plan(box: Box, tiles: str | int = "auto") -> list[list[Box]]:
    """The grid of tiles over ``box``, row by row: at least N strips for ``tiles=N``, each
    cut into as many tiles across as 1120 px needs."""
    x0, y0, x1, y1 = box
    rows = spans(y1 - y0, 1 if tiles == "auto" else int(tiles))
    cols = spans(x1 - x0)
    return [[(x0 + a, y0 + t, x0 + b, y0 + u) for a, b in cols] for t, u in rows]


def _norm(line: str) -> str:
    return " ".join(line.split()).casefold()


def _shared(above: list[str], below: list[str]) -> int:
    """How many leading lines of ``below`` repeat the trailing lines of ``above``."""
    a = [_norm(x) for x in above]
    b = [_norm(x) for x in below]
    for k in range(min(len(a), len(b)), 0, -1):
        if a[-k:] == b[:k] and any(b[:k]):
            return k
    return 0


def join(grid: list[list[str]]) -> str:
    """The texts of a grid of tiles as one text in reading order, overlaps read once."""
    lines = [[text.strip("\n").splitlines() for text in row] for row in grid]
    out: list[str] = []
    for r, row in enumerate(lines):
        for c, tile_lines in enumerate(row):
            if r > 0 and c < len(lines[r - 1]):
                tile_lines = tile_lines[_shared(lines[r - 1][c], tile_lines):]
            out.extend(tile_lines)
    return "\n".join(out)
