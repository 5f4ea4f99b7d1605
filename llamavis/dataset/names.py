"""What a result's image name says about the file it came from.

A page of a PDF or multi-page TIFF is named ``doc.pdf#page=3`` (llamavis.images.pages);
its caption file and manifest row belong to that page, not to the whole document.
"""

from __future__ import annotations

from pathlib import Path

PAGE_MARK = "#page="


def split_page(image: str) -> tuple[str, int | None]:
    """(the file's path, the page number or None) of a result's image name."""
    path, sep, page = image.rpartition(PAGE_MARK)
    if sep and page.isdigit():
        return path, int(page)
    return image, None


def is_local(image: str) -> bool:
    """True for a file on disk (not a URL, standard input or an in-memory image)."""
    return not (image == "-" or image.startswith(("http://", "https://", "<")))


def caption_path(image: str) -> Path:
    """``photo.jpg`` -> ``photo.txt`` beside it; page 3 of ``doc.pdf`` -> ``doc.page3.txt``."""
    path, page = split_page(image)
    p = Path(path)
    stem = p.stem if page is None else f"{p.stem}.page{page}"
    return p.with_name(stem + ".txt")
