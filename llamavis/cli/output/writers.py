"""Result writers: plain text, JSON Lines, one JSON document, TSV lines, sidecar files.

Every writer takes ``Result`` objects (or their ``to_dict()`` form) and a text stream;
none colours or wraps anything. JSON is written with ``ensure_ascii=False`` but every
control character (C0, DEL, C1), U+2028/U+2029 and lone surrogates (undecodable file
names) are ``\\uXXXX``-escaped, so a line of output is always one safe line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from llamavis.errors import UsageError
from llamavis.tasks import specs as taskspecs
from llamavis.types import Result
from llamavis.urls import shown

_UNSAFE_JSON = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TSV_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNSAFE_TSV = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSAFE_NAME = re.compile(r"[^\w.-]+")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """JSON text with non-ASCII kept and every control character escaped."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _as_dict(result: Result | dict[str, Any]) -> dict[str, Any]:
    return result if isinstance(result, dict) else result.to_dict()


def answer_text(result: Result) -> str:
    """The answer as plain text: lists joined with ", ", objects as compact JSON."""
    output = result.output
    if result.error is not None or output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, (list, tuple)):
        return ", ".join(item if isinstance(item, str) else dumps(item) for item in output)
    return dumps(output)


def tsv_escape(text: str) -> str:
    """Escape text for one TSV field: \\\\, \\n, \\t, \\r; other controls as \\xNN/\\uXXXX."""

    def one(m: re.Match[str]) -> str:
        ch = m.group()
        if ch in _TSV_ESCAPES:
            return _TSV_ESCAPES[ch]
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return _UNSAFE_TSV.sub(one, text)


class JsonlWriter:
    """One JSON object per line, flushed at once (``--jsonl``)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, result: Result | dict[str, Any]) -> None:
        self.stream.write(dumps(_as_dict(result)) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonArrayWriter:
    """One JSON document (``--json``): an array, one object per line, streamed as written.

    With ``single=True`` and exactly one result, the document is that object alone
    (the spec's "an object for one image"); the first result is held back until a
    second one arrives or ``close()`` is called.
    """

    def __init__(self, stream: IO[str], *, single: bool = False) -> None:
        self.stream = stream
        self.single = single
        self._held: dict[str, Any] | None = None
        self._count = 0
        self._closed = False

    def write(self, result: Result | dict[str, Any]) -> None:
        item = _as_dict(result)
        self._count += 1
        if self.single and self._count == 1:
            self._held = item
            return
        if self._held is not None:
            self.stream.write("[\n" + dumps(self._held))
            self._held = None
        self.stream.write(("[\n" if self._count == 1 else ",\n") + dumps(item))

    def close(self) -> None:
        """End the document; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._held is not None:
            self.stream.write(dumps(self._held) + "\n")
        elif self._count == 0:
            self.stream.write("[]\n")
        else:
            self.stream.write("\n]\n")
        self.stream.flush()


class TsvWriter:
    """``PATH<TAB>ANSWER`` lines for several images piped; failures write no line.

    Failed images are left to the CLI's error report on standard error, so standard
    output holds answers only. Both fields are escaped with ``tsv_escape``.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, result: Result) -> bool:
        """Write one line; False (and nothing written) for a failed result."""
        if not result.ok:
            return False
        image = tsv_escape(shown(result.image))  # never a password from an image URL
        self.stream.write(f"{image}\t{tsv_escape(answer_text(result))}\n")
        self.stream.flush()
        return True

    def close(self) -> None:
        self.stream.flush()


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
