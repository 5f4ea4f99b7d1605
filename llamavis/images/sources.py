"""Where images come from: reading one source's bytes, and iterating the sources a user named.

A source is a string: a file path, ``-`` (the image's bytes on standard input) or an
``http(s)://`` URL. Failures to read one become an ``ImageError`` naming it; only a broken
``--files-from`` list (or a clash over standard input) is a ``UsageError``.
"""

from __future__ import annotations

import heapq
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TextIO

from llamavis.__about__ import __version__
from llamavis.errors import ImageError, UsageError
from llamavis.images.prepare import ACCEPTED_EXTENSIONS
from llamavis.urls import is_url, shown

if TYPE_CHECKING:
    import httpx

MAX_BYTES = 50 * 2**20
_CHUNK = 64 * 1024
SkipCallback = Callable[[str, str], None]



def read_source(
    source: str,
    *,
    stdin: BinaryIO | None = None,
    max_bytes: int = MAX_BYTES,
    client: httpx.Client | None = None,
    timeout: float = 30,
) -> bytes:
    """Return the bytes of a path, of standard input (``-``) or of a downloaded URL."""
    if is_url(source):
        return _download(source, client, timeout, max_bytes)
    if source == "-":
        stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
        if stream is None:
            raise ImageError("-: there is no standard input to read the image from")
        return _read_capped(getattr(stream, "buffer", stream), max_bytes, "-")
    return _read_file(source, max_bytes)


def _size(n: int) -> str:
    if n < 2**20:
        return f"{n} bytes"
    return f"{n / 2**20:.1f}".rstrip("0").rstrip(".") + " MB"


def _cap(max_bytes: int) -> str:
    return f"{_size(max_bytes)} cap"


def _read_file(path: str, max_bytes: int) -> bytes:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{path}: is a directory, not an image file")
    if info.st_size > max_bytes:
        raise ImageError(f"{path}: {_size(info.st_size)}, larger than the {_cap(max_bytes)}")
    try:
        with open(path, "rb") as handle:
            return _read_capped(handle, max_bytes, path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_capped(stream: IO[bytes], max_bytes: int, name: str) -> bytes:
    """Read at most max_bytes; a stream that keeps going is refused, not truncated."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageError(f"{name}: larger than the {_cap(max_bytes)}")
    return data


def _download(url: str, client: httpx.Client | None, timeout: float, max_bytes: int) -> bytes:
    import httpx

    name = shown(url)
    own = client is None
    http = client or httpx.Client(headers={"User-Agent": f"llamavis/{__version__}"})
    try:
        with http.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if not response.is_success:
                reason = f" {response.reason_phrase}" if response.reason_phrase else ""
                raise ImageError(f"{name}: download failed: HTTP {response.status_code}{reason}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ImageError(f"{name}: larger than the {_cap(max_bytes)}")
            body = bytearray()
            for chunk in response.iter_bytes():  # decoded: a gzip bomb meets the cap too
                body += chunk
                if len(body) > max_bytes:
                    raise ImageError(f"{name}: larger than the {_cap(max_bytes)}")
            return bytes(body)
    except httpx.TimeoutException:
        raise ImageError(f"{name}: download timed out after {timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"{name}: download failed: {text}") from None
    finally:
        if own:
            http.close()


def iter_sources(
    args: Sequence[str],
    *,
    recursive: bool = False,
    files_from: str | None = None,
    null_separated: bool = False,
    stdin: TextIO | BinaryIO | None = None,
    read_stdin_list: bool = False,
    on_skip: SkipCallback | None = None,
) -> Iterator[str]:
    """Lazily yield the sources in args, then a --files-from list, expanding directories.

    ``read_stdin_list`` (set it when no IMAGE was given and standard input is a pipe)
    reads standard input as a path list when ``args`` is empty and no ``files_from`` is given.
    """
    if list(args).count("-") > 1:
        raise UsageError("standard input ('-') can carry one image only; give '-' once")
    list_on_stdin = files_from == "-" or (read_stdin_list and not args and files_from is None)
    if list_on_stdin and "-" in args:
        raise UsageError("standard input cannot carry both the list of paths and an image ('-')")
    if files_from not in (None, "-") and not os.path.isfile(files_from):
        what = "is a directory" if os.path.isdir(files_from) else "no such file"
        raise UsageError(f"cannot read the list of paths {files_from}: {what}")
    list_path = "-" if list_on_stdin else files_from
    skip = on_skip or _ignore
    return _iter(args, list_path, recursive, null_separated, stdin, skip)


def _ignore(path: str, reason: str) -> None:
    return None


def _iter(
    args: Sequence[str],
    list_path: str | None,
    recursive: bool,
    null_separated: bool,
    stdin: Any,
    skip: SkipCallback,
) -> Iterator[str]:
    for arg in args:
        yield from _expand(arg, recursive, skip)
    if list_path is None:
        return
    for entry in _list_entries(list_path, null_separated, stdin):
        yield from _expand(entry, recursive, skip)


def _expand(source: str, recursive: bool, skip: SkipCallback) -> Iterator[str]:
    """A directory's images; anything else (URL, '-', file, missing path) as it is."""
    if source != "-" and not is_url(source) and os.path.isdir(source):
        yield from _walk(source, recursive, skip, set())
    else:
        yield source


def _walk(
    directory: str, recursive: bool, skip: SkipCallback, seen: set[tuple[int, int]]
) -> Iterator[str]:
    """Image files of one directory in name order; subdirectories only when recursive."""
    try:
        info = os.stat(directory)
        if (info.st_dev, info.st_ino) in seen:
            skip(directory, "already visited (through a symbolic link)")
            return
        seen.add((info.st_dev, info.st_ino))
        files, subdirs = _scan(directory, recursive, skip)
    except OSError as exc:
        skip(directory, f"cannot list directory ({exc.strerror or exc})")
        return
    # names only, sorted per directory: memory follows the largest directory, not the tree
    for name, is_dir in heapq.merge(((n, False) for n in files), ((n, True) for n in subdirs)):
        path = os.path.join(directory, name)
        if is_dir:
            yield from _walk(path, recursive, skip, seen)
        else:
            yield path


def _scan(directory: str, recursive: bool, skip: SkipCallback) -> tuple[list[str], list[str]]:
    files: list[str] = []
    subdirs: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                skip(entry.path, "hidden")
            elif _is_dir(entry):
                if recursive:
                    subdirs.append(entry.name)
                else:
                    skip(entry.path, "a directory (use -r/--recursive to include it)")
            elif os.path.splitext(entry.name)[1].lower() in ACCEPTED_EXTENSIONS:
                files.append(entry.name)
            else:
                skip(entry.path, "not an image extension")
    files.sort()
    subdirs.sort()
    return files, subdirs


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _list_entries(list_path: str, null_separated: bool, stdin: Any) -> Iterator[str]:
    """Stream the paths of a list file or of standard input, skipping blank entries."""
    if list_path == "-":
        stream = stdin if stdin is not None else sys.stdin
        yield from _split(getattr(stream, "buffer", stream), null_separated, "on standard input")
        return
    try:
        handle = open(list_path, "rb")  # noqa: SIM115 - an open failure is a UsageError
    except OSError as exc:
        raise UsageError(f"cannot read the list of paths {list_path}: {exc.strerror}") from None
    with handle:
        yield from _split(handle, null_separated, list_path)


def _split(stream: IO[Any], null_separated: bool, name: str) -> Iterator[str]:
    sep = b"\0" if null_separated else b"\n"
    pending = b""
    # read1: whatever has arrived; a buffered read(n) would wait for n bytes, so a list
    # piped in slowly (find over a big tree) would start nothing until 64 KiB had come
    read = getattr(stream, "read1", stream.read)
    while chunk := read(_CHUNK):
        pending += os.fsencode(chunk) if isinstance(chunk, str) else chunk
        if not null_separated and b"\0" in pending:  # no path holds a NUL byte
            raise UsageError(f"the list of paths {name} holds NUL bytes: give -0 for a "
                             "NUL-separated list (find -print0), or name a text file with -T")
        *complete, pending = pending.split(sep)
        yield from _clean(complete, null_separated)
    yield from _clean([pending], null_separated)


def _clean(raw: list[bytes], null_separated: bool) -> Iterator[str]:
    for item in raw:
        # fsdecode keeps undecodable bytes (surrogateescape) so such names still open
        name = os.fsdecode(item if null_separated else item.removesuffix(b"\r"))
        if name.strip():
            yield name
