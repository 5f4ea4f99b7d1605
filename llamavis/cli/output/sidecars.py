"""Sidecar files (``--output-dir``): one file per image, named from the image's own path,
written atomically, recorded with the request each answers."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from llamavis.cli.output.text import answer_text, dumps
from llamavis.errors import UsageError
from llamavis.tasks import specs as taskspecs
from llamavis.types import Result

__all__ = ["SidecarWriter", "sidecar_roots"]

_UNSAFE_NAME = re.compile(r"[^\w.-]+")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it


class SidecarWriter:
    """One file per image in ``out_dir`` (``--output-dir``), written atomically.

    Naming: ``<name>.txt`` (``.json`` for the tasks whose TaskSpec says ``json_sidecar``:
    structured, classify, multi-classify), where the
    name comes from the image's own path alone, never from the order images arrive in, so
    every run gives an image the same sidecar and finds it again. A local image keeps its
    path (without extension) relative to the first of these that holds it: one of ``roots``
    (see ``sidecar_roots``: the directories the user named, and the folder the named files
    share, so ``a/x.jpg b/x.jpg`` become ``a/x.txt`` and ``b/x.txt`` in either order),
    ``out_dir`` itself (a caption beside its image), the current directory (for a piped
    list). An image outside all of them becomes ``<stem>-<hash8>`` (sha256 of its absolute
    path), a URL the same with the URL's hash, standard input ``stdin-<sha12>`` (its bytes' hash). Should two images of one run still meet on
    one name (``x.jpg`` and ``x.png`` side by side), the later gets ``<name>-<hash8>``: a run
    never overwrites its own sidecars.
    A ``.txt`` sidecar holds ``answer_text``; a ``.json`` one holds ``output`` as JSON.
    Which request each sidecar answers is recorded beside it (``sidecar_record``), so a
    sidecar is "done" only for that request (``verdict``).
    """

    def __init__(
        self, out_dir: Path, *, task: str, overwrite: bool = False, roots: Iterable[Path] = (),
        on_problem: Callable[[str, str], None] | None = None,
    ) -> None:
        from llamavis.cli.output.sidecar_record import SidecarRecord

        self.out_dir = Path(out_dir)
        self.task = task
        self.overwrite = overwrite
        spec = taskspecs.find(task)
        self.suffix = ".json" if spec is not None and spec.json_sidecar else ".txt"
        self.roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
        self._claimed: dict[Path, str] = {}  # sidecar -> image that owns it in this run
        self.record = SidecarRecord(self.out_dir)
        self.on_problem = on_problem  # (image, message): a sidecar not written, and why
        self.problems = 0  # images whose answer is not on disk because of what is there
        self._kept: set[Path] = set()  # sidecars holding another answer, kept (no --overwrite)
        self._stdin_hash: str | None = None  # sha256 of the image read from standard input

    def check_writable(self) -> None:
        """Create the directory and prove a file can be written in it; UsageError if not.

        Called before any request: an answer that cannot be kept must not be paid for.
        """
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.out_dir, prefix=".llamavis-", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f"--output-dir {self.out_dir}: cannot write sidecars there ({reason})") from None

    def path_for(self, image: str) -> Path:
        """The sidecar path of ``image``; stable for the rest of this run."""
        rel, ident = self._base(image)
        path = self.out_dir / (rel + self.suffix)
        owner = self._claimed.setdefault(path, ident)
        if owner != ident:
            path = self.out_dir / f"{rel}-{_short_hash(ident)}{self.suffix}"
            self._claimed.setdefault(path, ident)
        return path

    def exists(self, image: str) -> bool:
        """True when the image's sidecar is already on disk."""
        return os.path.lexists(self.path_for(image))

    def verdict(self, image: str, identify: Callable[[str], tuple[str, str]] | None = None,
                *, ask_anyway: bool = False) -> str:
        """"ask", "done" (its sidecar holds this very request's answer) or "refused" (another
        answer is there, or the path leaves the folder; said per image, counted in problems).

        ``identify(image)`` is (sha256 of its bytes, the request's fingerprint); it is called
        only for standard input (named by content) and for images with a sidecar on disk.
        ``ask_anyway``: a refused image is still asked (its answer goes to --json/--jsonl),
        and its sidecar is left as it is.
        """
        ids = self._identify(image, identify) if image == "-" else None
        if image == "-" and ids is not None:
            self._stdin_hash = ids[0]
        path = self.path_for(image)
        from llamavis.cli.output.sidecar_record import outside_reason

        why = outside_reason(self.out_dir, path)
        if why is None and os.path.lexists(path) and not self.overwrite:
            ids = ids or self._identify(image, identify)
            if ids is not None and self.record.get(path) == ids[1]:
                return "done"
            why = (f"{path} already holds a different answer (another image, task or settings);"
                   " kept it (--overwrite to replace it)")
        if why is None:
            return "ask"
        self._refuse(image, path, why)
        return "ask" if ask_anyway else "refused"

    def _identify(self, image: str, identify: Callable[[str], tuple[str, str]] | None,
                  ) -> tuple[str, str] | None:
        if identify is None:
            return None
        from llamavis.errors import LlamavisError

        try:
            return identify(image)
        except LlamavisError:  # unreadable: the run reports it for this image
            return None

    def _refuse(self, image: str, path: Path, why: str) -> None:
        self._kept.add(path)
        self.problems += 1
        if self.on_problem is not None:
            self.on_problem(image, why)

    def should_skip(self, image: str) -> bool:
        """True when the CLI should not ask about this image (sidecar there, no overwrite)."""
        return not self.overwrite and self.exists(image)

    def write(self, result: Result) -> Path | None:
        """Write the sidecar of a successful result atomically, and record which request it
        answers; None for a failed one, or one whose sidecar is kept or would leave the folder."""
        if not result.ok:
            return None
        path = self.path_for(result.image)
        if path in self._kept:
            return None
        from llamavis.cli.output.sidecar_record import outside_reason

        why = outside_reason(self.out_dir, path)
        if why is not None:
            self._refuse(result.image, path, why)
            return None
        if self.suffix == ".json":
            text = dumps(result.output, indent=2) + "\n"
        else:
            text = answer_text(result) + "\n"
        _atomic_write(path, text)
        if result.fingerprint is not None:
            self.record.put(path, result.fingerprint)
        return path

    def _base(self, image: str) -> tuple[str, str]:
        """(name without suffix, relative to out_dir; identity of the image)."""
        if image == "-":  # named by its content: two piped images are two sidecars
            return ("stdin" if self._stdin_hash is None else f"stdin-{self._stdin_hash[:12]}"), image
        if image.startswith(("http://", "https://")):
            stem = Path(unquote(urlsplit(image).path)).stem
            return f"{_safe_name(stem) or 'image'}-{_short_hash(image)}", image
        ident = os.path.abspath(image)
        for root in (*self.roots, os.path.abspath(self.out_dir), os.getcwd()):
            if ident.startswith(root.rstrip(os.sep) + os.sep):
                rel = Path(os.path.relpath(ident, root))
                return str(rel.with_name(rel.stem)), ident
        return f"{_safe_name(Path(image).stem) or 'image'}-{_short_hash(ident)}", ident


def sidecar_roots(named: Iterable[str]) -> list[Path]:
    """The roots sidecar names are taken relative to: each directory named, and the
    deepest folder holding every file named (order-free, so names are too)."""
    dirs: list[str] = []
    files: list[str] = []
    for arg in named:
        if arg == "-" or arg[:8].lower().startswith(("http://", "https://")):
            continue
        (dirs if os.path.isdir(arg) else files).append(os.path.abspath(arg))
    if files:
        dirs.append(os.path.commonpath([os.path.dirname(f) for f in files]))
    return [Path(d) for d in dirs]


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _safe_name(stem: str) -> str:
    return _UNSAFE_NAME.sub("_", stem).strip("._")[:100]


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and os.replace: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; sidecars are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
