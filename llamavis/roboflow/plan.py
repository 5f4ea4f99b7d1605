"""How each Roboflow Llama step runs in llamavis: its route, key, model and options.

Rules (issue 15): command-line options win over step fields (``-m``, ``--max-tokens``,
``--temperature``, ``-j``); with no ``-P`` the route is the one every ``model_version``
names (OpenRouter); the step's ``api_key`` is a key for that route only and is never given
to another provider picked with ``-P``. A field the step leaves out takes llamavis' default.
Keys are never part of anything printed here: ``command_lines`` names the variable to set.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from llamavis.backends.providers import get_provider
from llamavis.roboflow.workflow import (
    DEFAULT_MODEL_VERSION,
    ROUTE,
    Step,
    Workflow,
)
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.urls import shown


def chosen_provider(opts: Mapping[str, Any]) -> str | None:
    """The provider named with -P (or LLAMAVIS_PROVIDER), if it is not the step's own route."""
    name = opts.get("provider") or os.environ.get("LLAMAVIS_PROVIDER") or None
    if not name:
        return None
    spec = get_provider(name)  # a UsageError for an unknown name, before anything runs
    return None if spec.name == ROUTE else spec.name


def route(step: Step, opts: Mapping[str, Any]) -> tuple[str, str | None]:
    """(provider, key): the step's key goes only to the route its model_version names."""
    other = chosen_provider(opts)
    if other is not None:
        return other, opts.get("api_key")
    return ROUTE, opts.get("api_key") or step.api_key


def concurrency(step: Step, opts: Mapping[str, Any]) -> int | None:
    """-j, else the step's max_concurrent_requests; None: the session's default."""
    return opts.get("concurrency") or step.concurrency


def schema(step: Step) -> dict[str, Any] | None:
    """output_structure as the object schema --field KEY=DESCRIPTION builds (str or null)."""
    if step.output_structure is None:
        return None
    properties: dict[str, Any] = {}
    for key, description in step.output_structure.items():
        prop: dict[str, Any] = {"type": ["string", "null"]}
        if description:
            prop["description"] = description
        properties[key] = prop
    return {"type": "object", "properties": properties, "required": list(properties)}


def step_options(step: Step, base: RunOptions) -> RunOptions:
    """The run's options for one step: its route, key, model, max_tokens, temperature, -j.

    Everything else the user gave (``--seed``, ``--timeout``, ``--base-url``, ``--fallback``,
    the engine's ``--device``...) is the run's own and stays as it is.
    """
    opts = base.as_kwargs()
    provider, key = route(step, opts)
    return replace(
        base, provider=provider, api_key=key, model=base.model or step.size,
        max_tokens=base.max_tokens or step.max_tokens,
        temperature=_first(base.temperature, step.temperature),
        concurrency=concurrency(step, opts),
    )


def task_args(step: Step) -> TaskArgs:
    """The llamavis task of a step and what it asks (its prompt, classes or schema)."""
    if step.task == "vqa":
        return TaskArgs(step.task, question=step.prompt)
    if step.task == "prompt":
        return TaskArgs(step.task, prompt=step.prompt)
    if step.task in ("classify", "multi-classify"):
        return TaskArgs(step.task, classes=step.classes)
    if step.task == "structured":
        return TaskArgs(step.task, schema=schema(step))
    return TaskArgs(step.task)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def notes(workflow: Workflow, opts: dict[str, Any]) -> list[str]:
    """What a user should know before the run: withdrawn (Free) variants, keys left unused."""
    out = []
    free = [s for s in workflow.steps if s.free_variant]
    if free and not opts.get("model"):
        named = ", ".join(f"{s.name!r} ({s.model_version})" for s in free)
        out.append("OpenRouter's (Free) variants of Llama 3.2 Vision no longer exist; "
                   f"the regular model of the same size runs instead for {named}")
    other = chosen_provider(opts)
    keyed = [s.name for s in workflow.steps if s.api_key]
    if other and keyed:
        out.append(f"the api_key of {', '.join(map(repr, keyed))} is for {ROUTE}, so it is not "
                   f"sent to {other}, which uses its own key")
    return out


# -- --print-commands ----------------------------------------------------------------------


def command_lines(workflow: Workflow, opts: dict[str, Any]) -> list[str]:
    """For each step, a comment and the plain llamavis command that does the same."""
    lines: list[str] = []
    for step in workflow.steps:
        provider, _ = route(step, opts)
        version = step.model_version or DEFAULT_MODEL_VERSION
        lines.append(f"# {step.name}: {step.task_type}, {version}{_key_hint(step, provider, opts)}")
        lines.append(shlex.join(["llamavis", step.task, *_images(opts), *_task_args(step),
                                 *_route_args(step, provider, opts)]))
    return lines


def _key_hint(step: Step, provider: str, opts: dict[str, Any]) -> str:
    """Where the key goes instead of on the command line: never the key itself."""
    spec = get_provider(provider)
    if not spec.key_envs or not spec.key_required:
        return ""
    if provider == ROUTE and (step.api_key or opts.get("api_key")):
        return (f"; set {spec.key_envs[0]} to the step's api_key "
                f"(or store it: llamavis keys set {spec.name})")
    return f"; its key: {spec.key_envs[0]} (or llamavis keys set {spec.name})"


def _images(opts: dict[str, Any]) -> list[str]:
    args = list(opts.get("images") or [])
    if opts.get("recursive"):
        args.append("-r")
    if opts.get("files_from"):
        args += ["-T", str(opts["files_from"])]
    return args or ["IMAGE..."]


def _task_args(step: Step) -> list[str]:
    if step.task == "vqa":
        return ["-q", step.prompt or ""]
    if step.task == "prompt":
        return ["-p", step.prompt or ""]
    if step.task in ("classify", "multi-classify"):
        return ["-c", ",".join(step.classes or [])]
    if step.task == "structured":
        structure = step.output_structure or {}
        if all(_plain_key(k) for k in structure):
            return [arg for k, v in structure.items() for arg in ("--field", f"{k}={v}")]
        return ["--schema", json.dumps(schema(step), ensure_ascii=False)]
    return []


def _plain_key(key: str) -> bool:
    """A key --field reads back as itself (no type suffix, no '=' or ':')."""
    return not any(c in key for c in "=:") and len(key.split()) == 1


def _route_args(step: Step, provider: str, opts: dict[str, Any]) -> list[str]:
    args = ["-P", provider, "-m", str(opts.get("model") or step.size)]
    max_tokens = opts.get("max_tokens") or step.max_tokens
    temperature = _first(opts.get("temperature"), step.temperature)
    if max_tokens is not None:
        args += ["--max-tokens", str(max_tokens)]
    if temperature is not None:
        args += ["--temperature", f"{temperature:g}"]
    if opts.get("concurrency") or step.concurrency:
        args += ["-j", str(concurrency(step, opts))]
    for name, flag in (("base_url", "--base-url"), ("seed", "--seed"), ("fallback", "--fallback")):
        if opts.get(name) is not None:  # a URL's password or key is never printed
            args += [flag, shown(str(opts[name])) if name == "base_url" else str(opts[name])]
    return args
