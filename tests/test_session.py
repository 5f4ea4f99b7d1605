"""One way in: commands, their dry run, the Python API and Roboflow all resolve through the
Session, and a dry run shows the routes a real run would use (--fallback's too)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import respx
from typer.testing import CliRunner

import llamavis
from llamavis.cli.main import app
from llamavis.run import config as settings

ROOT = Path(__file__).resolve().parent.parent
PHOTO = str(ROOT / "examples" / "shapes.jpg")
BASE = "http://127.0.0.1:8000/v1"
ENV = {"COLUMNS": "120", "TERM": "dumb"}


def answer(text: str) -> httpx.Response:
    return httpx.Response(200, json={
        "id": "x", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3},
    })


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tasks the one config builder was asked for (it still does its work)."""
    seen: list[str] = []
    real = settings.build_config

    def counting(args, options, route):  # type: ignore[no-untyped-def]
        seen.append(args.task)
        return real(args, options, route)

    monkeypatch.setattr(settings, "build_config", counting)
    return seen


def test_a_command_its_dry_run_and_the_client_all_resolve_through_the_session(resolved):
    dry = CliRunner().invoke(app, ["ocr", PHOTO, "--dry-run", "-P", "local", "--base-url", BASE,
                                   "--no-cache"], env=ENV)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["request_count"] == 1
    assert resolved == ["ocr"]

    with respx.mock(assert_all_called=True) as mock:
        mock.post(f"{BASE}/chat/completions").mock(return_value=answer("A red ball."))
        run = CliRunner().invoke(app, ["caption", PHOTO, "-P", "local", "--base-url", BASE,
                                       "--no-cache"], env=ENV)
        assert run.exit_code == 0, run.output
        assert "A red ball." in run.stdout
        assert resolved == ["ocr", "caption"]

        with llamavis.Client(provider="local", base_url=BASE, cache=False) as client:
            result = client.analyze(PHOTO, "vqa", question="What is it?")
        assert result.ok and result.output == "A red ball."
    assert resolved == ["ocr", "caption", "vqa"]


def test_only_the_session_calls_the_config_builder_and_only_run_makes_clients():
    callers, makers = [], []
    for path in sorted((ROOT / "llamavis").rglob("*.py")):
        text, name = path.read_text(), str(path.relative_to(ROOT))
        if re.search(r"\bbuild_config\(", text) and name != "llamavis/run/config.py":
            callers.append(name)
        if re.search(r"\bmake(_http)?_client\(|\bResultCache\(", text) and not (
                name.startswith(("llamavis/run/", "llamavis/backends/", "llamavis/store/"))):
            makers.append(name)
    assert callers == ["llamavis/run/session.py"]
    assert makers == []  # Roboflow's steps too: each is a Session.derive of the run's


def test_one_route_resolver_called_from_one_place():
    """Runs, fallback, the default failover, doctor, agree and models all get their routes
    from Session.routes, the one caller of providers.resolve.resolve_routes."""
    callers = []
    for path in sorted((ROOT / "llamavis").rglob("*.py")):
        text, name = path.read_text(), str(path.relative_to(ROOT))
        if name == "llamavis/providers/resolve.py":
            continue
        callers += [name] * len(re.findall(r"\bresolve_routes\(", text))
        assert not re.search(r"\b(find_key|resolve_base_url|pick_provider)\(", text) or \
            name == "llamavis/backends/providers.py" or name.startswith("llamavis/cli/admin"), name
    assert callers == ["llamavis/run/session.py"]


def test_a_dry_run_with_fallback_shows_every_route_a_run_would_ask():
    shown = CliRunner().invoke(
        app, ["caption", PHOTO, "--dry-run", "-P", "local", "--base-url", BASE,
              "--fallback", "openrouter", "--no-cache"],
        env={**ENV, "OPENROUTER_API_KEY": "sk-or-fallback-key-123456"})
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert [r["provider"] for r in doc["routes"]] == ["local", "openrouter"]
    assert doc["routes"][1]["base_url"] == "https://openrouter.ai/api/v1"
    assert doc["requests"][0]["url"] == f"{BASE}/chat/completions"  # the first route asked first
    assert "then openrouter" in shown.stderr
    assert "sk-or-fallback-key-123456" not in shown.output


def test_a_dry_run_without_fallback_names_its_one_route():
    shown = CliRunner().invoke(app, ["caption", PHOTO, "--dry-run", "-P", "local",
                                     "--base-url", BASE, "--no-cache"], env=ENV)
    assert shown.exit_code == 0, shown.output
    assert [r["provider"] for r in json.loads(shown.stdout)["routes"]] == ["local"]
    assert "then" not in shown.stderr


def test_engine_options_are_checked_once_into_a_typed_object():
    from llamavis.engine.options import EngineOptions
    from llamavis.run.options import RunOptions

    assert RunOptions(engine={"device": "cpu"}).engine == EngineOptions(device="cpu")
    with pytest.raises(llamavis.UsageError, match="--device must be one of"):
        RunOptions(engine={"device": "bogus"})


def test_a_derived_session_shares_the_cache_of_its_parent_and_closes_with_it():
    import asyncio

    from llamavis.run.options import RunOptions, TaskArgs
    from llamavis.run.session import Session

    parent = Session(RunOptions(provider="local", base_url=BASE))
    step = parent.derive(RunOptions(provider="local", base_url=BASE, max_tokens=7))
    assert step.cache is parent.cache is not None
    assert step.config(TaskArgs("caption")).params.max_tokens == 7
    asyncio.run(parent.aclose())
    assert parent._children == []
