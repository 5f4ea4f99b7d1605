"""A JSON Schema as the short field list a prompt shows the model."""

from __future__ import annotations

import json
from typing import Any


def resolve_ref(prop: Any, root: dict[str, Any]) -> dict[str, Any]:
    """``prop`` with a local ``$ref`` ("#/$defs/item") replaced by its target; keys beside
    the ``$ref`` (a description) win. A few hops at most: refs may be circular."""
    if not isinstance(prop, dict):
        return {}
    out: dict[str, Any] = prop
    for _ in range(8):
        ref = out.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) \
                if isinstance(target, dict) else None
        if not isinstance(target, dict):
            break
        out = {**target, **{k: v for k, v in out.items() if k != "$ref"}}
    return out


def _type_label(prop: dict[str, Any], root: dict[str, Any]) -> str:
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


def _describe(schema: dict[str, Any], indent: str, lines: list[str], depth: int, root: dict[str, Any]) -> None:
    required = set(schema.get("required", ()))
    for name, prop in (schema.get("properties") or {}).items():
        prop = resolve_ref(prop, root)
        flags = _type_label(prop, root) + (", required" if name in required else "")
        desc = prop.get("description") or prop.get("title") or ""
        lines.append(f"{indent}- {name} ({flags})" + (f": {desc}" if desc else ""))
        nested = resolve_ref(prop.get("items"), root) if prop.get("type") == "array" else prop
        if "properties" in nested and depth < 3:
            _describe(nested, indent + "  ", lines, depth + 1, root)


def schema_prompt(schema: dict[str, Any]) -> str:
    """A compact, human-readable list of the schema's fields, for prompts."""
    lines: list[str] = []
    _describe(schema, "", lines, 0, schema)
    if not lines:  # no plain properties to list (e.g. only $ref / anyOf): show the schema
        return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return "\n".join(lines)
