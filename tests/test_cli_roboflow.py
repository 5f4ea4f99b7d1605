"""`llamavis roboflow`: Roboflow's Llama 3.2 Vision steps, run by the installed command on loopback."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from fakeserver import FakeServer, Reply
from test_cli_tasks import llamavis

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
KEY = "sk-or-v1-SENTINEL-roboflow-5b7e"
OTHER_KEY = "sk-di-SENTINEL-other-91aa"
ID_11B = "meta-llama/llama-3.2-11b-vision-instruct"
ID_90B = "meta-llama/llama-3.2-90b-vision-instruct"
PLACEHOLDER = "<block_does_not_provide_example>"
SCENE = {"setting": "outdoor", "main_object": "a red ball", "colours": "red, green, blue"}


def documented_step(**changes: object) -> dict:
    """The block's documented example step (Roboflow's generated docs), as users copy it."""
    doc = {
        "name": "<your_step_name_here>",
        "type": "roboflow_core/llama_3_2_vision@v1",
        "images": "$inputs.image",
        "task_type": PLACEHOLDER,
        "prompt": "my prompt",
        "output_structure": {"my_key": "description"},
        "classes": ["class-a", "class-b"],
        "api_key": "xxx-xxx",
        "model_version": "11B (Free) - OpenRouter",
        "max_tokens": PLACEHOLDER,
        "temperature": PLACEHOLDER,
        "max_concurrent_requests": PLACEHOLDER,
    }
    return {**doc, **changes}


def write(tmp_path: Path, doc: object, name: str = "wf.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return str(path)


def prompt_text(body: dict) -> str:
    return body["messages"][0]["content"][-1]["text"]


def answers(body: dict) -> str:
    """The scene object for the structured step, a sentence for the question."""
    if "setting" in prompt_text(body):
        return json.dumps(SCENE)
    return "A red ball on grass."


def folder_of_three(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("shapes.jpg", "sign.png", "receipt.png"):
        shutil.copy(EXAMPLES / name, photos / name)
    return photos


def bad_input_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert KEY not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- the block's documented example ----------------------------------------------------------


def test_documented_example_classifies_with_the_key_written_in_the_file(tmp_path):
    step = write(tmp_path, documented_step(task_type="classification", api_key=KEY))
    with FakeServer("class-b") as server:
        proc = llamavis("roboflow", step, str(EXAMPLES / "shapes.jpg"), "--json", "--no-cache",
                        "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["<your_step_name_here>"]
    assert result["output"] == "class-b"  # the model's raw text, as the block gave it
    assert result["classes"] == ["class-a", "class-b"]  # passed through, as the block does
    assert result["parsed"] == "class-b" and result["error"] is None
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert len(server.requests) == 1  # the exact class is taken at the first attempt
    assert server.requests[0]["model"] == ID_11B
    assert KEY not in proc.stdout + proc.stderr
    # OpenRouter's :free variant is gone: said once, and the regular model answers.
    assert proc.stderr.count("(Free) variants of Llama 3.2 Vision no longer exist") == 1


def test_documented_example_dry_run_and_debug_never_show_the_key(tmp_path):
    step = write(tmp_path, documented_step(task_type="classification", api_key=KEY))
    dry = llamavis("roboflow", step, str(EXAMPLES / "shapes.jpg"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    request = json.loads(dry.stdout)["requests"][0]
    assert request["headers"]["Authorization"] == "Bearer ***"
    assert request["url"] == "https://openrouter.ai/api/v1/chat/completions"
    assert KEY not in dry.stdout + dry.stderr
    with FakeServer(Reply(status=401, body={"error": {"message": f"bad key {KEY}"}})) as server:
        debug = llamavis("roboflow", step, str(EXAMPLES / "shapes.jpg"), "--debug", "--no-cache",
                         "--base-url", server.url)
    assert debug.returncode == 3 and "[debug]" in debug.stderr
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in debug.stdout + debug.stderr


def test_print_commands_prints_the_equivalent_classify_line_without_the_key(tmp_path):
    step = write(tmp_path, documented_step(task_type="classification", api_key=KEY))
    proc = llamavis("roboflow", step, "--print-commands")
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    comment, command = proc.stdout.splitlines()
    assert command == "llamavis classify IMAGE... -c class-a,class-b -P openrouter -m 11b"
    assert "OPENROUTER_API_KEY" in comment


# -- a workflow: structured 90B + VQA 11B over a folder ------------------------------------


def two_step_workflow() -> dict:
    doc = json.loads((EXAMPLES / "roboflow_workflow.json").read_text(encoding="utf-8"))
    doc["inputs"] = [i for i in doc["inputs"] if i["name"] != "question"]  # no default: must be given
    return doc


def test_workflow_runs_both_steps_on_each_image_of_a_folder(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    photos = folder_of_three(tmp_path)
    with FakeServer(answers) as server:
        proc = llamavis("roboflow", wf, "--steps", str(photos), "--json", "--no-cache", "--base-url", server.url,
                        "--input", "question=Which object is largest?",
                        "--input", f"llama_api_key={KEY}")
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(d["image"] for d in docs) == sorted(str(p) for p in photos.iterdir())
    for doc in docs:
        assert set(doc) == {"image", "scene", "answer"}
        assert doc["scene"]["parsed"] == SCENE and set(doc["scene"]["parsed"]) == set(SCENE)
        assert json.loads(doc["scene"]["output"]) == SCENE
        assert doc["scene"]["model"] == ID_90B and doc["answer"]["model"] == ID_11B
        assert doc["answer"]["parsed"] == "A red ball on grass." and doc["answer"]["classes"] is None
    assert len(server.requests) == 6
    models = {("setting" in prompt_text(b), b["model"]) for b in server.requests}
    assert models == {(True, ID_90B), (False, ID_11B)}
    questions = [prompt_text(b) for b in server.requests if b["model"] == ID_11B]
    assert all("Which object is largest?" in q for q in questions)
    assert {h["Authorization"] for h in server.headers} == {f"Bearer {KEY}"}
    assert KEY not in proc.stdout + proc.stderr
    # The json_parser step is said once as not run, for the whole batch.
    assert proc.stderr.count("scene_fields (roboflow_core/json_parser@v1)") == 1


def test_piped_text_is_one_line_per_image_per_step(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    photos = folder_of_three(tmp_path)
    with FakeServer(answers) as server:
        proc = llamavis("roboflow", wf, "--steps", str(photos), "--base-url", server.url,
                        "--input", "question=Which?", "--input", f"llama_api_key={KEY}")
    assert proc.returncode == 0, proc.stderr
    rows = sorted(line.split("\t") for line in proc.stdout.splitlines())
    expected = sorted([str(p), step, text] for p in photos.iterdir() for step, text in
                      (("scene", json.dumps(SCENE)), ("answer", "A red ball on grass.")))
    assert rows == expected


def test_printed_commands_send_the_same_requests_as_the_workflow(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    image = str(EXAMPLES / "shapes.jpg")
    common = ("--input", "question=Which object is largest?", "--input", f"llama_api_key={KEY}")
    printed = llamavis("roboflow", wf, image, "--print-commands", *common)
    assert printed.returncode == 0, printed.stderr
    commands = [shlex.split(line) for line in printed.stdout.splitlines() if not line.startswith("#")]
    assert [c[1] for c in commands] == ["structured", "vqa"]
    with FakeServer(answers) as server:
        via_workflow = llamavis("roboflow", wf, image, "--no-cache", "--base-url", server.url, *common)
        assert via_workflow.returncode == 0, via_workflow.stderr
        for argv in commands:
            plain = llamavis(*argv[1:], "--no-cache", "--base-url", server.url,
                             env={"OPENROUTER_API_KEY": KEY})
            assert plain.returncode == 0, plain.stderr
    workflow_bodies = sorted(server.requests[:2], key=lambda b: b["model"], reverse=True)
    assert [strip_stream(b) for b in workflow_bodies] == [strip_stream(b) for b in server.requests[2:]]


def strip_stream(body: dict) -> dict:
    """The request without the streaming switch (a single plain answer streams on a terminal)."""
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


# -- routes, options, concurrency ------------------------------------------------------------


def test_step_key_is_not_sent_to_another_provider_chosen_with_P(tmp_path):
    step = write(tmp_path, documented_step(task_type="caption", api_key=KEY))
    with FakeServer("A ball.") as server:
        proc = llamavis("roboflow", step, str(EXAMPLES / "shapes.jpg"), "-P", "deepinfra",
                        "--no-cache", "--base-url", server.url, env={"DEEPINFRA_API_KEY": OTHER_KEY})
    assert proc.returncode == 0, proc.stderr
    assert server.headers[0]["Authorization"] == f"Bearer {OTHER_KEY}"
    assert server.requests[0]["model"] == "meta-llama/Llama-3.2-11B-Vision-Instruct"
    assert "is for openrouter, so it is not sent to deepinfra" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr


def test_command_line_options_win_over_step_fields(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    args = ("roboflow", wf, str(EXAMPLES / "shapes.jpg"), "--no-cache",
            "--input", "question=Which?", "--input", f"llama_api_key={KEY}")
    with FakeServer(answers) as server:
        own = llamavis(*args, "--base-url", server.url)
        forced = llamavis(*args, "--base-url", server.url, "-m", "11b", "--max-tokens", "77",
                          "--temperature", "0.9")
    assert own.returncode == 0 and forced.returncode == 0, own.stderr + forced.stderr
    scene_own = next(b for b in server.requests[:2] if "setting" in prompt_text(b))
    assert (scene_own["model"], scene_own["max_tokens"], scene_own["temperature"]) == (ID_90B, 300, 0.1)
    for body in server.requests[2:]:
        assert (body["model"], body["max_tokens"], body["temperature"]) == (ID_11B, 77, 0.9)


def test_each_step_keeps_its_own_concurrency(tmp_path):
    slow = write(tmp_path, documented_step(task_type="caption", api_key=KEY, max_concurrent_requests=1))
    photos = folder_of_three(tmp_path)
    with FakeServer(Reply(text="A picture.", delay=0.05)) as server:
        proc = llamavis("roboflow", slow, str(photos), "--no-cache", "--base-url", server.url)
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) == 3 and server.max_in_flight == 1


def test_rerun_is_answered_from_the_cache(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    photos = folder_of_three(tmp_path)
    args = ("roboflow", wf, "--steps", str(photos), "--jsonl", "--usage",
            "--input", "question=Which?", "--input", f"llama_api_key={KEY}")
    with FakeServer(answers) as server:
        first = llamavis(*args, "--base-url", server.url)
        again = llamavis(*args, "--base-url", server.url)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert len(server.requests) == 6  # not one more
    assert "3 cached" in again.stderr
    by_image = {json.loads(line)["image"]: json.loads(line) for line in first.stdout.splitlines()}
    for line in again.stdout.splitlines():
        doc = json.loads(line)
        assert doc == by_image[doc["image"]]


def test_a_failed_step_exits_1_and_keeps_the_other_steps_answer(tmp_path):
    wf = write(tmp_path, two_step_workflow())

    def reply(body: dict) -> object:
        return Reply(status=400, body={"error": {"message": "bad request"}}) if body["model"] == ID_11B \
            else json.dumps(SCENE)

    with FakeServer(reply) as server:
        proc = llamavis("roboflow", wf, "--steps", str(EXAMPLES / "shapes.jpg"), "--json", "--no-cache",
                        "--base-url", server.url, "--input", "question=Which?",
                        "--input", f"llama_api_key={KEY}")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["scene"]["parsed"] == SCENE
    assert doc["answer"]["output"] is None and doc["answer"]["parsed"] is None
    assert doc["answer"]["error"]["kind"] == "provider"
    assert "step 'answer'" in proc.stderr and KEY not in proc.stderr


# -- bad input: one line, exit 2, no traceback, no key ---------------------------------------


def test_unknown_task_type_exits_2_listing_the_valid_ones(tmp_path):
    step = write(tmp_path, documented_step(task_type="object-detection", api_key=KEY))
    line = bad_input_line(llamavis("roboflow", step, str(EXAMPLES / "shapes.jpg")))
    assert "unknown task_type 'object-detection'" in line
    assert ("unconstrained, ocr, structured-answering, classification, multi-label-classification, "
            "visual-question-answering, caption, detailed-caption") in line


def test_unbound_input_exits_2_naming_it(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    line = bad_input_line(llamavis("roboflow", wf, str(EXAMPLES / "shapes.jpg"),
                                   "--input", f"llama_api_key={KEY}"))
    assert "$inputs.question" in line and "--input question=VALUE" in line


@pytest.mark.parametrize(("task_type", "dropped", "needs"), [
    ("classification", "classes", "needs classes"),
    ("multi-label-classification", "classes", "needs classes"),
    ("visual-question-answering", "prompt", "needs prompt"),
    ("unconstrained", "prompt", "needs prompt"),
    ("structured-answering", "output_structure", "needs output_structure"),
])
def test_a_step_missing_what_its_task_needs_exits_2(tmp_path, task_type, dropped, needs):
    doc = documented_step(task_type=task_type, api_key=KEY)
    del doc[dropped]
    line = bad_input_line(llamavis("roboflow", write(tmp_path, doc), str(EXAMPLES / "shapes.jpg")))
    assert f"task_type {task_type} {needs}" in line


def test_a_file_that_is_not_json_exits_2(tmp_path):
    path = tmp_path / "wf.json"
    path.write_text('{"api_key": "' + KEY + '", oops}', encoding="utf-8")
    line = bad_input_line(llamavis("roboflow", str(path), str(EXAMPLES / "shapes.jpg")))
    assert f"{path} is not JSON" in line and "line 1" in line


def test_a_file_with_no_llama_step_exits_2(tmp_path):
    doc = {"version": "1.0", "inputs": [], "outputs": [],
           "steps": [{"type": "roboflow_core/json_parser@v1", "name": "p", "raw_json": "x"}]}
    line = bad_input_line(llamavis("roboflow", write(tmp_path, doc), str(EXAMPLES / "shapes.jpg")))
    assert "has no roboflow_core/llama_3_2_vision@v1 step" in line


def test_a_missing_file_exits_2(tmp_path):
    line = bad_input_line(llamavis("roboflow", str(tmp_path / "nope.json"), str(EXAMPLES / "shapes.jpg")))
    assert "nope.json: no such file" in line


def test_no_key_anywhere_exits_3_saying_where_to_put_it(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    proc = llamavis("roboflow", wf, str(EXAMPLES / "shapes.jpg"), "--input", "question=Which?")
    assert proc.returncode == 3, proc.stderr
    assert "OPENROUTER_API_KEY" in proc.stderr and "--input llama_api_key=KEY" in proc.stderr


def test_an_image_on_standard_input_is_read_once_for_every_step(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    with FakeServer(answers) as server:
        proc = llamavis("roboflow", wf, "--steps", "-", "--no-cache", "--base-url", server.url,
                        "--input", "question=Which?", "--input", f"llama_api_key={KEY}",
                        input=(EXAMPLES / "shapes.jpg").read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == sorted(
        [f"-\tscene\t{json.dumps(SCENE)}", "-\tanswer\tA red ball on grass."])
    sent = {b["messages"][0]["content"][0]["image_url"]["url"] for b in server.requests}
    assert len(server.requests) == 2 and len(sent) == 1  # both steps saw the same image


def test_an_image_on_standard_input_is_read_once_for_every_step_with_the_cache_on(tmp_path):
    wf = write(tmp_path, two_step_workflow())
    args = ("roboflow", wf, "--steps", "-", "--input", "question=Which?", "--input", f"llama_api_key={KEY}")
    image = (EXAMPLES / "shapes.jpg").read_bytes()
    with FakeServer(answers) as server:
        first = llamavis(*args, "--base-url", server.url, input=image)
        again = llamavis(*args, "--base-url", server.url, input=image)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert len(server.requests) == 2  # both steps asked once; the re-run is all cached
    assert sorted(again.stdout.splitlines()) == sorted(first.stdout.splitlines()) == sorted(
        [f"-\tscene\t{json.dumps(SCENE)}", "-\tanswer\tA red ball on grass."])
