"""2. Image preparation: llamavis.images.prepare.prepare_image against a naive Pillow pipeline."""

from __future__ import annotations

import io
import time
from pathlib import Path

from common import Figure, median

MAX_SIDE = 1120


def heif_installed() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except Exception:  # ImportError, or a broken native library
        return False
    return True


def naive(data: bytes) -> bytes:
    """What one would write by hand: open, orient, convert, resize to 1120 px, JPEG q90."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    img = img.convert("RGB")
    scale = MAX_SIDE / max(img.size)
    if scale < 1:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def llamavis_prepare(data: bytes, name: str) -> bytes:
    from llamavis.images.prepare import prepare_image

    return prepare_image(data, source=name, purpose="photo").data


def _time(fn, *args: object) -> tuple[float, bytes]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def prepare_figures(images: dict[str, Path], reps: int, heic_note: str) -> list[Figure]:
    """Median ms over ``reps`` interleaved runs of each pipeline, per image kind."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the naive pipeline would warn at 24 Mpx otherwise
    figures: list[Figure] = []
    for label, path in images.items():
        data = path.read_bytes()
        small = _small_like(data)  # warm-up: plugin imports and first-use caches, both paths
        llamavis_prepare(small, "warm-up")
        naive(small)
        ours, theirs = [], []
        for _ in range(reps):
            t, sent = _time(llamavis_prepare, data, path.name)
            ours.append(t)
            t, naive_out = _time(naive, data)
            theirs.append(t)
        size = _size(sent)
        figures.append(Figure(
            "prepare", f"{label}: ms to prepare", median(ours) * 1000, "ms",
            median(theirs) * 1000, "naive Pillow open→exif_transpose→resize→JPEG q90",
            note=f"median of {reps}; llamavis sends {size}",
        ))  # fmt: skip
        figures.append(Figure(
            "prepare", f"{label}: bytes sent", len(sent), "bytes", len(data), "original file",
            note=f"naive pipeline: {len(naive_out):,} bytes; base64 adds a third on the wire",
        ))  # fmt: skip
    if heic_note:
        figures.append(Figure("prepare", "HEIC", None, "", note=heic_note))
    return figures


def _small_like(data: bytes) -> bytes:
    """A 64x48 image in the format of ``data``."""
    from PIL import Image

    fmt = Image.open(io.BytesIO(data)).format or "PNG"
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, format=fmt)
    return buf.getvalue()


def _size(data: bytes) -> str:
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    return f"{img.format} {img.width}x{img.height}"
