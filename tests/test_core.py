"""One core under the command line and the Python API: typed options, the same defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
import respx

import llamavis
from llamavis.cli import commands
from llamavis.cli import options as cli_options
from llamavis.cli.invocation import Invocation
from llamavis.providers import resolve as resolver
from llamavis.run.session import RunOptions, Session, TaskArgs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = "http://127.0.0.1:8000/v1"


def answer(text: str) -> httpx.Response:
    return httpx.Response(200, json={
        "id": "x", "model": "m", "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
    })


def cli_defaults() -> dict[str, object]:
    params = [*cli_options.COMMON, *(p for ps in commands.PARAM_OPTIONS.values() for p in ps)]
    return {name: default for name, _, default in params}


def test_every_command_option_is_a_typed_field_with_the_same_default():
    fields = {f.name: f.default for f in dataclasses.fields(Invocation)}
    for name, default in cli_defaults().items():
        assert name in fields, f"--{name} has no field in cli.invocation.Invocation"
        assert fields[name] == default, name


def test_the_api_and_the_command_line_share_their_defaults():
    run = RunOptions()
    cli = Invocation().run_options()
    assert run == cli
    assert run.cache is True and run.concurrency == cli_defaults()["concurrency"]
    assert run.timeout == cli_defaults()["timeout"] and run.max_retries == cli_defaults()["max_retries"]


def test_a_misspelt_option_fails_instead_of_taking_a_default():
    with pytest.raises(TypeError, match="concurency"):
        llamavis.analyze(str(EXAMPLES / "shapes.jpg"), provider="local", base_url=BASE, concurency=3)
    with pytest.raises(TypeError):
        Invocation(**{"no_cahce": True})


@respx.mock
def test_the_api_caches_answers_by_default_and_cache_false_asks_again(respx_mock):
    route = respx_mock.post(f"{BASE}/chat/completions").mock(return_value=answer("A red ball."))
    image = str(EXAMPLES / "shapes.jpg")
    first = llamavis.analyze(image, provider="local", base_url=BASE)
    again = llamavis.analyze(image, provider="local", base_url=BASE)
    assert (first.cached, again.cached) == (False, True) and again.output == "A red ball."
    assert again.attempts == 0 and route.call_count == 1
    fresh = llamavis.analyze(image, provider="local", base_url=BASE, cache=False)
    assert not fresh.cached and route.call_count == 2


def test_a_session_reads_the_keys_once_for_every_task_it_runs(monkeypatch):
    reads = []
    real = resolver.load_keys
    monkeypatch.setattr(resolver, "load_keys", lambda: reads.append(1) or real())
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    session = Session(RunOptions())
    caption = session.config(TaskArgs("caption"))
    ocr = session.config(TaskArgs("ocr"))
    again = session.config(TaskArgs("caption"))
    assert len(reads) == 1
    assert again is caption and ocr.task == "ocr" and ocr.route == caption.route
    assert caption.provider.name == "openrouter"


def test_a_task_mistake_is_reported_before_a_missing_key():
    # `llamavis classify x.jpg` with no key and no classes: the usage error comes first.
    session = Session(RunOptions(provider="openrouter"))
    with pytest.raises(llamavis.UsageError, match="classify needs classes"):
        session.config(TaskArgs("classify"))
    with pytest.raises(llamavis.ConfigError, match="OPENROUTER_API_KEY"):
        session.config(TaskArgs("caption"))
