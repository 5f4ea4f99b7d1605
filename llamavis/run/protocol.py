"""The seam between a session and what runs one image: ``TaskRunner``, by type.

``run.runner.Runner`` (one route) and ``run.fallback.FallbackRunner`` (several, in order)
both satisfy it; so does a Roboflow step's runner. The session holds one through this type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, Union

from llamavis.types import Result

if TYPE_CHECKING:
    from llamavis.images.inputs import ImageInput
    from llamavis.run.config import TaskConfig

# An image as a run names it: a path, a URL or "-", or an image handed over in memory.
Source = Union[str, "ImageInput"]
DeltaHook = Callable[[str], None]
ResetHook = Callable[[], None]


class TaskRunner(Protocol):
    """One task over images, one image at a time (many concurrently)."""

    cfg: TaskConfig  # the first route's config: the task, and whom a result names

    async def run(self, source: Source, *, on_delta: DeltaHook | None = None,
                  on_reset: ResetHook | None = None) -> Result:
        """One image through the task; its own failures end up in ``Result.error``."""
        ...

    async def cached(self, source: Source) -> Result | None:
        """The stored answer, or None; never sends a request."""
        ...

    async def dry_run(self, source: Source) -> dict[str, Any]:
        """The request a run would send first for this image (key redacted)."""
        ...

    def configs(self) -> list[TaskConfig]:
        """The routes it may ask, in order (a dry run names them)."""
        ...

    async def aclose(self) -> None:
        """Close what it owns."""
        ...
