"""Roboflow's formatter blocks that pair with the Llama block, with Roboflow's own semantics.

After roboflow/inference, ``core_steps/formatters/``: ``vlm_as_classifier@v1`` and ``@v2``
(the same parse; v2 only retypes ``inference_id``), ``json_parser@v1`` and
``property_definition@v1`` with the operations Llama workflows use
(``common/query_language/operations``). Each function returns the block's outputs as
Roboflow's execution engine gives them. The parse is Roboflow's (a ```json block or the
whole text, ``json.loads``); where it fails on an answer llamavis validated (llamavis'
classify prompt answers a bare class name, not Roboflow's JSON), the caller passes that
validated value as ``fallback`` and it is read the way Roboflow reads its own JSON.
Pure: no network, no image decoding.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from llamavis.errors import UsageError

VLM_AS_CLASSIFIER = ("roboflow_core/vlm_as_classifier@v1", "roboflow_core/vlm_as_classifier@v2")
JSON_PARSER = "roboflow_core/json_parser@v1"
PROPERTY_DEFINITION = "roboflow_core/property_definition@v1"
BLOCKS = (*VLM_AS_CLASSIFIER, JSON_PARSER, PROPERTY_DEFINITION)

JSON_MARKDOWN_BLOCK_PATTERN = re.compile(r"```json([\s\S]*?)```", flags=re.IGNORECASE)

JSONObject = dict[str, Any]


def string2json(raw: Any) -> tuple[bool, Any]:
    """(error_status, parsed): the first ```json block, else the whole text, json.loads'ed."""
    try:
        blocks = JSON_MARKDOWN_BLOCK_PATTERN.findall(raw)
        return False, json.loads(blocks[0] if blocks else raw)
    except (TypeError, ValueError):
        return True, {}


# -- vlm_as_classifier ----------------------------------------------------------------------


def vlm_as_classifier(vlm_output: Any, classes: list[str], *, size: tuple[int, int] | None,
                      parent_id: str, fallback: Any = None,
                      fallback_confidence: float | None = None) -> JSONObject:
    """``error_status``, ``predictions`` (Roboflow's classification prediction), ``inference_id``.

    ``fallback``: llamavis' validated answer of the Llama step (one class, or a list of
    classes), used when Roboflow's parse of ``vlm_output`` fails.
    """
    inference_id = str(uuid.uuid4())
    out = _classify(vlm_output, classes, size, parent_id, inference_id)
    if out["error_status"] and fallback is not None:
        if isinstance(fallback, str):
            data: Any = {"class_name": fallback, "confidence": _one(fallback_confidence)}
        else:
            data = {"predicted_classes": [{"class": c, "confidence": 1.0} for c in fallback]}
        out = _classify(json.dumps(data), classes, size, parent_id, inference_id)
    return out


def _one(confidence: float | None) -> float:
    return 1.0 if confidence is None else confidence


def _classify(vlm_output: Any, classes: list[str], size: tuple[int, int] | None,
              parent_id: str, inference_id: str) -> JSONObject:
    failed: JSONObject = {"error_status": True, "predictions": None, "inference_id": inference_id}
    error, data = string2json(vlm_output)
    if error or not isinstance(data, dict):
        return failed
    try:
        if "class_name" in data and "confidence" in data:
            prediction = _multi_class(data, classes)
        elif "predicted_classes" in data:
            prediction = _multi_label(data, classes)
        else:
            return failed
    except (KeyError, TypeError, ValueError, AttributeError):  # Roboflow: any exception
        return failed
    width, height = size or (None, None)
    prediction = {"image": {"width": width, "height": height}, **prediction,
                  "inference_id": inference_id, "parent_id": parent_id}
    return {"error_status": False, "predictions": prediction, "inference_id": inference_id}


def _multi_class(data: JSONObject, classes: list[str]) -> JSONObject:
    index = {name: i for i, name in enumerate(classes)}
    top = data["class_name"]
    confidences = {top: scale_confidence(data["confidence"])}
    predictions = []
    if top not in index:
        predictions.append({"class": top, "class_id": -1, "confidence": confidences[top]})
    for name, class_id in index.items():
        predictions.append({"class": name, "class_id": class_id,
                            "confidence": confidences.get(name, 0.0)})
    return {"predictions": predictions, "top": top, "confidence": confidences[top]}


def _multi_label(data: JSONObject, classes: list[str]) -> JSONObject:
    index = {name: i for i, name in enumerate(classes)}
    found: dict[str, float] = {}
    for item in data["predicted_classes"]:
        name = item["class"]
        index.setdefault(name, -1)
        found[name] = max(found.get(name, 0.0), scale_confidence(item["confidence"]))
    predictions = {name: {"confidence": found.get(name, 0.0), "class_id": class_id}
                   for name, class_id in index.items()}
    return {"predictions": predictions, "predicted_classes": list(found)}


def scale_confidence(value: Any) -> float:
    return min(max(float(value), 0.0), 1.0)


# -- json_parser ----------------------------------------------------------------------------


def json_parser(raw_json: Any, expected_fields: list[str], *, fallback: Any = None) -> JSONObject:
    """``error_status`` and one output per expected field (None where absent).

    ``fallback``: llamavis' validated object of the Llama step, used when Roboflow's parse
    of ``raw_json`` fails or misses a field."""
    out = _parse_fields(raw_json, expected_fields)
    if out["error_status"] and isinstance(fallback, dict):
        out = _parse_fields(json.dumps(fallback), expected_fields)
    return out


def _parse_fields(raw_json: Any, expected_fields: list[str]) -> JSONObject:
    error, data = string2json(raw_json)
    if error or not hasattr(data, "get"):  # Roboflow's .get on a list fails: every field None
        return {**{f: None for f in expected_fields}, "error_status": True}
    return {**{f: data.get(f) for f in expected_fields},
            "error_status": not all(f in data for f in expected_fields)}


# -- property_definition --------------------------------------------------------------------


def _classification_property(name: str) -> Callable[[Any], Any]:
    def extract(value: Any) -> Any:
        if not isinstance(value, dict):
            raise OperationError(f"ClassificationPropertyExtract needs a classification "
                                 f"prediction, got {type(value).__name__}")
        return CLASSIFICATION_PROPERTIES[name](value)
    return extract


def _top_class(p: JSONObject) -> Any:
    return p["top"] if "top" in p else p.get("predicted_classes", [])


def _top_confidence(p: JSONObject) -> Any:
    if "confidence" in p:
        return p["confidence"]
    return [p["predictions"][c]["confidence"] for c in p.get("predicted_classes", [])]


def _top_confidence_single(p: JSONObject) -> Any:
    found = _top_confidence(p)
    return found if not isinstance(found, list) else max(found, default=0.0)


def _by_class_id(p: JSONObject, key: str) -> list[Any]:
    predictions = p["predictions"]
    if isinstance(predictions, list):
        return [item[key] for item in predictions]
    by_id = {v["class_id"]: (name if key == "class" else v[key]) for name, v in predictions.items()}
    return [by_id[i] for i in sorted(by_id)]


CLASSIFICATION_PROPERTIES: dict[str, Callable[[JSONObject], Any]] = {
    "top_class": _top_class,
    "top_class_confidence": _top_confidence,
    "top_class_confidence_single": _top_confidence_single,
    "all_classes": lambda p: _by_class_id(p, "class"),
    "all_confidences": lambda p: _by_class_id(p, "confidence"),
}


class OperationError(ValueError):
    """An operation given a value it cannot take (Roboflow's InvalidInputTypeError)."""


def _sequence_length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        raise OperationError(f"SequenceLength needs a sequence, got {type(value).__name__}") from None


def operation(step: str, spec: Mapping[str, Any]) -> Callable[[Any], Any]:
    """One operation of a property_definition step; UsageError for one llamavis lacks."""
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if kind == "ToString":
        return str
    if kind == "SequenceLength":
        return _sequence_length
    if kind == "ClassificationPropertyExtract":
        name = spec.get("property_name")
        if name not in CLASSIFICATION_PROPERTIES:
            raise UsageError(f"step {step!r}: ClassificationPropertyExtract property_name must be "
                             f"one of {', '.join(CLASSIFICATION_PROPERTIES)}, got {name!r}")
        return _classification_property(str(name))
    raise UsageError(f"step {step!r}: operation {kind!r} is not one llamavis runs "
                     "(ClassificationPropertyExtract, SequenceLength, ToString)")


def chain(step: str, operations: Any) -> Callable[[Any], Any]:
    """property_definition's operations, checked up front, applied in order."""
    if not isinstance(operations, list):
        raise UsageError(f"step {step!r}: operations must be a list")
    ops = [operation(step, spec) for spec in operations]

    def apply(value: Any) -> Any:
        for op in ops:
            value = op(value)
        return value
    return apply
