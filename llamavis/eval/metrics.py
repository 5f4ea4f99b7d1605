"""Each task's standard score of answers against gold; pure functions, no I/O.

An image whose route gave no answer counts as wrong (it is in the denominator): a route
that fails half the images cannot score as if it had been asked only the other half.

- classify: accuracy, per-class precision/recall/F1 and the confusion matrix (gold by
  row, answer by column; ``NO_ANSWER`` for a failed image). Plain counting: scikit-learn
  would be a 30 MB dependency for five divisions.
- multi-classify: micro and macro F1 over (image, class) decisions, and exact-set match.
  A class with neither gold nor predicted images is left out of the macro average.
- ocr (and caption with references): CER and WER by ``jiwer`` over the whole set (total
  edits / total reference characters or words), after ``normalise_text``.
- vqa: exact match after ``normalise_answer`` (the SQuAD/VQA normalisation).
- structured: schema-valid rate (answers that passed the schema) and, per field, exact
  match of the value after ``normalise_answer``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from llamavis.eval.labels import Gold
from llamavis.types import Result

NO_ANSWER = "(no answer)"
Scored = Sequence[tuple[Gold, Result | None]]


def answer_of(result: Result | None) -> Any:
    """The route's answer, or None when it failed."""
    return None if result is None or not result.ok else result.output


def normalise_text(text: Any, *, ignore_case: bool = False) -> str:
    """OCR's normalisation: whitespace runs become one space, ends stripped; case as asked."""
    out = " ".join(str(text or "").split())
    return out.casefold() if ignore_case else out


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise_answer(value: Any) -> str:
    """Short answers compared as SQuAD/VQA do: lower case, no punctuation, no articles
    (a, an, the), whitespace collapsed."""
    text = str(value if value is not None else "").casefold().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def classify(scored: Scored, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class P/R/F1 and confusion counts; gold labels match ``classes``
    case-insensitively (those outside it are in ``outside_classes``)."""
    spelled = {c.casefold(): c for c in classes}
    pairs, outside = [], []
    for gold, result in scored:
        label = spelled.get(str(gold.value).strip().casefold())
        if label is None:
            outside.append({"image": gold.key, "label": gold.value})
            continue
        answer = answer_of(result)
        pairs.append((label, spelled.get(str(answer).casefold(), NO_ANSWER)
                      if answer is not None else NO_ANSWER))
    columns = [*classes, NO_ANSWER]
    confusion = {g: {a: 0 for a in columns} for g in classes}
    for g, a in pairs:
        confusion[g][a] += 1
    per_class = {c: _prf(confusion[c][c], sum(confusion[g][c] for g in classes) - confusion[c][c],
                         sum(confusion[c].values()) - confusion[c][c]) for c in classes}
    correct = sum(1 for g, a in pairs if g == a)
    return {"n": len(pairs), "correct": correct, "accuracy": _ratio(correct, len(pairs)),
            "per_class": per_class, "confusion": confusion, "outside_classes": outside}


def multi_classify(scored: Scored, classes: Sequence[str]) -> dict[str, Any]:
    """Micro and macro F1 over (image, class) decisions, exact-set match rate."""
    spelled = {c.casefold(): c for c in classes}
    counts = {c: [0, 0, 0] for c in classes}  # tp, fp, fn
    exact, outside = 0, []
    for gold, result in scored:
        want = set()
        for label in gold.value or []:
            if str(label).strip().casefold() in spelled:
                want.add(spelled[str(label).strip().casefold()])
            else:
                outside.append({"image": gold.key, "label": label})
        got = {spelled[str(a).casefold()] for a in answer_of(result) or []
               if str(a).casefold() in spelled}
        exact += answer_of(result) is not None and got == want
        for c in classes:
            counts[c][0] += c in want and c in got
            counts[c][1] += c in got and c not in want
            counts[c][2] += c in want and c not in got
    per_class = {c: _prf(*v) for c, v in counts.items()}
    tp, fp, fn = (sum(v[i] for v in counts.values()) for i in range(3))
    seen = [per_class[c]["f1"] for c, v in counts.items() if any(v)]
    return {"n": len(scored), "exact_set": _ratio(exact, len(scored)),
            "micro_f1": _prf(tp, fp, fn)["f1"],
            "macro_f1": round(sum(seen) / len(seen), 4) if seen else None,
            "per_class": per_class, "outside_classes": outside}


def text_distance(scored: Scored, *, ignore_case: bool = False) -> dict[str, Any]:
    """CER and WER (jiwer) over the set, exact-match rate, after ``normalise_text``."""
    import jiwer

    refs, hyps = [], []
    for gold, result in scored:
        ref = normalise_text(gold.value, ignore_case=ignore_case)
        if ref:  # an empty reference has no error rate; the image is still in "n"
            refs.append(ref)
            hyps.append(normalise_text(answer_of(result), ignore_case=ignore_case))
    exact = sum(1 for g, r in scored if normalise_text(g.value, ignore_case=ignore_case)
                == normalise_text(answer_of(r), ignore_case=ignore_case))
    out: dict[str, Any] = {"n": len(scored), "exact": _ratio(exact, len(scored)),
                           "normalisation": "whitespace collapsed"
                           + (", case ignored" if ignore_case else ", case kept")}
    if not refs:
        return {**out, "cer": None, "wer": None}
    chars = jiwer.process_characters(refs, hyps)
    words = jiwer.process_words(refs, hyps)
    edits = chars.substitutions + chars.deletions + chars.insertions
    return {**out, "cer": round(chars.cer, 6), "wer": round(words.wer, 6),
            "char_edits": edits, "ref_chars": chars.hits + chars.substitutions + chars.deletions}


def vqa(scored: Scored) -> dict[str, Any]:
    """Exact match after ``normalise_answer``."""
    hits = sum(1 for g, r in scored if answer_of(r) is not None
               and normalise_answer(g.value) == normalise_answer(answer_of(r)))
    return {"n": len(scored), "exact_match": _ratio(hits, len(scored)),
            "normalisation": "lower case, punctuation and articles removed, whitespace collapsed"}


def structured(scored: Scored) -> dict[str, Any]:
    """Schema-valid rate and per-field exact match (``normalise_answer`` on both sides)."""
    fields = sorted({k for g, _ in scored for k in (g.value or {})})
    valid = sum(1 for _, r in scored if isinstance(answer_of(r), dict))
    per_field = {}
    for name in fields:
        hits = sum(1 for g, r in scored if isinstance(answer_of(r), dict)
                   and normalise_answer(_plain(answer_of(r).get(name)))
                   == normalise_answer(_plain((g.value or {}).get(name))))
        per_field[name] = _ratio(hits, len(scored))
    return {"n": len(scored), "schema_valid": _ratio(valid, len(scored)), "per_field": per_field}


def score(task: str, scored: Scored, *, classes: Sequence[str] = (),
          ignore_case: bool = False) -> dict[str, Any]:
    """The metrics of ``task`` (see the module docstring)."""
    if task == "classify":
        return classify(scored, classes)
    if task == "multi-classify":
        return multi_classify(scored, classes)
    if task == "vqa":
        return vqa(scored)
    if task == "structured":
        return structured(scored)
    return text_distance(scored, ignore_case=ignore_case)


def correct(task: str, gold: Gold, result: Result | None, *, ignore_case: bool = False) -> bool:
    """Whether one answer equals the gold, as the task's metric compares them."""
    answer = answer_of(result)
    if answer is None:
        return False
    if task == "classify":
        return str(answer).casefold() == str(gold.value).strip().casefold()
    if task == "multi-classify":
        return ({str(a).casefold() for a in answer}
                == {str(g).strip().casefold() for g in gold.value or []})
    if task == "structured":
        return isinstance(answer, dict) and all(
            normalise_answer(_plain(answer.get(k))) == normalise_answer(_plain(v))
            for k, v in (gold.value or {}).items())
    if task == "vqa":
        return normalise_answer(answer) == normalise_answer(gold.value)
    return normalise_text(answer, ignore_case=ignore_case) == normalise_text(
        gold.value, ignore_case=ignore_case)


def _plain(value: Any) -> Any:
    """3.0 and 3 are the same count; a CSV's "3" meets a JSON 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    """Precision, recall, F1 (0 where undefined, as scikit-learn's zero_division=0)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
            "support": tp + fn}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None
