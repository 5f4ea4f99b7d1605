"""Turn one image's bytes into what is uploaded: decoded, oriented, flattened, shrunk, encoded.

No network here (``llamavis.images.sources`` reads files and URLs). Pillow is imported inside
functions so that ``import llamavis.images.prepare`` stays cheap. Every Pillow failure becomes an
``ImageError`` whose one-line message names the source.
"""

from __future__ import annotations

import functools
import io
import re
from typing import TYPE_CHECKING

from llamavis.errors import ImageError
from llamavis.images.pixels import (
    MAX_PIXELS,
    MIMES,
    check_pixels,
    exif_orientation,
    flatten,
    normalize_mode,
    open_image,
    orient,
    passable,
    sendable_undecoded,
    shrink,
)
from llamavis.types import PreparedImage

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ACCEPTED_EXTENSIONS", "MAX_PIXELS", "MAX_SIDE", "PNG_LIMIT", "PREPARE_VERSION",
           "PURPOSES", "prepare_image", "recipe"]

MAX_SIDE = 1120  # Llama 3.2 Vision sees at most 2x2 tiles of 560 px
PNG_LIMIT = 4 * 2**20  # an OCR image whose PNG is larger than this goes as JPEG q95
PURPOSES = ("photo", "text")
ACCEPTED_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif",
     ".avif"}
)

_SAVE_AS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_PREFERENCE = {
    "photo": ("image/jpeg", "image/webp", "image/png"),
    "text": ("image/png", "image/webp", "image/jpeg"),
}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"heim",
    b"heis",
    b"hevc",
    b"hevx",
    b"hevm",
    b"hevs",
    b"mif1",
    b"msf1",
}
# Bump when prepare_image would turn the same bytes into different ones: the result
# cache keys images by their bytes as read plus ``recipe()``.
PREPARE_VERSION = 1


def recipe(
    purpose: str,
    accepted_mimes: tuple[str, ...],
    max_side: int = MAX_SIDE,
    jpeg_quality: int = 90,
    max_url: int | None = None,
) -> dict[str, object]:
    """Everything besides the bytes read that decides what ``prepare_image`` makes of them."""
    how: dict[str, object] = {"v": PREPARE_VERSION, "purpose": purpose,
                              "mimes": sorted(accepted_mimes), "max_side": max_side,
                              "quality": jpeg_quality}
    if max_url is not None:  # only where a provider has an inline limit: other keys unchanged
        how["max_url"] = max_url
    return how


def prepare_image(
    data: bytes,
    *,
    source: str,
    purpose: str = "photo",
    max_side: int = MAX_SIDE,
    accepted_mimes: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp"),
    jpeg_quality: int = 90,
    max_url: int | None = None,
    provider: str = "the provider",
) -> PreparedImage:
    """Decode ``data`` and return it ready to upload; raise ImageError naming ``source``.

    ``max_url``: the longest data: URL the provider takes inline (images/fit.py)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, not {purpose!r}")
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    _sniff(data, source)
    try:
        image = _prepare(data, source, purpose, max_side, tuple(accepted_mimes), jpeg_quality)
        if max_url is not None:
            from llamavis.images.fit import fit_inline

            image = fit_inline(image, max_url, purpose=purpose, provider=provider)
        image.data_url()  # base64 here, in the worker thread, not on the event loop
        return image
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError(f"{source}: not enough memory to decode this image") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error...
        raise ImageError(_failure_message(source, exc)) from exc


def _sniff(data: bytes, source: str) -> None:
    """Refuse, with a useful hint, what Pillow would only call 'unidentified'."""
    if not data:
        raise ImageError(f"{source}: empty file (0 bytes)")
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and b"<svg" in head:
        raise ImageError(f"{source}: SVG is not supported; convert it to PNG")
    if head.startswith(b"%pdf"):
        raise ImageError(f"{source}: PDF is not supported; export the page as PNG or JPEG")
    if head.startswith((b"<!doctype html", b"<html")):
        raise ImageError(f"{source}: an HTML page, not an image")
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not _heif_available():
        raise ImageError(
            f"{source}: HEIC/HEIF needs the optional extra: pip install 'llamavis[heif]'"
        )
    if data[4:8] == b"ftyp" and data[8:12] in _AVIF_BRANDS and not _avif_available():
        raise ImageError(f"{source}: AVIF needs Pillow 11.3 or later: pip install -U pillow")


@functools.lru_cache(maxsize=1)
def _avif_available() -> bool:
    """Pillow reads AVIF itself from 11.3 on (its wheels carry libavif)."""
    from PIL import features

    return "avif" in features.get_supported_modules()


@functools.lru_cache(maxsize=1)
def _heif_available() -> bool:
    """Register pillow-heif's opener the first time a HEIF file shows up, if installed."""
    try:
        import pillow_heif
    except Exception:  # ImportError, or a broken native library
        return False
    pillow_heif.register_heif_opener()
    return True


def _failure_message(source: str, exc: Exception) -> str:
    from PIL import Image

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):
        found = re.search(r"\((\d+) pixels\)", text)
        size = f" ({int(found.group(1)) / 1e6:.0f} megapixels)" if found else ""
        return f"{source}: too large to decode safely{size}"
    if isinstance(exc, Image.UnidentifiedImageError):
        return f"{source}: not an image (unrecognised file format)"
    if "truncated" in text or isinstance(exc, EOFError):
        return f"{source}: truncated image file"
    return f"{source}: corrupt or unsupported image ({text[:120]})"


def _prepare(
    data: bytes,
    source: str,
    purpose: str,
    max_side: int,
    accepted: tuple[str, ...],
    quality: int,
) -> PreparedImage:
    img = open_image(data)
    original = img.size
    scale = max_side / max(original)
    if scale >= 1 and sendable_undecoded(img, data, accepted):
        mime = MIMES[img.format or ""]
        return PreparedImage(source, data, mime, *original, original_bytes=len(data),
                             original_size=original, passthrough=True)
    if img.format in ("JPEG", "MPO") and scale < 1:
        # DCT-domain downscale (1/2, 1/4, 1/8) while decoding: a fraction of a full decode
        img.draft("RGB", (max(1, int(original[0] * scale)), max(1, int(original[1] * scale))))
    check_pixels(img, source)  # before anything decodes (PNG's getexif loads the image)
    orientation = exif_orientation(img)
    img.load()
    oriented_original = original[::-1] if orientation in (5, 6, 7, 8) else original
    if scale >= 1 and orientation == 1 and passable(img, accepted):
        return PreparedImage(
            source,
            data,
            MIMES[img.format or ""],
            *img.size,
            original_bytes=len(data),
            original_size=original,
            passthrough=True,
        )
    img = orient(flatten(shrink(normalize_mode(img), max_side)), orientation)
    out, mime = _encode(img, purpose, accepted, quality)
    return PreparedImage(
        source,
        out,
        mime,
        *img.size,
        original_bytes=len(data),
        original_size=oriented_original,
        passthrough=False,
    )




def _encode(img: Image, purpose: str, accepted: tuple[str, ...], quality: int) -> tuple[bytes, str]:
    """JPEG for photos; lossless PNG for text unless it would be huge."""
    prefs = _PREFERENCE[purpose]
    mime = next((m for m in prefs if m in accepted), prefs[0])
    if mime == "image/png":
        data = _save(img, "PNG")
        if len(data) <= PNG_LIMIT or "image/jpeg" not in accepted:
            return data, mime
        return _save(img, "JPEG", quality=95, subsampling=0), "image/jpeg"
    return _save(img, _SAVE_AS[mime], quality=quality), mime


def _save(img: Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()
