"""Which rows of a batch are still generating, as seen from each step's new tokens.

``generate`` keeps appending a pad token to a row that has finished; the grammar, the
streamer and the stopping rule each follow the rows with a tracker of their own, so a row's
end (an end-of-turn token, or its own --max-tokens) means the same to all three.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class RowTracker:
    """Counts each row's generated tokens and marks it done at an EOS token or its limit."""

    def __init__(self, limits: Sequence[int], eos_ids: Iterable[int]) -> None:
        self.limits = list(limits)
        self.eos = frozenset(eos_ids)
        self.count = [0] * len(self.limits)
        self.done = [False] * len(self.limits)

    def advance(self, tokens: Sequence[int]) -> list[int | None]:
        """One step: each row's new token, or None for a row that had already finished."""
        out: list[int | None] = []
        for row, token in enumerate(tokens):
            if self.done[row]:
                out.append(None)
                continue
            self.count[row] += 1
            if token in self.eos or self.count[row] >= self.limits[row]:
                self.done[row] = True
            out.append(token)
        return out
