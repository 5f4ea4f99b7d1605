"""Roboflow's "Llama 3.2 Vision" workflow block (``roboflow_core/llama_3_2_vision@v1``), read.

The block was deprecated when OpenRouter stopped serving the model; its users still have
workflow JSON with Llama steps in it. This module reads a step or a whole workflow, fills
``$inputs.NAME`` bindings, checks each step as the block's manifest did, and says how each
maps onto a llamavis task, route and options. Running them is ``roboflow_run``'s job; this
module touches no network and no image, and imports neither typer nor rich.

Field by field, after the block's manifest (roboflow/inference,
``core_steps/models/foundation/llama_vision/v1.py``): ``task_type`` (default
``unconstrained``), ``prompt``, ``classes``, ``output_structure``, ``api_key``,
``model_version`` (default ``11B (Free) - OpenRouter``), ``max_tokens``, ``temperature``,
``max_concurrent_requests``. A field the step leaves out takes llamavis' default for the
task (its prompts differ from the block's: the block sent a system message beside the
image, which Llama 3.2 Vision's chat template rejects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamavis.errors import UsageError
from llamavis.roboflow.inputs import json_or_none, parse_classes

BLOCK_TYPE = "roboflow_core/llama_3_2_vision@v1"
ROUTE = "openrouter"  # the only route every model_version names

# The block's task types, in its own order, and the llamavis task each one is.
TASKS = {
    "unconstrained": "prompt",
    "ocr": "ocr",
    "structured-answering": "structured",
    "classification": "classify",
    "multi-label-classification": "multi-classify",
    "visual-question-answering": "vqa",
    "caption": "caption",
    "detailed-caption": "detailed-caption",
}
NEEDS = {  # what the block's validator required per task type
    "unconstrained": "prompt", "visual-question-answering": "prompt",
    "classification": "classes", "multi-label-classification": "classes",
    "structured-answering": "output_structure",
}
MODEL_VERSIONS = {
    "11B (Free) - OpenRouter": "11b", "11B (Regular) - OpenRouter": "11b",
    "90B (Free) - OpenRouter": "90b", "90B (Regular) - OpenRouter": "90b",
}
DEFAULT_TASK_TYPE = "unconstrained"
DEFAULT_MODEL_VERSION = "11B (Free) - OpenRouter"
# Roboflow's generated docs fill fields without an example with this: not a value.
PLACEHOLDER = "<block_does_not_provide_example>"
# Other steps' outputs cannot be given to a Llama step run on its own.
_NOT_RUN_HINT = "write the value into the step, or bind it to an input and give --input"


@dataclass(frozen=True)
class Step:
    """One Llama step, its bindings filled and its fields checked."""

    name: str
    task_type: str
    prompt: str | None = None
    classes: list[str] | None = None
    output_structure: dict[str, str] | None = None
    model_version: str | None = None  # None: the block's default
    max_tokens: int | None = None
    temperature: float | None = None
    concurrency: int | None = None
    api_key: str | None = field(default=None, repr=False)
    key_input: str | None = None  # the input api_key is bound to, for hints

    @property
    def task(self) -> str:
        return TASKS[self.task_type]

    @property
    def size(self) -> str:
        """'11b' or '90b': what model_version picks."""
        return MODEL_VERSIONS[self.model_version or DEFAULT_MODEL_VERSION]

    @property
    def free_variant(self) -> bool:
        return "(Free)" in (self.model_version or "")


@dataclass
class Workflow:
    """The Llama steps of a file, in definition order, and what was left aside."""

    steps: list[Step]
    not_run: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # every step, by name
    outputs: list[Any] | None = None  # the declared outputs (JsonField), if any
    values: dict[str, Any] = field(default_factory=dict)  # the inputs: given, else default


def load(path: str | Path, given: dict[str, Any]) -> Workflow:
    """Read a step or workflow file and resolve its Llama steps; UsageError on bad input."""
    doc = _read_json(Path(path))
    if isinstance(doc, dict) and isinstance(doc.get("specification"), dict):
        doc = doc["specification"]  # the Roboflow API's wrapper
    if isinstance(doc, dict) and isinstance(doc.get("steps"), list):
        raw_steps, defaults = doc["steps"], _defaults(doc.get("inputs"))
    elif isinstance(doc, dict) and "type" in doc:
        raw_steps, defaults = [doc], {}
    else:
        raise UsageError(f"{path}: neither a workflow (with \"steps\") nor one step (with \"type\")")
    bindings = _Bindings(given, defaults)
    outputs = doc.get("outputs") if "steps" in doc else None
    workflow = Workflow(steps=[], outputs=outputs if isinstance(outputs, list) else None,
                        values={**defaults, **given})
    for index, raw in enumerate(raw_steps, 1):
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: step {index} is not a JSON object")
        name = raw["name"] if isinstance(raw.get("name"), str) and raw["name"] else f"step_{index}"
        workflow.raw[name] = raw
        if raw.get("type") != BLOCK_TYPE:
            workflow.not_run.append((name, str(raw.get("type"))))
            continue
        workflow.steps.append(_step(raw, name, bindings, workflow.notes))
    if not workflow.steps:
        raise UsageError(f"{path} has no {BLOCK_TYPE} step")
    _check_names(workflow.steps)
    unused = sorted(set(given) - bindings.used)
    if unused:
        workflow.notes.append(f"--input {', '.join(unused)}: no Llama step uses it")
    return workflow


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:  # exc.msg quotes nothing from the file: no key leaks
        raise UsageError(f"{path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _defaults(inputs: Any) -> dict[str, Any]:
    """Each workflow input's default_value, by name."""
    out: dict[str, Any] = {}
    for item in inputs if isinstance(inputs, list) else []:
        named = isinstance(item, dict) and isinstance(item.get("name"), str)
        if named and item.get("default_value") is not None:
            out[item["name"]] = item["default_value"]
    return out


class _Bindings:
    """Fills ``$inputs.NAME`` from --input (strings) or the workflow's default_value."""

    def __init__(self, given: dict[str, Any], defaults: dict[str, Any]) -> None:
        self.given, self.defaults = given, defaults
        self.used: set[str] = set()

    def value(self, raw: dict[str, Any], key: str, step: str, *, required: bool = True) -> Any:
        """A field's value, its binding filled; None when it is absent (or, not required, unbound)."""
        value = raw.get(key)
        if value is None or value == PLACEHOLDER:
            return None
        if not isinstance(value, str) or not value.startswith("$"):
            return value
        if value.startswith("$inputs."):
            name = value[len("$inputs."):]
            self.used.add(name)
            if name in self.given:
                return self.given[name]
            if name in self.defaults:
                return self.defaults[name]
            if not required:
                return None
            raise UsageError(f"step {step!r}: {key} is bound to $inputs.{name}, which has no value; "
                             f"give --input {name}=VALUE")
        raise UsageError(f"step {step!r}: {key} comes from {value}, which llamavis cannot run; "
                         + _NOT_RUN_HINT)


def _step(raw: dict[str, Any], name: str, bindings: _Bindings, notes: list[str]) -> Step:
    def get(key: str) -> Any:
        return bindings.value(raw, key, name)

    task_type = _text(get("task_type"), "task_type", name) or DEFAULT_TASK_TYPE
    if task_type not in TASKS:
        raise UsageError(f"step {name!r}: unknown task_type {task_type!r}; "
                         f"choose one of: {', '.join(TASKS)}")
    version = _text(get("model_version"), "model_version", name)
    if version is not None and version not in MODEL_VERSIONS:
        raise UsageError(f"step {name!r}: unknown model_version {version!r}; "
                         f"choose one of: {', '.join(MODEL_VERSIONS)}")
    images = raw.get("images")
    if isinstance(images, str) and images.startswith("$steps."):
        notes.append(f"step {name!r} takes its images from {images}, which is not run: "
                     "it is given the IMAGE arguments instead")
    step = Step(
        name=name, task_type=task_type,
        prompt=_text(get("prompt"), "prompt", name),
        classes=parse_classes(get("classes"), name),
        output_structure=_structure(get("output_structure"), name),
        model_version=version,
        max_tokens=_number(get("max_tokens"), "max_tokens", name, int, 1, None),
        temperature=_number(get("temperature"), "temperature", name, float, 0.0, 2.0),
        concurrency=_number(get("max_concurrent_requests"), "max_concurrent_requests", name,
                            int, 1, 512),
        # An unbound key is looked for where llamavis always looks (environment, keys file):
        # --input would show it in process lists.
        api_key=_secret(bindings.value(raw, "api_key", name, required=False), name),
        key_input=_input_name(raw.get("api_key")),
    )
    _check_needs(step)
    return step


def _input_name(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("$inputs."):
        return value[len("$inputs."):]
    return None


def _text(value: Any, key: str, step: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise UsageError(f"step {step!r}: {key} must be text")


def _secret(value: Any, step: str) -> str | None:
    if value is None or isinstance(value, str):
        return (value or "").strip() or None
    raise UsageError(f"step {step!r}: api_key must be text")  # the value is never shown


def _structure(value: Any, step: str) -> dict[str, str] | None:
    """KEY -> description; from --input as a JSON object."""
    if value is None:
        return None
    if isinstance(value, str):
        value = json_or_none(value)
    if not isinstance(value, dict) or not value or not all(isinstance(k, str) and k.strip()
                                                           for k in value):
        raise UsageError(f"step {step!r}: output_structure must be a JSON object of "
                         "KEY: description")
    return {k.strip(): "" if v is None else str(v) for k, v in value.items()}


def _number(value: Any, key: str, step: str, kind: type, low: float, high: float | None) -> Any:
    """An int or float field (a string from --input too), within its range."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if kind is int:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"step {step!r}: {key} must be {what}") from None
    if number < low or (high is not None and number > high):
        span = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise UsageError(f"step {step!r}: {key} must be {span}")
    return number


def _check_needs(step: Step) -> None:
    need = NEEDS.get(step.task_type)
    if need and getattr(step, need) is None:
        raise UsageError(f"step {step.name!r}: task_type {step.task_type} needs {need}")
    if step.task_type == "classification" and len(step.classes or []) < 2:
        raise UsageError(f"step {step.name!r}: classification needs at least two classes")


def _check_names(steps: list[Step]) -> None:
    seen: set[str] = set()
    for step in steps:
        if step.name == "image":  # the key that holds the image path in each output object
            raise UsageError("a step named 'image' would hide the image path in the output; "
                             "rename the step")
        if step.name in seen:
            raise UsageError(f"two steps are named {step.name!r}; step names must be unique")
        seen.add(step.name)
