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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llamavis.errors import UsageError

TYPES = {
    "str": "string", "string": "string",
    "int": "integer", "integer": "integer",
    "float": "number", "number": "number",
    "bool": "boolean", "boolean": "boolean",
}
_TYPE_HELP = "use str, int, float or bool"
_SCHEMA_SUFFIXES = (".json", ".schema", ".yaml", ".yml", ".txt")
_OBJECT_KEYWORDS = ("type", "properties", "$ref", "allOf", "anyOf", "oneOf", "required")


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


MAX_SCHEMA_BYTES = 1_000_000  # a schema is sent in every prompt and re-ask: 1 MB is plenty
MAX_SCHEMA_DEPTH = 64  # nesting of objects and arrays; deeper is a mistake or an attack
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def check_schema(schema: dict) -> dict:
    """Validate a JSON Schema for an object against its draft; UsageError naming --schema.

    Everything a schema can do wrong is found here, before any request: too large, too
    deep, a ``$ref`` that points outside the schema (a URL, a file) or at nothing.
    """
    if "properties" not in schema and isinstance(schema.get("schema"), dict):
        schema = schema["schema"]  # OpenAI response_format {"name", "schema", "strict"} wrapper
    _check_size(schema)
    _check_refs(schema)
    if not any(k in schema for k in _OBJECT_KEYWORDS):
        raise UsageError(
            '--schema does not look like a JSON Schema; expected {"type": "object", '
            '"properties": {...}}'
        )
    if schema.get("type", "object") != "object":
        raise UsageError(f"--schema must describe a JSON object, not type {schema['type']!r}")
    _check_against_metaschema(schema)
    return schema


def _check_size(schema: dict) -> None:
    """At most MAX_SCHEMA_BYTES as JSON and MAX_SCHEMA_DEPTH levels deep (walked, not recursed)."""
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise UsageError(f"--schema is nested more than {MAX_SCHEMA_DEPTH} levels deep")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_SCHEMA_BYTES:
        raise UsageError(f"--schema is {size:,} bytes; at most {MAX_SCHEMA_BYTES:,} are accepted")


def _walk(node: Any) -> Iterator[dict]:
    """Every object in a JSON value, iteratively."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _check_refs(schema: dict) -> None:
    """Every ``$ref`` points inside the schema ("#", "#/json/pointer", "#anchor") at something."""
    anchors = {n["$anchor"] for n in _walk(schema) if isinstance(n.get("$anchor"), str)}
    anchors |= {n["$dynamicAnchor"] for n in _walk(schema)
                if isinstance(n.get("$dynamicAnchor"), str)}
    for node in _walk(schema):
        for keyword in _REF_KEYWORDS:
            ref = node.get(keyword)
            if not isinstance(ref, str):
                continue
            if not ref.startswith("#"):
                raise UsageError(
                    f"--schema: {keyword} {ref!r} points outside the schema; only refs inside it "
                    "(\"#/$defs/...\") are allowed, nothing is fetched or read"
                )
            if not _ref_target_exists(schema, ref[1:], anchors):
                raise UsageError(f"--schema: {keyword} {ref!r} points at nothing in the schema")


def _ref_target_exists(root: dict, fragment: str, anchors: set[str]) -> bool:
    from urllib.parse import unquote

    if not fragment.startswith("/") and fragment:
        return fragment in anchors
    target: Any = root
    for part in unquote(fragment).split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return False
    return True


def _check_against_metaschema(schema: dict) -> None:
    """The schema's own draft checks it. With no ``$schema``, Draft 7's metaschema checks the
    keywords every draft shares (types, properties, enums...): it is about 6x faster than
    2020-12's, whose ``$dynamicRef`` costs most of the time on large schemas."""
    from jsonschema import exceptions, validators

    declared = schema.get("$schema")
    cls = validators.validator_for(schema, default=validators.Draft7Validator)
    if declared is None:
        cls = validators.Draft7Validator
    try:
        cls(cls.META_SCHEMA, registry=_local_registry()).validate(schema)
    except exceptions.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise UsageError(f"--schema: invalid JSON Schema at {where}: {exc.message}") from None


def _refuse(uri: str) -> Any:
    """The registry's retrieve: a schema never makes llamavis fetch or read anything."""
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs field


def _local_registry() -> Any:
    """A referencing Registry that knows the drafts' own metaschemas and retrieves nothing."""
    from jsonschema_specifications import REGISTRY
    from referencing import Registry

    return REGISTRY.combine(Registry(retrieve=_refuse))  # type: ignore[call-arg]  # attrs alias


def schema_from_options(fields: Sequence[str] | None, schema: str | dict | None) -> dict | None:
    """The schema a command was given: from --field or --schema (never both), else None."""
    if fields and schema is not None:
        raise UsageError("give either --field or --schema, not both")
    if fields:
        return schema_from_fields(fields)
    return load_schema(schema) if schema is not None else None


def validation_errors(schema: dict, value: Any, *, limit: int = 5) -> list[str]:
    """Human-readable reasons why ``value`` fails ``schema`` (empty when it validates)."""
    from jsonschema import validators

    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER, registry=_local_registry())
    found = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    errors = []
    for err in found[:limit]:
        where = "/".join(str(p) for p in err.absolute_path)
        message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
        errors.append(f"{where}: {message}" if where else message)
    return errors


def resolve_ref(prop: Any, root: dict) -> dict:
    """``prop`` with a local ``$ref`` ("#/$defs/item") replaced by its target; keys beside
    the ``$ref`` (a description) win. A few hops at most: refs may be circular."""
    if not isinstance(prop, dict):
        return {}
    for _ in range(8):
        ref = prop.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) \
                if isinstance(target, dict) else None
        if not isinstance(target, dict):
            break
        prop = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _type_label(prop: dict, root: dict) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return f"exactly {json.dumps(prop['const'])}"
    kind = prop.get("type", "object" if "properties" in prop else "any")
    if isinstance(kind, list):
        kind = " or ".join(map(str, kind))
    items = resolve_ref(prop.get("items"), root)
    if kind == "array" and items:
        kind = f"list of {_type_label(items, root)}"
    if "format" in prop:
        kind += f", format {prop['format']}"
    return str(kind)


def _describe(schema: dict, indent: str, lines: list[str], depth: int, root: dict) -> None:
    required = set(schema.get("required", ()))
    for name, prop in (schema.get("properties") or {}).items():
        prop = resolve_ref(prop, root)
        flags = _type_label(prop, root) + (", required" if name in required else "")
        desc = prop.get("description") or prop.get("title") or ""
        lines.append(f"{indent}- {name} ({flags})" + (f": {desc}" if desc else ""))
        nested = resolve_ref(prop.get("items"), root) if prop.get("type") == "array" else prop
        if "properties" in nested and depth < 3:
            _describe(nested, indent + "  ", lines, depth + 1, root)


def schema_prompt(schema: dict) -> str:
    """A compact, human-readable list of the schema's fields, for prompts."""
    lines: list[str] = []
    _describe(schema, "", lines, 0, schema)
    if not lines:  # no plain properties to list (e.g. only $ref / anyOf): show the schema
        return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return "\n".join(lines)
