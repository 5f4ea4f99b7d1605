"""Map a model's free-text answer onto the user's closed list of classes.

How words are matched (normalisation, plurals, negation, the letters "A" and "I") is
llamavis.tasks.mentions. Here: JSON answers, confidences, "label: yes/no" lists, and which
class an answer names. The class returned is always spelled as the user gave it.

An answer equal to a class is that class: a leading "Answer:", "Class -", "The label is"...
is stripped only when those words do not begin a class named there ("class-b" is the class
class-b). The letter classes "A" and "I" are not the article "a" and the pronoun "I", which a
word of the same clause follows (see llamavis.tasks.mentions).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from llamavis.tasks.mentions import affirmed, class_words, exact, mentions, same, tokens
from llamavis.tasks.repair import locate_json

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
    words, size = tokens(text)[0], len(tokens(prefix.group())[0])
    for cw in map(class_words, classes):
        if size < len(cw) <= len(words) and all(map(same, words[:len(cw)], cw)):
            return text
    return text[prefix.end():]


def _named(
    text: str, classes: Sequence[str], clean: Callable[[str, Sequence[str]], str]
) -> list[str]:
    """The classes ``text`` names: one exactly, else those its first line (or all) names."""
    whole = clean(text, classes)
    first = clean(next((ln for ln in whole.splitlines() if ln.strip()), ""), classes)
    for candidate in (whole, first):
        ci = exact(candidate, classes)
        if ci is not None:
            return [classes[ci]]
    for scope in (first, whole):
        found = affirmed(scope, classes)
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
        ci = exact(piece, classes)
        named = [ci] if ci is not None else affirmed(piece, classes)
        found.update(named)
        if named or mentions(piece, classes):
            continue
        if _NONE.match(_clean(piece, classes)):
            said_none = True
        else:
            unknown.append(piece.strip(" \t'\"`*."))
    return [classes[i] for i in sorted(found)], unknown, said_none
