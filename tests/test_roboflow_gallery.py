"""Roboflow's own gallery workflows (tests/roboflow_gallery/, copied from roboflow/inference's
test_workflow_with_llama_vision.py), run by the installed command against a loopback server:
the declared outputs, exactly as Roboflow's test module asserts them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakeserver import FakeServer
from test_cli_tasks import llamavis

GALLERY = Path(__file__).resolve().parent / "roboflow_gallery"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PHOTO = str(EXAMPLES / "shapes.jpg")
KEY = "sk-or-v1-SENTINEL-gallery-77c1"
CLASSES = ["cat", "dog"]


def gallery(name: str) -> str:
    return str(GALLERY / f"{name}.json")


def run(name: str, answer: object, *args: str, images: tuple[str, ...] = (PHOTO,)):
    with FakeServer(answer) as server:
        proc = llamavis("roboflow", gallery(name), *images, "--json", "--no-cache",
                        "--base-url", server.url, "--input", f"api_key={KEY}", *args)
    assert KEY not in proc.stdout + proc.stderr
    return proc, server


@pytest.mark.parametrize("name", ["classification_workflow_with_legacy_parser",
                                  "classification_workflow"])
@pytest.mark.parametrize("classes", ['classes=["cat","dog"]', "classes=cat,dog"])
def test_classification_gives_llama_result_top_class_and_parsed_prediction(name, classes):
    proc, server = run(name, "dog", "--input", classes)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)  # one image: a list of one, as Roboflow returns
    assert set(result) == {"llama_result", "top_class", "parsed_prediction"}
    assert isinstance(result["llama_result"], str) and result["llama_result"]
    assert result["parsed_prediction"]["error_status"] is False
    assert result["top_class"] in CLASSES and result["top_class"] == "dog"
    prediction = result["parsed_prediction"]["predictions"]
    assert prediction["top"] == "dog" and prediction["confidence"] == 1.0
    assert [(p["class"], p["class_id"]) for p in prediction["predictions"]] == [("cat", 0), ("dog", 1)]
    assert prediction["image"] == {"width": 640, "height": 420}
    assert result["parsed_prediction"]["inference_id"] == prediction["inference_id"]
    assert len(server.requests) == 1
    assert "not run" not in proc.stderr  # every block is read by an output


def test_a_roboflow_shaped_json_answer_is_parsed_as_roboflow_parses_it():
    answer = 'Sure:\n```json\n{"class_name": "dog", "confidence": 0.7}\n```'
    proc, _ = run("classification_workflow", answer, "--input", "classes=cat,dog",
                  "--max-retries", "0")
    (result,) = json.loads(proc.stdout)
    assert result["llama_result"] == answer
    prediction = result["parsed_prediction"]["predictions"]
    assert (prediction["top"], prediction["confidence"]) == ("dog", 0.7)
    assert result["top_class"] == "dog"


def test_multi_label_gives_result_and_parsed_prediction():
    proc, _ = run("multi_label_classification_workflow", '["cat", "dog"]',
                  "--input", 'classes=["cat","dog"]')
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert set(result) == {"result", "parsed_prediction"}
    assert result["parsed_prediction"]["error_status"] is False
    assert result["result"] == ["cat", "dog"]  # top_class of a multi-label prediction
    predictions = result["parsed_prediction"]["predictions"]["predictions"]
    assert predictions == {"cat": {"confidence": 1.0, "class_id": 0},
                           "dog": {"confidence": 1.0, "class_id": 1}}


def test_structured_gives_llama_output_and_result_as_a_string():
    answer = json.dumps({"dogs_count": "2", "cats_count": "0"})
    proc, _ = run("structured_prompting_workflow", answer)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert set(result) == {"result", "llama_output"}
    assert result["result"] == "2" and result["llama_output"] == answer


@pytest.mark.parametrize("name", ["unconstrained_workflow", "vqa_workflow", "ocr_workflow",
                                  "caption_workflow"])
def test_single_step_workflows_give_result(name):
    proc, _ = run(name, "A red ball on grass.", "--input", "prompt=What is shown?")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"result": "A red ball on grass."}]


def test_one_object_per_image_in_input_order(make_image):
    images = tuple(str(make_image(f"p{i}.png", color=(i * 60, 90, 30))) for i in range(3))
    with FakeServer("cat") as server:
        proc = llamavis("roboflow", gallery("classification_workflow"), *images, "--jsonl",
                        "--no-cache", "-j", "3", "--base-url", server.url,
                        "--input", f"api_key={KEY}", "--input", "classes=cat,dog")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["top_class"] for r in rows] == ["cat"] * 3 and len(server.requests) == 3


def test_a_workflow_needing_a_detection_model_exits_2_with_zero_requests():
    proc, server = run("vlm_as_secondary_classifier_workflow", "beagle")
    assert proc.returncode == 2 and proc.stdout == ""
    assert server.requests == []
    (line,) = proc.stderr.splitlines()
    assert "'predictions'" in line and "roboflow_core/detections_classes_replacement@v1" in line


def test_steps_gives_the_per_step_view_and_notes_the_formatters():
    proc, _ = run("classification_workflow", "dog", "--input", "classes=cat,dog", "--steps")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["llama"]["parsed"] == "dog" and doc["image"] == PHOTO
    assert "not run (not roboflow_core/llama_3_2_vision@v1 steps): parser" in proc.stderr


def test_inputs_file_gives_all_parameters_and_input_wins(tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"classes": ["cat", "dog"], "api_key": "from-file"}))
    proc, server = run("classification_workflow", "cat", "--inputs", str(params))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["top_class"] == "cat"
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"  # --input api_key won


def test_a_failed_llama_step_exits_1_with_its_outputs_null():
    from fakeserver import Reply

    proc, _ = run("classification_workflow", Reply(status=400, body={"error": {"message": "bad"}}),
                  "--input", "classes=cat,dog")
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == [{"llama_result": None, "top_class": None,
                                        "parsed_prediction": None}]
    assert "step 'llama'" in proc.stderr or "bad" in proc.stderr


def test_an_operation_llamavis_lacks_exits_2_before_any_request(tmp_path):
    doc = json.loads(Path(gallery("structured_prompting_workflow")).read_text())
    doc["steps"][2]["operations"] = [{"type": "StringToUpperCase"}]
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(doc))
    with FakeServer("{}") as server:
        proc = llamavis("roboflow", str(path), PHOTO, "--input", f"api_key={KEY}",
                        "--base-url", server.url)
    assert proc.returncode == 2 and server.requests == []
    assert "'StringToUpperCase'" in proc.stderr and "property_definition" in proc.stderr


def test_piped_text_is_one_line_per_image_per_output():
    with FakeServer("dog") as server:
        proc = llamavis("roboflow", gallery("classification_workflow"), PHOTO, "--no-cache",
                        "--base-url", server.url, "--input", f"api_key={KEY}",
                        "--input", "classes=cat,dog")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == [f"{PHOTO}\tllama_result\tdog", f"{PHOTO}\ttop_class\tdog"]
    assert lines[2].startswith(f"{PHOTO}\tparsed_prediction\t{{")
