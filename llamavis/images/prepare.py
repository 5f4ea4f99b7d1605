"""Turn one image's bytes into what is uploaded: decoded, oriented, flattened, shrunk, encoded.

No network here (``llamavis.images.sources`` reads files and URLs). Pillow is imported inside
functions so that ``import llamavis.images.prepare`` stays cheap. Every Pillow failure becomes an
``ImageError`` whose one-line message names the source.
"""

from __future__ import annotations

import functools
import io
import re
import threading
import warnings
from typing import TYPE_CHECKING, Any

from llamavis.errors import ImageError
from llamavis.types import PreparedImage

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_SIDE = 1120  # Llama 3.2 Vision sees at most 2x2 tiles of 560 px
MAX_PIXELS = 100_000_000  # decoded pixels above which an image may be a decompression bomb
PNG_LIMIT = 4 * 2**20  # an OCR image whose PNG is larger than this goes as JPEG q95
PURPOSES = ("photo", "text")
ACCEPTED_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif",
     ".avif"}
)

_MIMES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}
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
# EXIF orientation -> Image.Transpose member, as ImageOps.exif_transpose maps them
_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
_open_lock = threading.Lock()  # warnings.catch_warnings() is not thread-safe
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
    img = _open(data)
    original = img.size
    scale = max_side / max(original)
    if scale >= 1 and _sendable_undecoded(img, data, accepted):
        mime = _MIMES[img.format or ""]
        return PreparedImage(source, data, mime, *original, original_bytes=len(data),
                             original_size=original, passthrough=True)
    if img.format in ("JPEG", "MPO") and scale < 1:
        # DCT-domain downscale (1/2, 1/4, 1/8) while decoding: a fraction of a full decode
        img.draft("RGB", (max(1, int(original[0] * scale)), max(1, int(original[1] * scale))))
    _check_pixels(img, source)  # before anything decodes (PNG's getexif loads the image)
    orientation = _orientation(img)
    img.load()
    oriented_original = original[::-1] if orientation in (5, 6, 7, 8) else original
    if scale >= 1 and orientation == 1 and _passable(img, accepted):
        return PreparedImage(
            source,
            data,
            _MIMES[img.format or ""],
            *img.size,
            original_bytes=len(data),
            original_size=original,
            passthrough=True,
        )
    img = _orient(_flatten(_shrink(_normalize_mode(img), max_side)), orientation)
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


def _open(data: bytes) -> Image:
    """Read the header only; Pillow's own bomb warning is replaced by our explicit limit."""
    from PIL import Image

    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def _sendable_undecoded(img: Image, data: bytes, accepted: tuple[str, ...]) -> bool:
    """A JPEG or PNG that needs no change goes as it is, checked without decoding it.

    Decoding a 640x480 JPEG costs milliseconds, far more than sending it; instead the file
    must be whole (a JPEG's end marker after its last scan; a PNG's IEND, every chunk's
    CRC checked), upright without its EXIF tag, and opaque. Anything else, or in doubt,
    takes the decoding path, which also reports a damaged file.
    """
    if img.mode not in ("1", "L", "P", "RGB"):
        return False  # alpha (maybe opaque), CMYK, 16-bit...: decided after decoding
    if img.format in ("JPEG", "MPO"):
        # Pillow read the header up to the first scan, so a file ending in the end marker is
        # whole (0xFFD9 never occurs inside entropy-coded data); with bytes after it, the
        # last end marker must follow the last scan, even behind a complete EXIF thumbnail.
        ends = data.endswith(b"\xff\xd9") or data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda")
        whole = ends and _orientation(img) == 1
    elif img.format == "PNG":
        # PNG's getexif decodes the whole image to look for a late eXIf chunk: no EXIF at all
        # (neither chunk nor raw-profile text) means upright.
        whole = b"eXIf" not in data and b"Raw profile type exif" not in data and _png_intact(data)
    else:
        return False
    return whole and _passable(img, accepted)


def _png_intact(data: bytes) -> bool:
    """Every chunk present with a matching CRC, up to IEND (Pillow's verify, no inflating)."""
    try:
        _open(data).verify()
    except Exception:  # a damaged file: the decoding path says what is wrong with it
        return False
    return True


def _check_pixels(img: Image, source: str) -> None:
    """Refuse images whose decoded size (after any JPEG draft) exceeds MAX_PIXELS."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{source}: too large to decode safely ({width * height / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f})"
        )


def _orientation(img: Image) -> int:
    """The EXIF orientation (1-8); broken metadata never fails an image."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if value in _TRANSPOSE else 1


def _passable(img: Image, accepted: tuple[str, ...]) -> bool:
    """True when the original bytes can be sent as they are (size and orientation checked)."""
    if _MIMES.get(img.format or "") not in accepted or "transparency" in img.info:
        return False
    if img.format != "MPO" and getattr(img, "is_animated", False):
        return False  # MPO's second frame is a depth map or preview; decoders show the first
    if img.mode in ("1", "L", "P", "RGB"):
        return True
    return img.mode in ("LA", "RGBA") and img.getchannel("A").getextrema()[0] == 255


def _normalize_mode(img: Image) -> Image:
    """Bring any mode to L, LA, RGB or RGBA, scaling 16/32-bit and float data to 8 bits."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img.convert(mode + "A") if "transparency" in img.info else img
    if mode in ("LA", "RGBA"):
        return img
    if mode.startswith("I;16"):
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("I", "F"):
        high = float(img.getextrema()[1])  # type: ignore[arg-type]
        factor = 255 / high if high > 255 else (255.0 if mode == "F" and high <= 1 else 1.0)
        return img.point(lambda v: v * factor).convert("L")
    if mode == "1":
        return img.convert("L")
    if mode in ("P", "PA"):
        return img.convert("RGBA" if img.has_transparency_data else "RGB")
    if mode == "CMYK" and img.info.get("icc_profile"):
        return _through_profile(img)
    has_alpha = any(band in ("A", "a") for band in img.getbands())
    return img.convert("RGBA" if has_alpha else "RGB")  # CMYK, YCbCr, LAB, HSV, RGBa...


def _through_profile(img: Image) -> Image:
    """RGB through the image's own ICC profile: the same CMYK numbers print as quite
    different colours on different presses, and the profile says which. A profile that
    cannot be read leaves the plain formula."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
        converted = ImageCms.profileToProfile(img, profile, _srgb(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        converted = None
    return converted if converted is not None else img.convert("RGB")


@functools.lru_cache(maxsize=1)
def _srgb() -> Any:
    from PIL import ImageCms

    return ImageCms.createProfile("sRGB")


def _shrink(img: Image, max_side: int) -> Image:
    """Scale so the long side is at most max_side; never enlarge."""
    from PIL import Image

    width, height = img.size
    if max(width, height) <= max_side:
        return img
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: an integer-factor box reduce first, then LANCZOS over the last step
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _flatten(img: Image) -> Image:
    """RGB out: alpha composited over white, greyscale expanded."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode == "L":
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=rgba.getchannel("A"))
    return white


def _orient(img: Image, orientation: int) -> Image:
    """Apply the EXIF orientation; done after shrinking, when it is cheap."""
    from PIL import Image

    if orientation == 1:
        return img
    return img.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation]))


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
