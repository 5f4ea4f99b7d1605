"""Result writers: plain text, JSON Lines, one JSON document, TSV lines, sidecar files.

Every writer takes ``Result`` objects (or their ``to_dict()`` form) and a text stream;
none colours or wraps anything. JSON is written with ``ensure_ascii=False`` but every
control character (C0, DEL, C1), U+2028/U+2029 and lone surrogates (undecodable file
names) are ``\\uXXXX``-escaped, so a line of output is always one safe line.
Those text helpers live in cli/output/text.py and SidecarWriter in cli/output/sidecars.py;
both are importable from here too.
"""

from __future__ import annotations

from typing import IO, Any

from llamavis.cli.output.sidecars import SidecarWriter, sidecar_roots
from llamavis.cli.output.text import answer_text, dumps, tsv_escape
from llamavis.types import Result
from llamavis.urls import shown

__all__ = ["JsonArrayWriter", "JsonlWriter", "SidecarWriter", "TsvWriter", "answer_text", "dumps",
           "sidecar_roots", "tsv_escape"]


def _as_dict(result: Result | dict[str, Any]) -> dict[str, Any]:
    return result if isinstance(result, dict) else result.to_dict()


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

