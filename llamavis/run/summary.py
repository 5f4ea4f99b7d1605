"""What a batch reports: a snapshot after each image, and the summary at its end."""

from __future__ import annotations

from dataclasses import dataclass, field

from llamavis.types import Usage


@dataclass
class ProgressEvent:
    """A snapshot after each finished image, for progress bars."""

    done: int
    failed: int
    cached: int
    total: int | None
    in_flight: int
    usage: Usage
    elapsed_s: float

    @property
    def elapsed(self) -> float:
        return self.elapsed_s


@dataclass
class BatchSummary:
    """What a whole batch did; ``usage`` counts only requests sent in this run."""

    total: int
    succeeded: int
    failed: int
    cached: int
    usage: Usage = field(default_factory=Usage)
    elapsed_s: float = 0.0
    stopped_reason: str | None = None  # "max_cost", "auth", "interrupted"
