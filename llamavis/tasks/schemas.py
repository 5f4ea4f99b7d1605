"""One JSON Schema from three syntaxes (--field, concise, JSON Schema), and its validator.

The three syntaxes, all giving ``{"type": "object", "properties": {...}, "required": [...]}``
with every field required and extra keys allowed. The two short syntaxes also allow ``null``
for every field (``{"type": ["integer", "null"]}``): the structured prompt asks for null where
a value is not visible, and an honest null beats a made-up value or a failed answer.

* ``--field KEY=DESCRIPTION`` (repeatable; Roboflow's ``output_structure``). A field is a
  string unless its key carries a type after a colon or a space: ``--field count:int=people
  visible`` or ``--field 'count int=people visible'`` (a second word that is no type name
  stays part of the key). Only the part before the first ``=`` is the key, so descriptions
  may hold ``=`` and ``:``.
* concise, as in ``llm``: ``'count int: people visible, weather'`` -- fields separated by
  newlines when there is one, else by commas; ``NAME [TYPE][: DESCRIPTION]``.
* JSON Schema, inline or in a file, checked against its own ``$schema`` draft (2020-12 by
  default); an OpenAI ``{"name": ..., "schema": {...}}`` wrapper is unwrapped.

Types (both short syntaxes): ``str``/``string`` (default), ``int``/``integer``,
``float``/``number``, ``bool``/``boolean``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llamavis.errors import UsageError
from llamavis.tasks.schema_check import (
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    check_schema,
    validation_errors,
)
from llamavis.tasks.schema_text import resolve_ref, schema_prompt

__all__ = [  # checking and prompt text live beside this module; importable from here as before
    "MAX_SCHEMA_BYTES", "MAX_SCHEMA_DEPTH", "TYPES", "check_schema", "load_schema", "resolve_ref",
    "schema_from_concise", "schema_from_fields", "schema_from_options", "schema_prompt",
    "validation_errors",
]

TYPES = {
    "str": "string", "string": "string",
    "int": "integer", "integer": "integer",
    "float": "number", "number": "number",
    "bool": "boolean", "boolean": "boolean",
}
_TYPE_HELP = "use str, int, float or bool"
_SCHEMA_SUFFIXES = (".json", ".schema", ".yaml", ".yml", ".txt")


def _object_schema(fields: list[tuple[str, str, str]], option: str) -> dict:
    """Build the object schema from (name, type, description) triples, rejecting duplicates."""
    properties: dict[str, dict] = {}
    for name, type_name, description in fields:
        if name in properties:
            raise UsageError(f"{option}: field {name!r} is given twice")
        prop: dict[str, Any] = {"type": [TYPES[type_name], "null"]}
        if description:
            prop["description"] = description
        properties[name] = prop
    if not properties:
        raise UsageError(f"{option}: no fields given")
    return {"type": "object", "properties": properties, "required": list(properties)}


def _check_type(type_name: str, name: str, option: str) -> str:
    type_name = type_name.strip().lower()
    if type_name not in TYPES:
        raise UsageError(f"{option}: unknown type {type_name!r} for field {name!r} ({_TYPE_HELP})")
    return type_name


def schema_from_fields(fields: Sequence[str]) -> dict:
    """Turn ``--field KEY=DESCRIPTION`` (or ``KEY:TYPE=DESCRIPTION``) options into a schema."""
    parsed = []
    for raw in fields:
        key, sep, description = raw.partition("=")
        name, colon, type_name = key.partition(":")
        name = name.strip()
        words = name.split()
        if not colon and len(words) == 2 and words[1].lower() in TYPES:
            name, colon, type_name = words[0], ":", words[1]  # 'count int=...', as --help shows
        if not sep or not name:
            raise UsageError(
                f"--field {raw!r}: expected KEY=DESCRIPTION, e.g. --field 'count:int=people visible'"
            )
        type_name = _check_type(type_name, name, "--field") if colon else "str"
        parsed.append((name, type_name, description.strip()))
    return _object_schema(parsed, "--field")


def schema_from_concise(spec: str) -> dict:
    """Turn llm's concise syntax (``'count int: people visible, weather'``) into a schema."""
    by_comma = "\n" not in spec
    parts = spec.split(",") if by_comma else spec.split("\n")
    # With commas between fields, a comma inside a description starts a "field" (as in llm).
    hint = "separate fields with newlines when a description holds a comma" if by_comma else None
    parsed = []
    for part in filter(None, (p.strip() for p in parts)):
        head, _, description = part.partition(":")
        words = head.split()
        if not words or len(words) > 2:
            raise UsageError(
                f"--schema: cannot read field {part!r}; expected 'NAME [TYPE]: DESCRIPTION', "
                "e.g. 'count int: people visible, weather'", hint=hint)
        try:
            type_name = _check_type(words[1], words[0], "--schema") if len(words) == 2 else "str"
        except UsageError as exc:
            exc.hint = hint
            raise
        parsed.append((words[0], type_name, description.strip()))
    return _object_schema(parsed, "--schema")


def _read_schema_text(arg: str) -> tuple[str, str]:
    """Return (text, where) for a --schema argument: a file's content, or the argument itself."""
    if "\n" not in arg and "{" not in arg:
        try:
            path = Path(arg).expanduser()
            if path.is_file():
                return path.read_text(encoding="utf-8"), f"file {arg!r}"
        except UnicodeDecodeError:
            raise UsageError(f"--schema: file {arg!r} is not UTF-8 text") from None
        except ValueError:  # e.g. a NUL byte: not a path, so it is read as inline text
            return arg, "value"
        except OSError as exc:
            raise UsageError(f"--schema: cannot read {arg!r}: {exc.strerror or exc}") from None
        if _looks_like_a_path(arg):
            raise UsageError(f"--schema: no such file {arg!r}")
    return arg, "value"


def _looks_like_a_path(arg: str) -> bool:
    """A --schema value that names a file rather than fields (so a typo is not a field)."""
    arg = arg.strip()
    if not arg or any(c.isspace() or c in ",:" for c in arg):
        return False
    suffix = Path(arg).suffix.lower()
    return "/" in arg or "\\" in arg or arg.startswith("~") or suffix in _SCHEMA_SUFFIXES


def load_schema(arg: str | dict) -> dict:
    """Read --schema: a JSON Schema file path, inline JSON, or concise syntax; checked."""
    if isinstance(arg, dict):
        return check_schema(arg)
    text, where = _read_schema_text(arg)
    if len(text.encode()) > MAX_SCHEMA_BYTES:
        raise UsageError(f"--schema: {where} is larger than {MAX_SCHEMA_BYTES:,} bytes")
    if not text.strip():
        raise UsageError("--schema is empty; give a JSON Schema file, inline JSON or 'name, age int'")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UsageError(f"--schema is nested more than {MAX_SCHEMA_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        if "{" in text or "[" in text:
            raise UsageError(
                f"--schema: {where} is not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno})"
            ) from None
        return schema_from_concise(text)
    if not isinstance(value, dict):
        raise UsageError(f"--schema: {where} must be a JSON object (a JSON Schema)")
    return check_schema(value)


def schema_from_options(fields: Sequence[str] | None, schema: str | dict | None) -> dict | None:
    """The schema a command was given: from --field or --schema (never both), else None."""
    if fields and schema is not None:
        raise UsageError("give either --field or --schema, not both")
    if fields:
        return schema_from_fields(fields)
    return load_schema(schema) if schema is not None else None
