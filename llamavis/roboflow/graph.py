"""A workflow's declared ``outputs``, what they read, and their values for one image.

``plan`` walks each ``JsonField`` selector (``$steps.NAME.FIELD``, ``$steps.NAME.*``,
``$inputs.NAME``) back through the steps it reads, before any request: a block llamavis
does not run (a detection model, a crop) on that path is a UsageError naming the block
and the output; the Llama steps and formatter blocks found are what runs, the rest is
listed as skipped. ``evaluate`` gives one image's outputs, keyed by output name, as
Roboflow's execution engine returns them. A block whose input is None (a step that
failed) is not run and gives None, as Roboflow's engine skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llamavis.errors import UsageError
from llamavis.roboflow import formatters as fmt
from llamavis.roboflow.inputs import parse_classes
from llamavis.roboflow.workflow import BLOCK_TYPE, Workflow

# the fields of each formatter that hold selectors; the first one's None skips the block
_READS = {**{t: ("vlm_output", "image", "classes") for t in fmt.VLM_AS_CLASSIFIER},
          fmt.JSON_PARSER: ("raw_json",), fmt.PROPERTY_DEFINITION: ("data",)}


@dataclass(frozen=True)
class StepValue:
    """What a Llama step gave for one image: Roboflow's outputs and llamavis' validated value."""

    output: str | None
    classes: list[str] | None
    parsed: Any = None  # None when llamavis' validation failed
    confidence: float | None = None


@dataclass
class Graph:
    outputs: list[tuple[str, str]]  # (name, selector), in the file's order
    order: list[str] = field(default_factory=list)  # formatter steps, dependencies first
    llama: list[str] = field(default_factory=list)  # Llama steps an output needs
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, type) nobody reads
    workflow: Workflow | None = None
    chains: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    inputs: set[str] = field(default_factory=set)  # $inputs.NAME the outputs and formatters read

    @property
    def needs_size(self) -> bool:
        return any(self._type(n) in fmt.VLM_AS_CLASSIFIER for n in self.order)

    def _type(self, name: str) -> str:
        assert self.workflow is not None
        return str(self.workflow.raw[name].get("type"))


def selector(value: Any) -> tuple[str, str] | None:
    """("$inputs", NAME) or (STEP, FIELD or "*"); None for a value that is not a selector."""
    if not isinstance(value, str):
        return None
    if value.startswith("$inputs."):
        return "$inputs", value[len("$inputs."):]
    if value.startswith("$steps."):
        name, _, part = value[len("$steps."):].partition(".")
        return name, part or "*"
    return None


def plan(workflow: Workflow) -> Graph | None:
    """The declared outputs and what they need; None when the file declares none."""
    declared = workflow.outputs
    if not declared:
        return None
    graph = Graph(outputs=[], workflow=workflow)
    for index, item in enumerate(declared, 1):
        if not isinstance(item, dict) or not isinstance(item.get("selector"), str):
            raise UsageError(f"output {index} is not a JsonField with a selector")
        name = str(item.get("name") or f"output_{index}")
        graph.outputs.append((name, item["selector"]))
        _need(graph, item["selector"], name, set())
    graph.skipped = [(n, str(raw.get("type"))) for n, raw in workflow.raw.items()
                     if n not in graph.order and n not in graph.llama]
    return graph


def _need(graph: Graph, value: Any, output: str, path: set[str]) -> None:
    sel = selector(value)
    if sel is None or sel[0] == "$inputs":
        graph.inputs.update([sel[1]] if sel else [])
        return
    name = sel[0]
    assert graph.workflow is not None
    raw = graph.workflow.raw.get(name)
    if raw is None:
        raise UsageError(f"output {output!r} reads $steps.{name}, which is not a step of the workflow")
    if name in graph.order or name in graph.llama or name in path:
        return
    kind = str(raw.get("type"))
    if kind == BLOCK_TYPE:
        _need(graph, raw.get("images"), output, path | {name})
        graph.llama.append(name)
        return
    if kind not in _READS:
        raise UsageError(f"output {output!r} needs step {name!r} ({kind}), which llamavis does "
                         f"not run: it runs {BLOCK_TYPE} and {', '.join(fmt.BLOCKS)}; remove the "
                         "output, or run the workflow on Roboflow")
    try:
        if kind == fmt.PROPERTY_DEFINITION:
            graph.chains[name] = fmt.chain(name, raw.get("operations"))
        if kind == fmt.JSON_PARSER:
            _expected(raw, name)
    except UsageError as exc:
        raise UsageError(f"output {output!r} needs {exc}") from None
    for key in _READS[kind]:
        _need(graph, raw.get(key), output, path | {name})
    graph.order.append(name)


def _expected(raw: Mapping[str, Any], name: str) -> list[str]:
    fields = raw.get("expected_fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise UsageError(f"step {name!r}: expected_fields must be a list of names")
    return list(fields)


class _Image:
    """One image's values: the Llama steps' outputs, then each formatter's."""

    def __init__(self, graph: Graph, llama: Mapping[str, StepValue],
                 size: tuple[int, int] | None) -> None:
        assert graph.workflow is not None
        self.graph, self.llama, self.size = graph, llama, size
        self.inputs = graph.workflow.values
        self.values: dict[str, dict[str, Any] | None] = {
            name: {"output": v.output, "classes": v.classes} for name, v in llama.items()}
        self.errors: list[str] = []

    def get(self, value: Any) -> Any:
        sel = selector(value)
        if sel is None:
            return value
        name, part = sel
        if name == "$inputs":
            return self.inputs.get(part)
        outputs = self.values.get(name)
        if outputs is None or part == "*":
            return None if outputs is None else dict(outputs)
        return outputs.get(part)

    def validated(self, value: Any) -> StepValue | None:
        """The Llama step a ``$steps.NAME.output`` selector reads, if it is one."""
        sel = selector(value)
        return self.llama.get(sel[0]) if sel and sel[1] == "output" else None

    def run(self, name: str) -> dict[str, Any] | None:
        assert self.graph.workflow is not None
        raw = self.graph.workflow.raw[name]
        kind = str(raw.get("type"))
        first = self.get(raw.get(_READS[kind][0]))
        if first is None:
            return None  # Roboflow's engine does not run a step on an empty input
        if kind in fmt.VLM_AS_CLASSIFIER:
            return self._classifier(raw)
        if kind == fmt.JSON_PARSER:
            step = self.validated(raw.get("raw_json"))
            return fmt.json_parser(first, _expected(raw, name),
                                   fallback=step.parsed if step else None)
        try:
            return {"output": self.graph.chains[name](first)}
        except fmt.OperationError as exc:
            self.errors.append(f"step {name!r}: {exc}")
            return None

    def _classifier(self, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        classes = self.get(raw.get("classes"))
        if isinstance(classes, str):
            classes = parse_classes(classes, str(raw.get("name")))
        output = self.get(raw.get("vlm_output"))
        if classes is None or output is None:
            return None
        image = selector(raw.get("image"))
        step = self.validated(raw.get("vlm_output"))
        return fmt.vlm_as_classifier(
            output, list(classes), size=self.size,
            parent_id=image[1] if image else "image",
            fallback=step.parsed if step else None,
            fallback_confidence=step.confidence if step else None)


def evaluate(graph: Graph, llama: Mapping[str, StepValue],
             size: tuple[int, int] | None) -> tuple[dict[str, Any], list[str]]:
    """(one image's outputs by name, the errors of blocks that could not run on it)."""
    image = _Image(graph, llama, size)
    for name in graph.order:
        image.values[name] = image.run(name)
    return {name: image.get(sel) for name, sel in graph.outputs}, image.errors
