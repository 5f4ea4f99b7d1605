"""Reading Roboflow Llama steps: bindings, fields, routes and the equivalent commands (in-process)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from llamavis.errors import UsageError
from llamavis.roboflow import plan as roboflow_plan
from llamavis.roboflow import workflow as roboflow
from llamavis.run.options import RunOptions

KEY = "sk-or-v1-SENTINEL-unit-4d2e"
LLAMA = roboflow.BLOCK_TYPE


def write(tmp_path: Path, doc: object, name: str = "wf.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def step(**fields: object) -> dict:
    return {"type": LLAMA, "name": "s", "images": "$inputs.image", **fields}


def workflow(*steps: dict, inputs: list[dict] | None = None) -> dict:
    return {"version": "1.0", "inputs": inputs or [{"type": "WorkflowImage", "name": "image"}],
            "steps": list(steps), "outputs": []}


def load_one(tmp_path: Path, doc: object, **given: str) -> roboflow.Step:
    return roboflow.load(write(tmp_path, doc), given).steps[0]


def test_input_given_on_the_command_line_wins_over_the_default_value(tmp_path):
    doc = workflow(step(task_type="visual-question-answering", prompt="$inputs.q"),
                   inputs=[{"type": "WorkflowParameter", "name": "q", "default_value": "default?"}])
    assert load_one(tmp_path, doc).prompt == "default?"
    assert load_one(tmp_path, doc, q="given?").prompt == "given?"


@pytest.mark.parametrize("value", ["cat, dog ,bird", '["cat", "dog", "bird"]'])
def test_classes_from_an_input_take_a_comma_list_or_json(tmp_path, value):
    doc = workflow(step(task_type="multi-label-classification", classes="$inputs.classes"))
    assert load_one(tmp_path, doc, classes=value).classes == ["cat", "dog", "bird"]


def test_output_structure_from_an_input_is_json_and_a_bad_one_names_the_step(tmp_path):
    doc = workflow(step(task_type="structured-answering", output_structure="$inputs.shape"))
    assert load_one(tmp_path, doc, shape='{"total": "amount paid"}').output_structure == {
        "total": "amount paid"}
    with pytest.raises(UsageError, match="step 's': output_structure must be a JSON object"):
        load_one(tmp_path, doc, shape="total=amount")


def test_documented_placeholders_count_as_fields_left_out(tmp_path):
    doc = step(task_type="caption", max_tokens="<block_does_not_provide_example>",
               temperature="<block_does_not_provide_example>",
               max_concurrent_requests="<block_does_not_provide_example>")
    got = load_one(tmp_path, doc)
    assert (got.max_tokens, got.temperature, got.concurrency) == (None, None, None)


def test_numbers_from_inputs_are_read_and_checked(tmp_path):
    doc = step(task_type="ocr", max_tokens="$inputs.n", temperature="$inputs.t")
    got = load_one(tmp_path, doc, n="300", t="0.5")
    assert (got.max_tokens, got.temperature) == (300, 0.5)
    with pytest.raises(UsageError, match="temperature must be between 0.0 and 2.0"):
        load_one(tmp_path, doc, n="300", t="3")


def test_a_field_from_another_steps_output_is_a_usage_error(tmp_path):
    doc = workflow(step(task_type="unconstrained", prompt="$steps.other.output"))
    with pytest.raises(UsageError, match=r"prompt comes from \$steps.other.output"):
        load_one(tmp_path, doc)


def test_an_unbound_key_falls_back_to_the_usual_key_sources(tmp_path):
    doc = workflow(step(task_type="caption", api_key="$inputs.llama_api_key"))
    got = load_one(tmp_path, doc)
    assert got.api_key is None and got.key_input == "llama_api_key"
    assert load_one(tmp_path, doc, llama_api_key=KEY).api_key == KEY


def test_the_key_is_not_in_a_steps_repr(tmp_path):
    got = load_one(tmp_path, step(task_type="caption", api_key=KEY))
    assert KEY not in repr(got)


def test_the_roboflow_api_specification_wrapper_is_read(tmp_path):
    doc = {"specification": workflow(step(task_type="caption"))}
    assert load_one(tmp_path, doc).task == "caption"


def test_steps_without_a_name_are_numbered_and_duplicates_are_refused(tmp_path):
    doc = workflow({"type": "roboflow_core/json_parser@v1"}, {"type": LLAMA, "task_type": "ocr"})
    loaded = roboflow.load(write(tmp_path, doc), {})
    assert [s.name for s in loaded.steps] == ["step_2"]
    assert loaded.not_run == [("step_1", "roboflow_core/json_parser@v1")]
    twice = workflow(step(task_type="ocr"), step(task_type="caption"))
    with pytest.raises(UsageError, match="two steps are named 's'"):
        roboflow.load(write(tmp_path, twice), {})


def test_an_input_no_step_uses_is_noted(tmp_path):
    loaded = roboflow.load(write(tmp_path, step(task_type="ocr")), {"typo": "x"})
    assert loaded.notes == ["--input typo: no Llama step uses it"]


def test_model_version_picks_the_size_and_unknown_ones_are_listed(tmp_path):
    assert load_one(tmp_path, step(task_type="ocr")).size == "11b"  # the block's default
    assert load_one(tmp_path, step(task_type="ocr", model_version="90B (Free) - OpenRouter")).size == "90b"
    with pytest.raises(UsageError, match=r"unknown model_version 'gpt-4o'; choose one of: 11B \(Free\)"):
        load_one(tmp_path, step(task_type="ocr", model_version="gpt-4o"))


# -- routes and options ----------------------------------------------------------------------


def test_the_steps_key_goes_only_to_the_route_its_model_version_names(tmp_path):
    got = load_one(tmp_path, step(task_type="caption", api_key=KEY))
    assert roboflow_plan.route(got, {}) == ("openrouter", KEY)
    assert roboflow_plan.route(got, {"provider": "openrouter"}) == ("openrouter", KEY)
    assert roboflow_plan.route(got, {"provider": "deepinfra"}) == ("deepinfra", None)
    assert roboflow_plan.route(got, {"provider": "deepinfra", "api_key": "other"}) == ("deepinfra", "other")


def test_command_line_options_win_over_step_fields_and_fields_over_defaults(tmp_path):
    got = load_one(tmp_path, step(task_type="ocr", model_version="90B (Regular) - OpenRouter",
                                  max_tokens=300, temperature=0.4, max_concurrent_requests=2))
    options = roboflow_plan.step_options(got, RunOptions())
    assert (options.provider, options.api_key, options.model) == ("openrouter", None, "90b")
    assert (options.max_tokens, options.temperature, options.concurrency) == (300, 0.4, 2)
    cli = RunOptions(model="11b", max_tokens=50, temperature=0.0, concurrency=9)
    options = roboflow_plan.step_options(got, cli)
    assert (options.model, options.max_tokens, options.temperature) == ("11b", 50, 0.0)
    assert options.concurrency == 9
    bare = load_one(tmp_path, step(task_type="ocr"))
    assert roboflow_plan.step_options(bare, RunOptions()).concurrency is None  # the session's 4


def test_the_runs_other_options_are_kept_for_each_step(tmp_path):
    got = load_one(tmp_path, step(task_type="ocr"))
    base = RunOptions(seed=7, fallback="deepinfra", engine={"device": "cpu"}, timeout=9.0)
    options = roboflow_plan.step_options(got, base)
    assert (options.seed, options.fallback, options.timeout) == (7, "deepinfra", 9.0)
    assert options.engine.device == "cpu" and options.provider == "openrouter"


def test_print_commands_quote_fields_and_name_the_key_variable_not_the_key(tmp_path):
    doc = workflow(
        step(name="fields", task_type="structured-answering", api_key=KEY,
             output_structure={"shop": "shop's name", "total": "amount = paid"}),
        step(name="odd", task_type="structured-answering", output_structure={"a b int": "x"}),
    )
    lines = roboflow_plan.command_lines(roboflow.load(write(tmp_path, doc), {}), {"images": ["my dir"]})
    assert all(KEY not in line for line in lines)
    assert "set OPENROUTER_API_KEY to the step's api_key" in lines[0]
    argv = shlex.split(lines[1])
    assert argv[:4] == ["llamavis", "structured", "my dir", "--field"]
    assert argv[4:7] == ["shop=shop's name", "--field", "total=amount = paid"]
    odd = shlex.split(lines[3])
    assert odd[odd.index("--schema") + 1].startswith('{"type": "object"')
    assert json.loads(odd[odd.index("--schema") + 1])["required"] == ["a b int"]


def test_images_from_another_step_are_noted_and_the_image_arguments_used(tmp_path):
    doc = workflow(step(task_type="ocr", images="$steps.crop.crops"))
    loaded = roboflow.load(write(tmp_path, doc), {})
    assert loaded.notes == ["step 's' takes its images from $steps.crop.crops, which is not run: "
                            "it is given the IMAGE arguments instead"]


@pytest.mark.parametrize(("value", "message"), [
    ("3.5", "max_tokens must be a whole number"), ("many", "max_tokens must be a whole number"),
    (True, "max_tokens must be a whole number"), ("0", "max_tokens must be 1 or more"),
])
def test_a_bad_max_tokens_names_the_step_and_field(tmp_path, value, message):
    with pytest.raises(UsageError, match=f"step 's': {message}"):
        load_one(tmp_path, step(task_type="ocr", max_tokens=value))
