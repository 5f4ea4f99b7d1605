"""Every dataset output of a run behind one face: which images to leave alone, and
where each finished result goes. Writers report their own failures (one line per image)
and are counted, so the command can exit 1 while the rest of the batch goes on."""

from __future__ import annotations

from typing import Any

from llamavis.types import Result


class DatasetOutputs:
    """Fans each result out to the caption files, the manifest and the image metadata.

    ``inner`` is the ``--output-dir`` SidecarWriter when one is given too.
    An image is skipped (not asked) only when every output that can tell says it is done.
    """

    def __init__(self, writers: list[Any], *, inner: Any = None) -> None:
        self.writers, self.inner = writers, inner
        self.failed = 0

    def should_skip(self, image: Any) -> bool:
        name = str(image)
        telling = [w for w in self.writers if not getattr(w, "always_asks", False)]
        if not telling or not all(w.done(name) for w in telling):
            return False
        return self.inner is None or self.inner.should_skip(name)

    def write(self, result: Result) -> None:
        if self.inner is not None:
            self.inner.write(result)
        ok = [w.write(result) for w in self.writers]
        if not all(ok):
            self.failed += 1

    def close(self) -> None:
        for w in self.writers:
            close = getattr(w, "close", None)
            if close is not None:
                close()
