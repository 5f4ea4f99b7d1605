"""Images as the Python API takes them: a path, a URL, ``bytes`` or a ``PIL.Image.Image``.

The command line names every image by a string (a path, a URL or ``-``), and a Runner
reads it with ``llamavis.images.sources``. An image handed over in memory becomes an
``ImageInput`` instead: its bytes (a PIL image's own pixels, encoded losslessly, never
the file it was opened from) and the name its ``Result.image`` carries: the caller's
``id``, else ``"<bytes>"`` or ``"<image>"``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

BYTES_NAME = "<bytes>"
IMAGE_NAME = "<image>"
# Modes PNG stores as they are; any other (CMYK, YCbCr, LAB, HSV, I;16, F) goes as RGB.
_PNG_MODES = frozenset({"1", "L", "LA", "I", "P", "RGB", "RGBA"})


@dataclass(frozen=True)
class ImageInput:
    """One image with the name its Result carries; ``str()`` of it is that name."""

    name: str
    path: str | None = None  # a path, URL or "-", read as the command line reads it
    data: bytes | None = field(default=None, repr=False)
    pil: Any = field(default=None, repr=False)  # a PIL.Image.Image, encoded on read

    def __str__(self) -> str:
        return self.name

    def read(self, stdin: BinaryIO | None = None) -> bytes:
        """The image's bytes (off the event loop: encoding a PIL image takes a while)."""
        if self.data is not None:
            return self.data
        if self.pil is not None:
            return encode_pil(self.pil)
        from llamavis.images.sources import read_source

        return read_source(self.path or self.name, stdin=stdin)


def encode_pil(image: Any) -> bytes:
    """A PIL image's pixels as PNG bytes (lossless; no EXIF, so nothing re-rotates them)."""
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _is_pil(image: Any) -> bool:
    # Checked by name: importing Pillow only to test a str or bytes would slow every call.
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image"
               for c in type(image).__mro__)


def as_source(image: Any, id: str | None = None) -> str | ImageInput:
    """What a Runner reads for one API image: a path or URL as is, else an ImageInput.

    Raises TypeError for anything that is not a path, URL, bytes or PIL image.
    """
    if isinstance(image, os.PathLike):
        image = os.fspath(image)
    if isinstance(image, str):
        return image if id is None else ImageInput(str(id), path=image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return ImageInput(BYTES_NAME if id is None else str(id), data=bytes(image))
    if _is_pil(image):
        return ImageInput(IMAGE_NAME if id is None else str(id), pil=image)
    raise TypeError(
        f"an image is a path, a URL, bytes or a PIL.Image.Image, not {type(image).__name__}")


def as_sources(images: Any) -> Any:
    """``analyze_many``'s images, lazily: each an image or an ``(id, image)`` pair."""
    for item in images:
        if isinstance(item, tuple) and len(item) == 2:
            yield as_source(item[1], id=item[0])
        else:
            yield as_source(item)
