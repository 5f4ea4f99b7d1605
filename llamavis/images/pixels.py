"""The pixel steps of preparing an image (images/prepare.py runs them): opening the header,
the checks that let a file go as it is, mode normalising, shrinking, flattening, orienting.

Pillow is imported inside functions, as in prepare.py, so importing this stays cheap.
"""

from __future__ import annotations

import functools
import io
import threading
import warnings
from typing import TYPE_CHECKING, Any

from llamavis.errors import ImageError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MAX_PIXELS", "MIMES", "check_pixels", "exif_orientation", "flatten", "normalize_mode",
           "open_image", "orient", "passable", "sendable_undecoded", "shrink"]

MAX_PIXELS = 100_000_000  # decoded pixels above which an image may be a decompression bomb

MIMES = {
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


def open_image(data: bytes) -> Image:
    """Read the header only; Pillow's own bomb warning is replaced by our explicit limit."""
    from PIL import Image

    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def sendable_undecoded(img: Image, data: bytes, accepted: tuple[str, ...]) -> bool:
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
        whole = ends and exif_orientation(img) == 1
    elif img.format == "PNG":
        # PNG's getexif decodes the whole image to look for a late eXIf chunk: no EXIF at all
        # (neither chunk nor raw-profile text) means upright.
        whole = b"eXIf" not in data and b"Raw profile type exif" not in data and _png_intact(data)
    else:
        return False
    return whole and passable(img, accepted)


def _png_intact(data: bytes) -> bool:
    """Every chunk present with a matching CRC, up to IEND (Pillow's verify, no inflating)."""
    try:
        open_image(data).verify()
    except Exception:  # a damaged file: the decoding path says what is wrong with it
        return False
    return True


def check_pixels(img: Image, source: str) -> None:
    """Refuse images whose decoded size (after any JPEG draft) exceeds MAX_PIXELS."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{source}: too large to decode safely ({width * height / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f})"
        )


def exif_orientation(img: Image) -> int:
    """The EXIF orientation (1-8); broken metadata never fails an image."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if value in _TRANSPOSE else 1


def passable(img: Image, accepted: tuple[str, ...]) -> bool:
    """True when the original bytes can be sent as they are (size and orientation checked)."""
    if MIMES.get(img.format or "") not in accepted or "transparency" in img.info:
        return False
    if img.format != "MPO" and getattr(img, "is_animated", False):
        return False  # MPO's second frame is a depth map or preview; decoders show the first
    if img.mode in ("1", "L", "P", "RGB"):
        return True
    return img.mode in ("LA", "RGBA") and img.getchannel("A").getextrema()[0] == 255


def normalize_mode(img: Image) -> Image:
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


def shrink(img: Image, max_side: int) -> Image:
    """Scale so the long side is at most max_side; never enlarge."""
    from PIL import Image

    width, height = img.size
    if max(width, height) <= max_side:
        return img
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: an integer-factor box reduce first, then LANCZOS over the last step
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def flatten(img: Image) -> Image:
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


def orient(img: Image, orientation: int) -> Image:
    """Apply the EXIF orientation; done after shrinking, when it is cheap."""
    from PIL import Image

    if orientation == 1:
        return img
    return img.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation]))

