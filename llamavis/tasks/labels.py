"""Map a model's free-text answer onto the user's closed list of classes.

Words are compared after Unicode normalisation and lower-casing, with ``-``, ``_``, ``/``,
quotes and punctuation as word breaks (each Chinese or Japanese character is a word), and
with simple plural forms equal to their singular (cats/cat, boxes/box, buses/bus,
puppies/puppy, people/person). A class is *negated* when
not/no/isn't/never/without/... is among the three words before it in the same clause
("not a cat, it's a dog" names dog). The class returned is always spelled as the user gave it.

An answer equal to a class is that class: a leading "Answer:", "Class -", "The label is"...
is stripped only when those words do not begin a class named there ("class-b" is the class
class-b). The letter classes "A" and "I" are not the article "a" and the pronoun "I", which a
word of the same clause follows ("It is a B." names B; "Class A is right" names A).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from llamavis.tasks.repair import locate_json

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
_LABEL_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|class|label|category|classification|prediction)"
    r"(?:\s*[:=\-]|\s+is\b)\s*", re.I)
_NUM = r"(\d+(?:\.\d+)?|\.\d+)"
_CONF_NAMED = re.compile(
    r"[,;(\[\-]?\s*\b(?:confidence|probability|certainty|score)\b(?:\s+(?:level|score))?"
    rf"\s*(?:[:=]|\bis\b|\bof\b)?\s*{_NUM}\s*(%)?\s*[)\]]?", re.I)
_CONF_PAREN = re.compile(rf"[(\[]\s*{_NUM}\s*(%)?\s*[)\]]")
_CONF_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(%)")
_NONE = re.compile(
    r"^(?:\s*$|\W*(?:none\b|nothing\b|n/?a\b|not applicable|no (?:class|label|categor|match|tag)"
    r"|there (?:are|is) no (?:class|label|categor|match)|\[\s*\]))", re.I)
_LIST_KEYS = ("classes", "labels", "categories", "tags", "answer", "output", "result")
_LABEL_KEYS = ("class", "label", "category", "answer", "prediction", "classification",
               "result", "class_name", "name")
_CONF_KEYS = ("confidence", "score", "probability", "certainty")
_YES_NO = re.compile(r"^(.*?)\s*[:=\-]\s*(yes|no|true|false|present|absent|y|n)\W*$", re.I)
_NEGATIVE = frozenset({"no", "false", "absent", "n"})
_BULLET = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)])\s+")


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


def _same(a: str, b: str) -> bool:
    return a == b or not _forms(a).isdisjoint(_forms(b))


def _tokens(text: str) -> tuple[list[str], list[int], list[int], str]:
    """The words of ``text``, each one's clause number and offset, and the normalised text."""
    norm = _normal(text)
    bounds = [m.start() for m in _CLAUSE_END.finditer(norm)]
    found = list(_TOKEN.finditer(norm))
    starts = [m.start() for m in found]
    return [m.group() for m in found], [bisect(bounds, s) for s in starts], starts, norm


@lru_cache(maxsize=8192)
def _class_words(name: str) -> tuple[str, ...]:
    return tuple(_tokens(name)[0])


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


def _exact(text: str, classes: Sequence[str]) -> int | None:
    """Index of the class whose words are exactly the words of ``text`` (its spelling breaks ties)."""
    words, _, starts, norm = _tokens(text)
    if not words:  # classes of punctuation alone ("+", "-"): the whole answer, as spelled
        bare = norm.strip(_DECORATION)
        return next((ci for ci, name in enumerate(classes)
                     if not _class_words(name) and bare and _normal(name).strip() == bare), None)
    found = [ci for ci, name in enumerate(classes)
             if len(cw := _class_words(name)) == len(words) and all(map(_same, words, cw))]
    return _spelled(norm, starts[0], found, classes)[0] if found else None


def _mentions(text: str, classes: Sequence[str]) -> list[tuple[int, bool]]:
    """(class index, negated) for each mention in ``text``, longest class winning overlaps."""
    words, clauses, starts, norm = _tokens(text)
    by_span: dict[tuple[int, int], list[int]] = {}
    for ci, name in enumerate(classes):
        cw = _class_words(name)
        for i in range(len(words) - len(cw) + 1 if cw else 0):
            if all(_same(words[i + k], w) for k, w in enumerate(cw)):
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


def _affirmed(text: str, classes: Sequence[str]) -> list[int]:
    """Indices of the classes ``text`` names without negation, in order of first mention."""
    return list(dict.fromkeys(ci for ci, neg in _mentions(text, classes) if not neg))


def _unit(value: Any, percent: bool = False) -> float | None:
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
    if percent or str(value).strip().endswith("%") or 1 < number <= 100:
        number /= 100
    return round(number, 4) if 0 <= number <= 1 else None


def parse_confidence(text: str) -> float | None:
    """A confidence in [0, 1] from 'dog (0.92)', 'confidence: 0.9' or '92%'; else None."""
    for pattern in (_CONF_NAMED, _CONF_PAREN, _CONF_PERCENT):
        for m in pattern.finditer(text):
            # a bare "(2)" is a count or footnote, not a confidence: want a decimal or a %
            if pattern is not _CONF_PAREN or "." in m.group(1) or m.group(2):
                return _unit(m.group(1), percent=bool(m.group(2)))
    return None


def _clean(text: str, classes: Sequence[str]) -> str:
    for pattern in (_CONF_NAMED, _CONF_PAREN, _CONF_PERCENT):
        text = pattern.sub(" ", text)
    return _unlabelled(text, classes)


def _json_label(text: str) -> tuple[str | None, float | None] | None:
    """(label, confidence) from a JSON answer such as {"class": "dog", "confidence": 0.9}."""
    if "{" not in text and "[" not in text:
        return None
    try:
        value = locate_json(text)[0]
    except ValueError:
        return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        return value, None
    if not isinstance(value, dict):
        return None
    low = {str(k).lower(): v for k, v in value.items()}
    label = next((low[k] for k in _LABEL_KEYS if isinstance(low.get(k), str)), None)
    strings = [v for v in value.values() if isinstance(v, str)]
    if label is None and len(strings) == 1:
        label = strings[0]
    conf = next((low[k] for k in _CONF_KEYS if k in low and not isinstance(low[k], bool)), None)
    return label, (_unit(conf) if conf is not None else None)


def _unlabelled(text: str, classes: Sequence[str]) -> str:
    """``text`` without a leading "Answer:", "Class -", "The label is"..., unless those words
    begin a class named there: "class-b" is the class class-b, not "b" labelled "class"."""
    text = text.strip()
    prefix = _LABEL_PREFIX.match(text)
    if prefix is None:
        return text
    words, size = _tokens(text)[0], len(_tokens(prefix.group())[0])
    for cw in map(_class_words, classes):
        if size < len(cw) <= len(words) and all(map(_same, words[:len(cw)], cw)):
            return text
    return text[prefix.end():]


def _named(
    text: str, classes: Sequence[str], clean: Callable[[str, Sequence[str]], str]
) -> list[str]:
    """The classes ``text`` names: one exactly, else those its first line (or all) names."""
    whole = clean(text, classes)
    first = clean(next((ln for ln in whole.splitlines() if ln.strip()), ""), classes)
    for candidate in (whole, first):
        ci = _exact(candidate, classes)
        if ci is not None:
            return [classes[ci]]
    for scope in (first, whole):
        found = _affirmed(scope, classes)
        if found:
            return [classes[i] for i in found]
    return []


def read_class(text: str, classes: Sequence[str]) -> tuple[str | None, float | None, list[str]]:
    """(the one class named or None, confidence, the classes the answer names)."""
    parsed = _json_label(text)
    label, confidence = parsed if parsed else (None, None)
    text = label if label is not None else text
    if confidence is None:
        confidence = parse_confidence(text)
    named = _named(text, classes, _clean)
    if not named and confidence is not None:
        # What read as a confidence may be the class itself: a rating ("Score: 7"), "75%".
        named = _named(text, classes, _unlabelled)
        confidence = None if named else confidence
    return (named[0] if len(named) == 1 else None), confidence, named


def match_class(text: str, classes: Sequence[str]) -> str | None:
    """The single class the answer names, spelled as the user gave it; None if none or several."""
    return read_class(text, classes)[0]


def _pieces_from_json(text: str) -> list[str] | None:
    """The labels of a JSON answer (list, {"classes": [...]}, {"cat": true}); None if not JSON."""
    if "{" not in text and "[" not in text:
        return None
    try:
        value, how = locate_json(text)
    except ValueError:
        return None
    if isinstance(value, dict) and not value:
        return None  # "{}" says nothing: repaired gibberish like "{{{{" must not read as "none apply"
    if how == "repaired" and not value:
        return None  # json_repair makes [] of "stuff {{{{": not an answer
    if isinstance(value, dict):
        low = {str(k).lower(): v for k, v in value.items()}
        listed = next((low[k] for k in _LIST_KEYS if isinstance(low.get(k), (list, str))), None)
        if listed is not None:
            value = [listed] if isinstance(listed, str) else listed
        elif all(isinstance(v, (bool, int, float)) for v in value.values()):
            value = [str(k) for k, v in value.items() if v is True or (v is not False and v >= 0.5)]
    if not isinstance(value, list):
        return None
    labels = [str(v) for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
    if value and not labels:
        return None  # [[["x"]]] and the like: not a list of labels
    return labels


def _pieces_from_text(text: str, classes: Sequence[str]) -> list[str]:
    """Split a free-text answer into labels: lines, bullets, commas, 'label: yes/no' pairs."""
    pieces = []
    for line in _clean(text, classes).splitlines():
        for piece in re.split(r"[,;|]", _BULLET.sub("", line)):
            piece = _BULLET.sub("", piece).strip()
            m = _YES_NO.match(piece)
            if m and m.group(2).lower() in _NEGATIVE:
                continue
            pieces.append(m.group(1) if m else piece)
    return [p for p in pieces if p.strip(" \t'\"`*.")]


def read_classes(text: str, classes: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """(classes named, in the user's order; labels outside the set; the answer says 'none')."""
    pieces = _pieces_from_json(text)
    if pieces is None:
        pieces = _pieces_from_text(text, classes)
        said_none = bool(_NONE.match(_clean(text, classes)))
    else:
        said_none = not pieces
    found: set[int] = set()
    unknown = []
    for piece in pieces:
        ci = _exact(piece, classes)
        affirmed = [ci] if ci is not None else _affirmed(piece, classes)
        found.update(affirmed)
        if affirmed or _mentions(piece, classes):
            continue
        if _NONE.match(_clean(piece, classes)):
            said_none = True
        else:
            unknown.append(piece.strip(" \t'\"`*."))
    return [classes[i] for i in sorted(found)], unknown, said_none
