"""Fit a prepared image under a provider's inline limit (NVIDIA: 180,000 base64 characters).

A data: URL grows by 4/3 over the image's bytes, so 180,000 characters hold about 135 KB:
a 1120 px photo at JPEG 90 often fits, a 1120 px page of small print as PNG rarely does.
The image is re-encoded as JPEG at falling quality first (the model keeps every pixel it
would have seen), and only then shrunk step by step. A photo may go down to 448 px; text
(``ocr``) keeps its full prepared size down to quality 60 and then goes no smaller than
896 px on its long side, below which small print stops being legible — an image that
still does not fit is an ``ImageError`` that says what to do.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from llamavis.errors import ImageError
from llamavis.types import PreparedImage

if TYPE_CHECKING:
    from PIL.Image import Image as Picture

_PREFIX = len("data:image/jpeg;base64,")
_QUALITIES = {"photo": (85, 75, 65, 55), "text": (90, 80, 70, 60)}
_MIN_SIDE = {"photo": 448, "text": 896}
_STEP = 0.85  # each shrink keeps 85 % of the long side


def url_chars(size: int) -> int:
    """The length of a JPEG data: URL for ``size`` bytes of image."""
    return _PREFIX + 4 * ((size + 2) // 3)


def fit_inline(image: PreparedImage, limit: int, *, purpose: str, provider: str) -> PreparedImage:
    """``image`` itself when its data: URL is within ``limit``; else a re-encoded one that is."""
    if len(image.data_url()) <= limit:
        return image
    from PIL import Image

    with Image.open(io.BytesIO(image.data)) as opened:
        picture = opened.convert("RGB")
    qualities = _QUALITIES.get(purpose, _QUALITIES["photo"])
    floor = min(_MIN_SIDE.get(purpose, 448), max(picture.size))
    side = max(picture.size)
    while True:
        current = picture if side == max(picture.size) else _scaled(picture, side)
        for quality in qualities if side == max(picture.size) else qualities[-1:]:
            data = _jpeg(current, quality)
            if url_chars(len(data)) <= limit:
                return PreparedImage(image.source, data, "image/jpeg", *current.size,
                                     original_bytes=image.original_bytes,
                                     original_size=image.original_size, passthrough=False)
        if side <= floor:
            break
        side = max(floor, int(side * _STEP))
    raise ImageError(
        f"{image.source}: too large to send inline to {provider} (at most {limit:,} base64 "
        f"characters): even at {max(current.size)} px and JPEG quality {qualities[-1]} it takes "
        f"{url_chars(len(data)):,}",
        hint="ask another route (e.g. -P cloudflare); for a page of small print, "
             "`ocr --tiles auto` sends it in pieces that each fit")


def _scaled(picture: Picture, side: int) -> Picture:
    from PIL import Image

    width, height = picture.size
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _jpeg(picture: Picture, quality: int) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=quality, optimize=True,
                 subsampling=0 if quality >= 90 else 2)
    return buf.getvalue()
