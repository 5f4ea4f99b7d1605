"""The caption written into the image file itself (``--write-metadata``).

EXIF ``ImageDescription`` and XMP ``dc:description`` (x-default), and IPTC
``Caption-Abstract`` only where the file already has IPTC data. The work is done by
exiv2 (``pyexiv2``, extra ``llamavis[metadata]``), which rewrites the metadata segments
and nothing else: the pixels and every other tag stay as they were. The new file is
written beside the old one and renamed over it, so an interrupt never leaves a broken
image. A format exiv2 cannot write metadata into (GIF, BMP) is an error for that image.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llamavis.dataset.captions import OnError, caption_lines
from llamavis.dataset.names import is_local, split_page
from llamavis.errors import ConfigError
from llamavis.types import Result

EXTRA_HINT = "--write-metadata needs pyexiv2: pip install 'llamavis[metadata]'"


def load_exiv2() -> Any:
    """The pyexiv2 module, quiet; ConfigError (exit 3) naming the extra when it is missing."""
    try:
        import pyexiv2
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None
    pyexiv2.set_log_level(4)  # its warnings would go to stderr past our one-line errors
    return pyexiv2


def write_description(path: Path, text: str) -> None:
    """Put ``text`` in the file's EXIF, XMP (and existing IPTC) description, atomically.

    Raises ValueError for a format exiv2 cannot write, OSError for the file system."""
    exiv2 = load_exiv2()
    data = path.read_bytes()
    try:
        with exiv2.ImageData(data) as img:
            has_iptc = bool(img.read_iptc())
            img.modify_exif({"Exif.Image.ImageDescription": text})
            img.modify_xmp({"Xmp.dc.description": {'lang="x-default"': text}})
            if has_iptc:
                img.modify_iptc({"Iptc.Application2.Caption": text})
            new = img.get_bytes()
    except RuntimeError as exc:  # exiv2's own words: "Setting Exif metadata in GIF images is not supported"
        raise ValueError(str(exc).strip() or "exiv2 cannot write this file") from None
    _replace(path, new)


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        shutil.copymode(path, tmp)  # the image keeps its permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MetadataWriter:
    """``--write-metadata``: each successful caption into its own image file."""

    def __init__(self, *, prefix: str = "", suffix: str = "", on_error: OnError) -> None:
        load_exiv2()  # a missing extra is said once, before any request
        self.prefix, self.suffix, self.on_error = prefix, suffix, on_error

    always_asks = True  # the cache makes asking again free; reading every file's XMP is not

    def done(self, image: str) -> bool:
        return False

    def write(self, result: Result) -> bool:
        if not result.ok:
            return True
        path, page = split_page(result.image)
        if not is_local(path) or page is not None:
            self.on_error(result.image, "--write-metadata writes into single image files only")
            return False
        text = "\n".join(caption_lines(result, self.prefix, self.suffix))
        try:
            write_description(Path(path), text)
        except ValueError as exc:
            self.on_error(result.image, f"cannot write metadata: {exc}")
            return False
        except OSError as exc:
            self.on_error(result.image, f"cannot write metadata ({exc.strerror or exc}); the "
                          "answer is kept in the cache: run again once it is writable")
            return False
        return True
