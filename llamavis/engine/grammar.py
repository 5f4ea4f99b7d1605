"""Constrained decoding with llguidance: at each step only tokens that keep the answer in the grammar.

llguidance (guidance-ai) computes the allowed-token mask from the tokenizer's own vocabulary
for regexes, Lark grammars, choices and JSON Schemas; it is a small native wheel with no GPU
or compiler requirement. Its ``llguidance.torch`` helpers are not used: they go through
``torch.compile``, which needs a C++ toolchain on CPU and seconds to warm up; unpacking the
mask here is a few tensor operations.

The mask is as wide as the tokenizer (Llama 3.2 Vision's tokenizer holds ``<|image|>`` one past
the 128256 logits), so it is cut to the logits' width; logits beyond the tokenizer (padded
embedding matrices) are never allowed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import llguidance
import llguidance.hf
import torch
from transformers import LogitsProcessor

from llamavis.engine.jobs import Grammar
from llamavis.engine.rows import RowTracker
from llamavis.errors import UsageError

# JSON exactly as the prompts show it ('{"a": 1, "b": [2, 3]}'); with free whitespace a weak
# model can pad forever. lenient: a schema keyword llguidance cannot enforce is left to the
# validation every answer goes through afterwards anyway.
JSON_OPTIONS: Any = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ",
                "lenient": True}
_CACHED = 64  # compiled grammars kept per engine (one run uses one or two)
_SHIFTS = torch.arange(8, dtype=torch.uint8)


class Grammars:
    """The llguidance tokenizer for one engine, and compiled grammars to copy matchers from."""

    def __init__(self, tokenizer: Any, eos_ids: tuple[int, ...], logits_size: int) -> None:
        self.vocab = max(len(tokenizer), logits_size)
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=self.vocab,
                                                      eos_token=list(eos_ids))
        self.logits_size = logits_size
        self.eos_ids = eos_ids
        self.mask_bytes = (self.vocab + 31) // 32 * 4
        self._compiled: OrderedDict[Grammar, Any] = OrderedDict()

    def matcher(self, grammar: Grammar) -> Any:
        """A fresh matcher for ``grammar``; UsageError if llguidance cannot compile it."""
        template = self._compiled.get(grammar)
        if template is None:
            template = llguidance.LLMatcher(self.tokenizer, _source(grammar), log_level=0)
            if template.is_error():
                kind = {"json": "JSON Schema", "choice": "class list"}.get(grammar[0], grammar[0])
                raise UsageError(f"the {kind} cannot be used for constrained decoding: "
                                 f"{template.get_error()}")
            self._compiled[grammar] = template
            if len(self._compiled) > _CACHED:
                self._compiled.popitem(last=False)
        return template.deep_copy()


def _source(grammar: Grammar) -> str:
    kind, text = grammar
    if kind == "json":
        return llguidance.LLMatcher.grammar_from_json_schema(json.loads(text), defaults=JSON_OPTIONS)
    return llguidance.grammar_from(kind, text)  # type: ignore[arg-type]


class GrammarProcessor(LogitsProcessor):
    """Masks each row's logits to what its matcher allows; rows without a matcher run free."""

    def __init__(self, grammars: Grammars, matchers: list[Any], rows: RowTracker,
                 prompt_len: int) -> None:
        self.grammars, self.matchers, self.rows = grammars, matchers, rows
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] > self.prompt_len:  # feed each live row's last token to its matcher
            for row, token in enumerate(self.rows.advance(input_ids[:, -1].tolist())):
                matcher = self.matchers[row]
                if matcher is not None and token is not None and not matcher.is_stopped():
                    matcher.consume_token(token)
        allowed = self._allowed(len(self.matchers)).to(scores.device)
        return scores.masked_fill(~allowed[:, : scores.shape[1]], float("-inf"))  # type: ignore[return-value]

    def _allowed(self, batch: int) -> torch.Tensor:
        """A (batch, logits) bool tensor: the tokens each row may take next."""
        width = self.grammars.mask_bytes
        masks = bytearray(b"\xff" * (width * batch))
        for row, matcher in enumerate(self.matchers):
            if matcher is not None and not self.rows.done[row]:
                masks[row * width:(row + 1) * width] = matcher.compute_bitmask()
        packed = torch.frombuffer(masks, dtype=torch.uint8).view(batch, width)
        allowed = ((packed.unsqueeze(-1) >> _SHIFTS) & 1).view(batch, -1).bool()
        allowed = allowed[:, : self.grammars.logits_size]
        stuck = ~allowed.any(dim=1)  # nothing allowed (a broken grammar): let the row end
        if bool(stuck.any()):
            allowed[stuck, list(self.grammars.eos_ids)[0]] = True
        return allowed
