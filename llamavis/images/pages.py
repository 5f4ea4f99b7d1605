"""Documents of several pages: a PDF (rendered by pdfium, extra ``llamavis[pdf]``) and a
multi-page TIFF are their pages, in order, each an image of its own named
``doc.pdf#page=N``. A page is rendered or decoded only when it is read, so a long
document never sits in memory whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from llamavis.errors import ConfigError, ImageError
from llamavis.images.inputs import ImageInput, encode_pil

PDF_HINT = "reading a PDF needs the pdf extra: pip install 'llamavis[pdf]' (pypdfium2)"
DEFAULT_DPI = 300
_PDFIUM = threading.Lock()  # pdfium is not thread-safe; pages are read on worker threads


def is_pdf(source: str) -> bool:
    return isinstance(source, str) and source.lower().endswith(".pdf")


def is_tiff(source: str) -> bool:
    return isinstance(source, str) and source.lower().endswith((".tif", ".tiff"))


def load_pdfium() -> Any:
    """The pypdfium2 module; ConfigError (exit 3) naming the extra when it is missing."""
    try:
        import pypdfium2
    except ImportError:
        raise ConfigError(PDF_HINT) from None
    return pypdfium2


@dataclass(frozen=True)
class PageInput(ImageInput):
    """Page ``page`` (from 1) of a PDF or TIFF; read() gives it as PNG bytes."""

    page: int = 1
    dpi: int = DEFAULT_DPI

    def read(self, stdin: BinaryIO | None = None) -> bytes:
        path = self.path or ""
        try:
            return _pdf_page(path, self.page, self.dpi) if is_pdf(path) else _tiff_page(path, self.page)
        except (ConfigError, ImageError):
            raise
        except Exception as exc:  # pdfium's and Pillow's own errors: this page alone fails
            raise ImageError(f"{self.name}: cannot read this page ({exc})") from None


def _pdf_page(path: str, page: int, dpi: int) -> bytes:
    pdfium = load_pdfium()
    with _PDFIUM:
        doc = pdfium.PdfDocument(path)
        try:
            image = doc[page - 1].render(scale=dpi / 72).to_pil()
        finally:
            doc.close()
    return encode_pil(image)


def _tiff_page(path: str, page: int) -> bytes:
    from PIL import Image

    with Image.open(path) as img:
        img.seek(page - 1)
        return encode_pil(img.copy())


def page_count(path: str) -> int:
    """The pages of a PDF or TIFF; 1 for anything else (or a TIFF Pillow cannot open)."""
    if is_pdf(path):
        pdfium = load_pdfium()
        with _PDFIUM:
            try:
                doc = pdfium.PdfDocument(path)
            except Exception as exc:
                raise ImageError(f"{path}: not a readable PDF ({exc})") from None
            try:
                return len(doc)
            finally:
                doc.close()
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception:
        return 1  # left to the image reader to report


def expand(sources: Iterable[Any], *, dpi: int = DEFAULT_DPI, tiffs: bool = True,
           on_error: Any = None) -> Iterator[Any]:
    """Each PDF (and, with ``tiffs``, each multi-page TIFF) as its pages; the rest as they are.

    A PDF that cannot be opened is reported through ``on_error(source, message)``."""
    for source in sources:
        if not (is_pdf(source) or (tiffs and is_tiff(source))) or not Path(source).is_file():
            yield source
            continue
        try:
            n = page_count(source)
        except ImageError as exc:
            if on_error is None:
                raise
            on_error(source, str(exc))
            continue
        if n == 1 and not is_pdf(source):
            yield source
            continue
        for page in range(1, n + 1):
            yield PageInput(f"{source}#page={page}", path=source, page=page, dpi=dpi)
