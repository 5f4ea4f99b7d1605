"""Each task's ``OutputSpec``: free text, one class, classes, an object of a schema.

Each checks one reply (llamavis.tasks.checks.Check) and words the re-asks the ladder in
llamavis.tasks.answers sends when a reply falls short.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from llamavis.errors import UsageError
from llamavis.tasks.checks import NO_FENCES, Check, detect_refusal, refused, snippet
from llamavis.tasks.labels import read_class, read_classes
from llamavis.tasks.repair import CUT, REPAIRED, STRICT, locate_json
from llamavis.tasks.schemas import resolve_ref, schema_prompt, validation_errors
from llamavis.types import JSONObject


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


class TextSpec:
    """Free text (caption, OCR, VQA, prompt): any non-empty reply that is not a refusal."""

    wants_json = False
    json_schema: JSONObject | None = None

    def check(self, text: str, *, truncated: bool = False) -> Check:
        """Accept any non-empty reply that is not wholly a refusal."""
        answer = text.strip()
        if not answer:
            return Check(False, errors=["the answer was empty"])
        return refused() if detect_refusal(answer) else Check(True, value=answer)

    def repair_prompt(self, text: str, check: Check) -> str:
        """Never needed for text (no reply is malformed); kept for the protocol."""
        return f"Rewrite this reply as a plain answer:\n\n{text}"

    def feedback_prompt(self, text: str, check: Check) -> str:
        """Ask again, with the image, for a non-empty answer."""
        return f"{'; '.join(check.errors)}. Look at the image again and answer the request above."


def _clean_classes(classes: Sequence[str]) -> list[str]:
    cleaned = list(dict.fromkeys(c.strip() for c in classes if c and c.strip()))
    if not cleaned:
        raise UsageError("--classes: give at least one class, e.g. --classes cat,dog")
    return cleaned


class _ClassSet:
    """A closed set of the user's classes: answers are plain text, checked locally."""

    wants_json = False
    json_schema: JSONObject | None = None

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = _clean_classes(classes)


class ClassSpec(_ClassSet):
    """Exactly one of the given classes, returned as the user spelled it."""

    def check(self, text: str, *, truncated: bool = False) -> Check:
        """Map the reply onto one class; several or none named is wrong content."""
        if detect_refusal(text):
            return refused()
        label, confidence, named = read_class(text, self.classes)
        if label is not None:
            return Check(True, value=label, confidence=confidence)
        if len(named) > 1:
            error = f"the answer names several classes ({', '.join(named)}); give exactly one"
        elif not text.strip():
            error = "the answer was empty"
        else:
            error = f"the answer {snippet(text)} is not one of the allowed classes"
        return Check(False, errors=[error], confidence=confidence)

    def repair_prompt(self, text: str, check: Check) -> str:
        """Text-only: ask which allowed class the reply means."""
        return (f"The reply below should name exactly one of these classes:\n"
                f"{_bullets(self.classes)}\n\nReply:\n{text}\n\n"
                "Reply with only that class name, spelled as listed.")

    def feedback_prompt(self, text: str, check: Check) -> str:
        """With the image: say what was wrong and list the allowed classes."""
        return (f"Your answer does not fit: {'; '.join(check.errors)}.\n"
                "Look at the image again and reply with exactly one of these classes, "
                f"spelled as listed, and nothing else:\n{_bullets(self.classes)}")


class MultiClassSpec(_ClassSet):
    """Zero or more of the given classes, in the user's order; [] when none applies."""

    def check(self, text: str, *, truncated: bool = False) -> Check:
        """Keep the named classes; an answer naming only unknown labels is wrong content."""
        if detect_refusal(text):
            return refused()
        found, unknown, said_none = read_classes(text, self.classes)
        if found or said_none:
            return Check(True, value=found)
        labels = [u for u in unknown if len(u.split()) <= 4]  # longer pieces are prose
        if labels:
            error = f"labels not in the class list: {', '.join(map(repr, labels[:5]))}"
        else:
            error = f"the answer {snippet(text)} names none of the allowed classes"
        return Check(False, errors=[error])

    def repair_prompt(self, text: str, check: Check) -> str:
        """Text-only: ask for the reply as a list drawn from the classes."""
        return (f"The reply below should list which of these classes apply:\n"
                f"{_bullets(self.classes)}\n\nReply:\n{text}\n\n"
                "Reply with only the class names, comma-separated, or 'none'.")

    def feedback_prompt(self, text: str, check: Check) -> str:
        """With the image: say what was wrong and list the allowed classes."""
        return (f"Your answer does not fit: {'; '.join(check.errors)}.\n"
                "Look at the image again. Reply with the classes that apply, chosen only from "
                f"this list, comma-separated, or 'none' if none applies:\n{_bullets(self.classes)}")


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


_NOT_TEXT = ("integer", "number", "boolean")
_MISSING = re.compile(r"^\s*(?:null|none|nil|n/?a|-*)\s*$", re.I)


def _coerce(value: Any, kind: Any) -> Any:
    """A scalar turned into the schema's simple type where that is unambiguous, else as is."""
    if isinstance(kind, list):  # ["integer", "null"]: coerce to the one non-null type
        nullable = "null" in kind
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
        if nullable and kind in _NOT_TEXT and isinstance(value, str) and _MISSING.match(value):
            return None  # "N/A" for a number that may be null: the model meant null
    if isinstance(value, bool) or not isinstance(kind, str):
        return value
    text = str(value).strip()
    if kind == "integer" and isinstance(value, (str, float)):
        if re.fullmatch(r"[-+]?\d+(?:\.0+)?", text):
            return int(float(text))
    elif kind == "number" and isinstance(value, str):
        if re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text):
            return float(text) if any(c in text for c in ".eE") else int(text)
    elif kind == "boolean" and isinstance(value, str):
        return {"true": True, "yes": True, "false": False, "no": False}.get(text.lower(), value)
    elif kind == "string" and isinstance(value, (int, float)):
        return text
    return value


def _fit(value: Any, schema: Any, root: JSONObject) -> Any:
    """``value`` with the safe fixes applied where ``schema`` says what each part should be."""
    schema = resolve_ref(schema, root)
    props = schema.get("properties")
    if isinstance(value, dict) and isinstance(props, dict):
        by_key = {_key(name): name for name in props}
        fitted: JSONObject = {}
        for k, v in value.items():
            name = str(k) if k in props else by_key.get(_key(k), str(k))
            if name not in props and schema.get("additionalProperties") is False:
                continue
            fitted.setdefault(name, _fit(v, props[name], root) if name in props else v)
        return fitted
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_fit(item, schema["items"], root) for item in value]
    if isinstance(value, str) and isinstance(schema.get("enum"), list):
        same = [e for e in schema["enum"]
                if isinstance(e, str) and e.casefold() == value.strip().casefold()]
        return same[0] if len(same) == 1 and value not in schema["enum"] else value
    return _coerce(value, schema.get("type"))


class SchemaSpec:
    """A JSON object that validates against a JSON Schema."""

    wants_json = True

    def __init__(self, schema: JSONObject) -> None:
        self.schema = schema
        self.json_schema: JSONObject | None = schema
        self.fields = schema_prompt(schema)

    def fit(self, value: Any) -> tuple[Any, bool]:
        """Safe local fixes: unwrap [obj], match key case/spacing, coerce '3' → 3, match an
        enum value's case, at any depth; (value, changed)."""
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
            return self.fit(value[0])[0], True
        fitted = _fit(value, self.schema, self.schema)
        keys_moved = isinstance(value, dict) and list(fitted) != list(value)
        return fitted, fitted != value or keys_moved

    def check(self, text: str, *, truncated: bool = False) -> Check:
        """Find, repair locally and validate the JSON; say why it fails."""
        try:
            value, how = locate_json(text)
        except ValueError as exc:
            if detect_refusal(text):
                return refused()
            if truncated:
                return Check(False, errors=["the answer was cut off at the token limit"])
            return Check(False, malformed=True, errors=[str(exc)])
        if truncated and how in (CUT, REPAIRED):
            return Check(False, value=value, repaired=True,
                         errors=["the answer was cut off at the token limit; keep it shorter"])
        if how == CUT:
            return Check(False, value=value, repaired=True,
                         errors=["the JSON stops in the middle of a value; give the whole object"])
        value, changed = self.fit(value)
        errors = validation_errors(self.schema, value)
        return Check(not errors, value=value, errors=errors, repaired=changed or how != STRICT)

    def repair_prompt(self, text: str, check: Check) -> str:
        """Text-only: the reply, the fields and the errors; ask for the corrected JSON."""
        return (f"The reply below was meant to be one JSON object with these fields:\n"
                f"{self.fields}\n\nProblem: {'; '.join(check.errors)}.\n\nReply:\n{text}\n\n"
                f"Reply with only the corrected JSON object ({NO_FENCES}).")

    def feedback_prompt(self, text: str, check: Check) -> str:
        """With the image: list what failed validation and the fields expected."""
        return (f"Your answer does not match the required JSON format:\n"
                f"{_bullets(check.errors)}\n\nLook at the image again and reply with only one "
                f"JSON object with these fields ({NO_FENCES}):\n{self.fields}")
