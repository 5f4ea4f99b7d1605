"""Cutting a large page into tiles Llama 3.2 Vision can read at full resolution, and
joining what it read back into one text. Pure: Pillow images in, boxes and text out.

The model sees at most 1120 px a side: a 300 dpi A4 scan (2480 x 3508) shrunk to fit
loses its small print. Instead the page is cropped to its content, then cut into a grid
of tiles of at most ``TILE`` px a side that overlap by at least ``OVERLAP`` px (so a line
cut by one seam is whole in the neighbouring tile). The tiles' texts are joined in
reading order (rows top to bottom, each left to right) and a run of lines that a tile
shares with the tile above it (read twice in the overlap) is kept once.

``auto`` measures the print: the height of the page's text lines (the median run of
pixel rows with ink, ascender to descender, about the font size) times the scale that
fits the content into 1120 px. Below ``LEGIBLE`` px the page is tiled; a page that fits
1120 px already, or has no text lines (a photo: one tall run), is asked whole. On a 300
dpi A4 scan (content about 2900 px tall, scale 0.38) that tiles print under about 37 px a
line, i.e. body text up to about 9-10 pt, and leaves headings and posters whole.

Across a row, tiles read pieces of the same lines: when they give the same number of
lines, line i of each is joined left to right, words repeated in the overlap kept once;
otherwise (a layout that differs across the seam) their texts follow one another.
"""

from __future__ import annotations

import math
from typing import Any

TILE = 1120
OVERLAP = 120  # px shared by neighbouring tiles: more than a line of 12 pt text at 300 dpi
LEGIBLE = 14  # px a text line's ink must keep after shrinking to be read reliably
MIN_RUN = 5  # px: runs of ink rows thinner than this are rules and specks, not lines
MARGIN = 16  # px kept around the content when cropping
INK = 32  # grey levels from the background colour that count as content

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)


def ink(img: Any) -> Any:
    """A mask (mode L, 255 = ink) of what differs from the background (the corners' colour)."""
    from PIL import Image, ImageChops

    gray = img.convert("L")
    w, h = gray.size
    corners = sorted(gray.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)))
    background = Image.new("L", gray.size, int((corners[1] + corners[2]) / 2))
    return ImageChops.difference(gray, background).point(lambda v: 255 if v > INK else 0)


def content_box(img: Any) -> Box:
    """The part of the page that is not background, plus a margin."""
    w, h = img.size
    box = ink(img).getbbox()
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


def line_height(img: Any, box: Box) -> int | None:
    """The median height of the text lines in ``box`` (runs of pixel rows with ink), or
    None when there are none."""
    from PIL import Image

    mask = ink(img).crop(box)
    rows = list(mask.resize((1, mask.size[1]), Image.Resampling.BOX).getdata())
    runs, run = [], 0
    for v in [*rows, 0]:
        if v:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    runs = sorted(r for r in runs if r >= MIN_RUN)
    return runs[len(runs) // 2] if runs else None


def wants_tiles(box: Box, tiles: str | int, line: int | None = None) -> bool:
    """Whether to tile a page whose content is ``box`` and whose text lines are ``line`` px
    tall: always for a count; for auto, when shrinking to 1120 px takes them below LEGIBLE."""
    if tiles != "auto":
        return True
    side = max(box[2] - box[0], box[3] - box[1])
    return side > TILE and line is not None and line * TILE / side < LEGIBLE


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


def _overlap(left: list[str], right: list[str]) -> int:
    """How many leading words of ``right`` repeat the trailing words of ``left``."""
    a, b = [_norm(w) for w in left], [_norm(w) for w in right]
    return next((k for k in range(min(len(a), len(b)), 0, -1) if a[-k:] == b[:k]), 0)


def _across(texts: list[str]) -> list[str]:
    """The lines of one row of tiles: pieces of the same lines side by side when every
    tile read as many lines, else each tile's lines in turn."""
    tiles = [[x for x in t.strip("\n").splitlines() if x.strip()] if len(texts) > 1
             else t.strip("\n").splitlines() for t in texts]
    if len(tiles) == 1 or len({len(t) for t in tiles}) != 1:
        return [line for t in tiles for line in t]
    out = []
    for pieces in zip(*tiles, strict=True):
        words = pieces[0].split()
        for piece in pieces[1:]:
            more = piece.split()
            words += more[_overlap(words, more):]
        out.append(" ".join(words))
    return out


def join(grid: list[list[str]]) -> str:
    """The texts of a grid of tiles as one text in reading order, overlaps read once."""
    rows = [_across(row) for row in grid]
    out: list[str] = []
    for r, lines in enumerate(rows):
        out.extend(lines[_shared(rows[r - 1], lines):] if r else lines)
    return "\n".join(out)
