"""The task table: adding a task is one TaskSpec, and every part of llamavis reads it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
import typer
from typer.testing import CliRunner

import llamavis
from llamavis.cli import commands
from llamavis.cli.output.term import answer_renderable
from llamavis.cli.output.writers import SidecarWriter
from llamavis.run.session import RunOptions, Session, TaskArgs
from llamavis.tasks import specs as taskspecs


def build_config(task, **kwargs):
    """A task's config the way every run resolves it: through a Session."""
    options, args = RunOptions.split(kwargs)
    return Session(options).config(TaskArgs(task, **args))

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = "http://127.0.0.1:8000/v1"


def answer(text: str) -> httpx.Response:
    return httpx.Response(200, json={
        "id": "x", "model": "m", "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
    })


@pytest.fixture
def pick_one():
    """A throwaway task: one class out of the user's, answer as JSON sidecars, its own help."""
    spec = taskspecs.register(taskspecs.TaskSpec(
        "pick-one", "Pick the one class that fits best.", ("llamavis pick-one x.jpg -c a,b",),
        params=("classes",), output="class", checker=taskspecs.one_class, json_sidecar=True,
        min_classes=2, template="classify", image_purpose="text",
    ))
    yield spec
    taskspecs.unregister("pick-one")


@respx.mock
def test_a_registered_task_runs_through_the_library_and_checks_its_answer(respx_mock, pick_one):
    route = respx_mock.post(f"{BASE}/chat/completions").mock(return_value=answer("It is a DOG."))
    result = llamavis.analyze(str(EXAMPLES / "shapes.jpg"), task="pick-one", classes="cat,dog",
                              provider="local", base_url=BASE, cache=False)
    assert result.ok and result.task == "pick-one" and result.output == "dog"
    sent = json.loads(route.calls[0].request.content)
    assert "- cat\n- dog" in sent["messages"][0]["content"][1]["text"]  # the classify template


def test_a_registered_task_gets_its_up_front_checks_and_image_purpose(pick_one):
    with pytest.raises(llamavis.UsageError, match="pick-one needs at least two classes"):
        build_config("pick-one", classes=["cat"], provider="local")
    assert build_config("pick-one", classes=["a", "b"], provider="local").image_purpose == "text"


def test_a_registered_task_gets_a_command_with_its_help_example_and_options(pick_one):
    app = typer.Typer()
    commands.register(app)
    shown = CliRunner().invoke(app, ["pick-one", "--help"], env={"COLUMNS": "120", "TERM": "dumb"})
    assert shown.exit_code == 0
    assert "Pick the one class that fits best." in shown.output
    assert "llamavis pick-one x.jpg -c a,b" in shown.output and "--classes" in shown.output
    assert "--question" not in shown.output


def test_a_registered_task_chooses_its_sidecar_suffix_and_rendering(tmp_path, pick_one):
    assert SidecarWriter(tmp_path, task="pick-one").suffix == ".json"
    assert type(answer_renderable("pick-one", "dog")).__name__ == "Text"
    assert type(answer_renderable("caption", "a dog")).__name__ == "Markdown"


def test_every_task_in_the_table_is_a_command_with_a_template():
    from llamavis.cli.main import app
    from llamavis.tasks import prompts

    registered = {c.name for c in app.registered_commands}
    for name, spec in taskspecs.TASKS.items():
        assert name in registered
        assert prompts.get(spec.default_template).name == spec.default_template


def test_an_unknown_task_is_a_usage_error_that_lists_the_tasks():
    with pytest.raises(llamavis.UsageError, match="unknown task 'poem'.*caption, detailed-caption"):
        build_config("poem", provider="local")
