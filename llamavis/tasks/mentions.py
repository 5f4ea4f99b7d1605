"""Where a free-text answer names a class: its words matched against each class's words.

Words are compared after Unicode normalisation and lower-casing, with ``-``, ``_``, ``/``,
quotes and punctuation as word breaks (each Chinese or Japanese character is a word), and
with simple plural forms equal to their singular (cats/cat, boxes/box, buses/bus,
puppies/puppy, people/person). A class is *negated* when
not/no/isn't/never/without/... is among the three words before it in the same clause
("not a cat, it's a dog" names dog). The letter classes "A" and "I" are not the article
"a" and the pronoun "I", which a word of the same clause follows ("It is a B." names B;
"Class A is right" names A).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect
from collections.abc import Sequence
from functools import lru_cache

_IRREGULAR = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "teeth": "tooth", "feet": "foot", "knives": "knife", "leaves": "leaf",
    "wolves": "wolf", "calves": "calf", "halves": "half", "shelves": "shelf", "oxen": "ox",
}
# "a" and "I" are also the article and the pronoun: see _function_word
_FUNCTION_LETTERS = frozenset({"a", "i"})
_JOINS = frozenset({"or", "and", "nor", "vs", "versus", "then"})
_NEGATIONS = frozenset({
    "not", "no", "isn't", "isnt", "aren't", "arent", "wasn't", "weren't", "never", "neither",
    "nor", "without", "instead", "non",
})
# Chinese and Japanese write no spaces between words: each ideograph or kana is a word of
# its own there, so a class ("犬", "自行车") is found inside a sentence like any other.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:'[^\W_{_CJK}]+)*")
_CLAUSE_END = re.compile(r"[.,;:!?\n]|\bbut\b|\bhowever\b")

def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("\u2018", "'")


@lru_cache(maxsize=4096)
def _forms(word: str) -> frozenset[str]:
    forms = {word, _IRREGULAR.get(word, word)}
    if word.endswith("'s"):
        forms.add(word[:-2])
    if len(word) > 4 and word.endswith("ies"):
        forms.add(word[:-3] + "y")
    if len(word) > 4 and word.endswith("es"):
        forms.add(word[:-2])
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
    return frozenset(forms)


def same(a: str, b: str) -> bool:
    return a == b or not _forms(a).isdisjoint(_forms(b))


def tokens(text: str) -> tuple[list[str], list[int], list[int], str]:
    """The words of ``text``, each one's clause number and offset, and the normalised text."""
    norm = _normal(text)
    bounds = [m.start() for m in _CLAUSE_END.finditer(norm)]
    found = list(_TOKEN.finditer(norm))
    starts = [m.start() for m in found]
    return [m.group() for m in found], [bisect(bounds, s) for s in starts], starts, norm


@lru_cache(maxsize=8192)
def class_words(name: str) -> tuple[str, ...]:
    return tuple(tokens(name)[0])


def _spelled(norm: str, at: int, candidates: list[int], classes: Sequence[str]) -> list[int]:
    """Of classes with the same words (C, C++, C#), the longest spelled as is at offset ``at``.

    Words alone cannot tell them apart; all of them when the text spells none exactly.
    """
    fits = []
    for ci in candidates:
        name = _normal(classes[ci]).strip()
        first = _TOKEN.search(name)
        start = at - (first.start() if first else 0)
        if start >= 0 and norm.startswith(name, start):
            fits.append((len(name), ci))
    if not fits:
        return candidates
    longest = max(fits)[0]
    return [ci for size, ci in fits if size == longest]


_DECORATION = " \t\r\n*_`'\"."


def exact(text: str, classes: Sequence[str]) -> int | None:
    """Index of the class whose words are exactly the words of ``text`` (its spelling breaks ties)."""
    words, _, starts, norm = tokens(text)
    if not words:  # classes of punctuation alone ("+", "-"): the whole answer, as spelled
        bare = norm.strip(_DECORATION)
        return next((ci for ci, name in enumerate(classes)
                     if not class_words(name) and bare and _normal(name).strip() == bare), None)
    found = [ci for ci, name in enumerate(classes)
             if len(cw := class_words(name)) == len(words) and all(map(same, words, cw))]
    return _spelled(norm, starts[0], found, classes)[0] if found else None


def mentions(text: str, classes: Sequence[str]) -> list[tuple[int, bool]]:
    """(class index, negated) for each mention in ``text``, longest class winning overlaps."""
    words, clauses, starts, norm = tokens(text)
    by_span: dict[tuple[int, int], list[int]] = {}
    for ci, name in enumerate(classes):
        cw = class_words(name)
        for i in range(len(words) - len(cw) + 1 if cw else 0):
            if all(same(words[i + k], w) for k, w in enumerate(cw)):
                by_span.setdefault((i, i + len(cw)), []).append(ci)
    spans = [(i, j, ci) for (i, j), found in by_span.items()
             for ci in _spelled(norm, starts[i], found, classes)]
    spans = [(i, j, ci) for i, j, ci in spans
             if not (j - i == 1 and _function_word(text, norm, words, clauses, starts, i))]
    kept = [s for s in spans
            if not any(t[0] <= s[0] and s[1] <= t[1] and t[1] - t[0] > s[1] - s[0] for t in spans)]
    out = []
    for start, _, ci in sorted(kept):
        window = range(max(0, start - 3), start)
        negated = any(words[j] in _NEGATIONS and clauses[j] == clauses[start] for j in window)
        out.append((ci, negated))
    return out


def _function_word(
    text: str, norm: str, words: list[str], clauses: list[int], starts: list[int], i: int
) -> bool:
    """Whether words[i], "a" or "i", is the article or the pronoun, not a letter class "A":
    a word of its clause follows it ("a B", "I think"), it is not a join ("A or B"), and
    it is lowercase or starts a sentence ("A photo of a B"; "Class A is right" names A)."""
    after = i + 1
    if words[i] not in _FUNCTION_LETTERS or after >= len(words) or clauses[after] != clauses[i]:
        return False
    if words[after] in _JOINS:
        return False
    cased = _cased(text)
    if len(cased) != len(norm) or not cased[starts[i]].isupper():
        return True
    return not norm[: starts[i]].strip() or norm[: starts[i]].rstrip()[-1] in ".!?\n"


@lru_cache(maxsize=256)
def _cased(text: str) -> str:
    """``text`` normalised as _normal does, but keeping its case."""
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")


def affirmed(text: str, classes: Sequence[str]) -> list[int]:
    """Indices of the classes ``text`` names without negation, in order of first mention."""
    return list(dict.fromkeys(ci for ci, neg in mentions(text, classes) if not neg))
