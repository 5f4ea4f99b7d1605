"""Roboflow's formatter blocks and declared outputs, in process: Roboflow's parse and shapes
(roboflow/inference core_steps/formatters, common/query_language/operations)."""

from __future__ import annotations

import json

import pytest

from llamavis.errors import UsageError
from llamavis.roboflow import formatters as fmt
from llamavis.roboflow import graph as roboflow_graph
from llamavis.roboflow.graph import StepValue
from llamavis.roboflow.workflow import BLOCK_TYPE, Workflow

CLASSES = ["cat", "dog"]


def classify(text: str, **kw: object) -> dict:
    return fmt.vlm_as_classifier(text, CLASSES, size=(4, 3), parent_id="image", **kw)


def test_the_first_json_markdown_block_is_parsed_else_the_whole_text():
    assert fmt.string2json('x ```json {"a": 1}``` y ```json {"a": 2}```') == (False, {"a": 1})
    assert fmt.string2json('{"a": 3}') == (False, {"a": 3})
    assert fmt.string2json("dog") == (True, {})


def test_multi_class_answer_gives_roboflows_prediction_with_unknown_class_first():
    out = classify('{"class_name": "wolf", "confidence": 1.7}')
    assert out["error_status"] is False
    p = out["predictions"]
    assert (p["top"], p["confidence"]) == ("wolf", 1.0)  # scaled into [0, 1]
    assert p["predictions"] == [{"class": "wolf", "class_id": -1, "confidence": 1.0},
                                {"class": "cat", "class_id": 0, "confidence": 0.0},
                                {"class": "dog", "class_id": 1, "confidence": 0.0}]
    assert p["image"] == {"width": 4, "height": 3} and p["parent_id"] == "image"
    assert p["inference_id"] == out["inference_id"]


def test_multi_label_keeps_each_class_highest_confidence():
    text = json.dumps({"predicted_classes": [{"class": "dog", "confidence": 0.4},
                                             {"class": "dog", "confidence": 0.9},
                                             {"class": "fox", "confidence": -2}]})
    p = classify(text)["predictions"]
    assert p["predicted_classes"] == ["dog", "fox"]
    assert p["predictions"] == {"cat": {"confidence": 0.0, "class_id": 0},
                                "dog": {"confidence": 0.9, "class_id": 1},
                                "fox": {"confidence": 0.0, "class_id": -1}}


def test_an_unparsable_answer_is_an_error_unless_llamavis_validated_one():
    failed = classify("dog")
    assert failed["error_status"] is True and failed["predictions"] is None
    rescued = classify("dog", fallback="dog", fallback_confidence=0.8)
    assert rescued["predictions"]["top"] == "dog" and rescued["predictions"]["confidence"] == 0.8
    labels = classify("cat and dog", fallback=["cat", "dog"])["predictions"]
    assert labels["predicted_classes"] == ["cat", "dog"]
    # Roboflow's own parse wins when it works
    assert classify('{"class_name": "cat", "confidence": 0.2}', fallback="dog")["predictions"]["top"] == "cat"


def test_json_parser_gives_each_expected_field_and_error_status():
    assert fmt.json_parser('```json\n{"a": 1, "b": null}\n```', ["a", "b"]) == \
        {"a": 1, "b": None, "error_status": False}
    assert fmt.json_parser('{"a": 1}', ["a", "b"]) == {"a": 1, "b": None, "error_status": True}
    assert fmt.json_parser("[1, 2]", ["a"]) == {"a": None, "error_status": True}
    assert fmt.json_parser("not json", ["a"], fallback={"a": "x"}) == {"a": "x", "error_status": False}


MULTI_CLASS = classify('{"class_name": "dog", "confidence": 0.6}')["predictions"]
MULTI_LABEL = classify(json.dumps({"predicted_classes": [{"class": "dog", "confidence": 0.3},
                                                         {"class": "cat", "confidence": 0.5}]}))["predictions"]


@pytest.mark.parametrize("prop, single, multi", [
    ("top_class", "dog", ["dog", "cat"]),
    ("top_class_confidence", 0.6, [0.3, 0.5]),
    ("top_class_confidence_single", 0.6, 0.5),
    ("all_classes", ["cat", "dog"], ["cat", "dog"]),
    ("all_confidences", [0.0, 0.6], [0.5, 0.3]),
])
def test_classification_property_extract(prop, single, multi):
    op = fmt.chain("p", [{"type": "ClassificationPropertyExtract", "property_name": prop}])
    assert op(MULTI_CLASS) == single and op(MULTI_LABEL) == multi


def test_sequence_length_and_to_string_chain_and_an_unknown_operation_is_a_usage_error():
    assert fmt.chain("p", [{"type": "SequenceLength"}, {"type": "ToString"}])(["a", "b"]) == "2"
    assert fmt.chain("p", [{"type": "ToString"}])(3) == "3"
    with pytest.raises(UsageError, match="'DetectionsFilter'"):
        fmt.chain("p", [{"type": "DetectionsFilter"}])
    with pytest.raises(fmt.OperationError):
        fmt.chain("p", [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}])("x")


def workflow(steps: list[dict], outputs: list[dict]) -> Workflow:
    return Workflow(steps=[], raw={s["name"]: s for s in steps}, outputs=outputs,
                    values={"classes": "cat,dog"})


LLAMA = {"type": BLOCK_TYPE, "name": "llama", "images": "$inputs.image"}
PARSER = {"type": "roboflow_core/vlm_as_classifier@v2", "name": "parser", "image": "$inputs.image",
          "vlm_output": "$steps.llama.output", "classes": "$inputs.classes"}
TOP = {"type": "roboflow_core/property_definition@v1", "name": "top", "data": "$steps.parser.predictions",
       "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]}
DETECT = {"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image"}


def test_plan_walks_outputs_back_and_lists_what_nobody_reads():
    graph = roboflow_graph.plan(workflow(
        [LLAMA, PARSER, TOP, DETECT],
        [{"type": "JsonField", "name": "top_class", "selector": "$steps.top.output"}]))
    assert graph is not None
    assert graph.llama == ["llama"] and graph.order == ["parser", "top"]
    assert graph.skipped == [("det", "ObjectDetectionModel")]
    assert "classes" in graph.inputs  # read by the parser: not "unused"
    outputs, errors = roboflow_graph.evaluate(graph, {"llama": StepValue("dog", None, "dog")}, (2, 2))
    assert outputs == {"top_class": "dog"} and errors == []
    failed, _ = roboflow_graph.evaluate(graph, {"llama": StepValue(None, None)}, None)
    assert failed == {"top_class": None}  # a block on an empty input is not run


def test_an_output_that_needs_an_unsupported_block_is_a_usage_error_naming_both():
    llama = {**LLAMA, "images": "$steps.crop.crops"}
    crop = {"type": "Crop", "name": "crop", "image": "$inputs.image"}
    with pytest.raises(UsageError, match=r"output 'answer' needs step 'crop' \(Crop\)"):
        roboflow_graph.plan(workflow([llama, crop], [{"type": "JsonField", "name": "answer",
                                                      "selector": "$steps.llama.output"}]))
    with pytest.raises(UsageError, match="not a step of the workflow"):
        roboflow_graph.plan(workflow([LLAMA], [{"name": "x", "selector": "$steps.nope.output"}]))


def test_no_declared_outputs_is_the_per_step_view():
    assert roboflow_graph.plan(workflow([LLAMA], [])) is None
