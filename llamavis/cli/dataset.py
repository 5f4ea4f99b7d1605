"""The command line's side of dataset captioning and documents: the options of
llamavis.dataset turned into writers, images already captioned left out before any
request, and PDF/TIFF documents opened into their pages (ocr)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from llamavis.cli.invocation import Invocation
from llamavis.cli.output import render
from llamavis.errors import UsageError


def _error(image: str, message: str) -> None:
    render.error_line(image, {"kind": "output", "message": message})


def outputs(opts: Invocation, inner: Any) -> Any:
    """The writers the options ask for behind one face (with ``inner``, the --output-dir
    writer); ``inner`` itself when none is asked for. Raises usage and config errors."""
    from llamavis.dataset.captions import MODES

    if opts.sidecar_mode not in MODES:
        raise UsageError(f"--sidecar-mode takes {', '.join(MODES)}, got {opts.sidecar_mode!r}")
    if opts.sidecar is not None and opts.sidecar != "txt":
        raise UsageError(f"--sidecar takes txt, got {opts.sidecar!r}")
    writers: list[Any] = []
    wrap = {"prefix": opts.prefix, "suffix": opts.suffix}
    if opts.sidecar:
        from llamavis.dataset.captions import CaptionFiles

        writers.append(CaptionFiles(mode=opts.sidecar_mode, on_error=_error, **wrap))
    if opts.manifest is not None:
        from llamavis.dataset.manifest import Manifest

        manifest = Manifest(opts.manifest, **wrap)
        manifest.open(read_only=opts.dry_run)
        writers.append(manifest)
    if opts.write_metadata:
        from llamavis.dataset.metadata import MetadataWriter

        writers.append(MetadataWriter(on_error=_error, **wrap))
    if not writers:
        return inner
    from llamavis.dataset.outputs import DatasetOutputs

    return DatasetOutputs(writers, inner=inner)


def skip_done(sources: Iterator[Any], outs: Any) -> Iterator[Any]:
    """The sources whose caption is not there yet (checked before any request)."""
    skipped = 0
    for src in sources:
        if outs.should_skip(src):
            skipped += 1
            continue
        yield src
    if skipped:
        render.note(f"skipped {skipped} image(s) already captioned "
                    "(--sidecar-mode overwrite|append|prepend to ask again)")


def pages(task: str, opts: Invocation, sources: Iterator[Any]) -> Iterator[Any]:
    """Each PDF as its pages (any task), each multi-page TIFF too for ocr; a PDF named
    while the pdf extra is missing is exit 3 before anything is read."""
    from llamavis.images import pages as docs

    if any(docs.is_pdf(name) for name in opts.images or []):
        docs.load_pdfium()
    return docs.expand(sources, dpi=opts.dpi, tiffs=task == "ocr",
                       on_error=lambda src, msg: render.error_line(src, {"kind": "bad_image",
                                                                        "message": msg}))


class PagesInOrder:
    """``write`` for results, holding a document's pages back until the pages before them
    are written, so a PDF or TIFF reads in page order whichever page finishes first. Other
    results pass at once; ``flush()`` writes what is still held (a run cut short)."""

    def __init__(self, write: Any) -> None:
        self.write = write
        self.pending: dict[str, deque[str]] = {}  # document -> its page names not yet written
        self.held: dict[str, Any] = {}

    def track(self, sources: Iterator[Any]) -> Iterator[Any]:
        """``sources`` as they are, noting each page as it is handed to the batch."""
        for src in sources:
            if getattr(src, "page", None) is not None:
                self.pending.setdefault(str(src.path), deque()).append(str(src))
            yield src

    def __call__(self, result: Any) -> None:
        doc = next((d for d, names in self.pending.items() if result.image in names), None)
        if doc is None:
            self.write(result)
            return
        self.held[result.image] = result
        names = self.pending[doc]
        while names and names[0] in self.held:
            self.write(self.held.pop(names.popleft()))

    def flush(self) -> None:
        for name in list(self.held):
            self.write(self.held.pop(name))
