"""Help, version, completion, README coverage, start-up imports, and golden outputs.

Golden files live in tests/golden/. After an intended change, regenerate them with

    LLAMAVIS_UPDATE_GOLDEN=1 python -m pytest tests/test_help.py

and review the diff like any other change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from llamavis.__about__ import __version__
from llamavis.cli.main import app

from fakeserver import FakeServer
from support.cli import llamavis as installed

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
STABLE = {"COLUMNS": "100", "LINES": "50", "TERM": "dumb", "NO_COLOR": "1"}
KEY = "sk-test-SENTINEL-golden-91c2"
pytestmark = pytest.mark.subprocess  # help, completion and imports as the installed command shows them


def llamavis(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             ) -> subprocess.CompletedProcess[str]:
    return installed(*args, env={**STABLE, **(env or {})}, cwd=cwd, timeout=60)


def command_paths() -> list[list[str]]:
    """Every command and subcommand of the app, as argv prefixes ([] is llamavis itself)."""

    def walk(command, path):
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def check_golden(name: str, actual: str) -> None:
    # rich pads help lines to the full width: trailing blanks are not worth a golden diff
    actual = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    path = GOLDEN / name
    if os.environ.get("LLAMAVIS_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with LLAMAVIS_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} changed; if that is intended, regenerate with LLAMAVIS_UPDATE_GOLDEN=1")


# -- help --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "llamavis")
def test_every_command_help_shows_an_example(path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*path, "--help"], env=STABLE)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output or "$ llamavis" in result.output
    assert f"llamavis {' '.join(path)}".strip() in result.output.split("Example", 1)[-1]


@pytest.mark.layout
@pytest.mark.parametrize(("args", "golden"), [
    ([], "help.txt"),
    (["caption"], "caption_help.txt"),
])
def test_help_matches_golden(args, golden):
    proc = llamavis(*args, "--help")
    assert proc.returncode == 0, proc.stderr
    check_golden(golden, proc.stdout)


def test_version_prints_the_package_version():
    for flag in ("--version", "-V"):
        proc = llamavis(flag)
        assert (proc.returncode, proc.stdout) == (0, f"llamavis {__version__}\n")


# -- shell completion --------------------------------------------------------------------


def test_show_completion_prints_a_script_for_the_shell():
    proc = llamavis("--show-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    assert "_LLAMAVIS_COMPLETE" in proc.stdout and "complete " in proc.stdout


def test_install_completion_writes_into_the_users_shell_config(tmp_path):
    proc = llamavis("--install-completion", "bash", env={"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "bash completion installed" in proc.stdout
    assert "_LLAMAVIS_COMPLETE" in (tmp_path / ".bash_completions" / "llamavis.sh").read_text()
    assert ".bash_completions/llamavis.sh" in (tmp_path / ".bashrc").read_text()


def test_completion_completes_command_names():
    proc = llamavis(env={"_LLAMAVIS_COMPLETE": "complete_bash", "COMP_WORDS": "llamavis multi",
                         "COMP_CWORD": "1"})
    assert proc.stdout.split() == ["multi-classify"]


# -- the README --------------------------------------------------------------------------


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


@pytest.mark.parametrize("path", [p for p in command_paths() if p], ids=" ".join)
def test_readme_commands_section_shows_every_command(path):
    assert f"llamavis {' '.join(path)}" in readme_section("Commands")


# -- start-up cost -----------------------------------------------------------------------

HEAVY = ("asyncio", "httpx", "PIL", "pydantic", "jsonschema", "json_repair", "sqlite3", "torch", "transformers",
         "llguidance")
IMPORTS_AFTER = """
import contextlib, io, json, sys
from llamavis.cli.main import run
heavy_names = sys.argv.pop()
with contextlib.redirect_stdout(io.StringIO()):
    code = run(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(heavy_names.split(',')))
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize("args", [["--help"], ["caption", "--help"], ["structured", "--help"], ["roboflow", "--help"],
                                  ["keys", "set", "--help"], ["cache", "clear", "--help"], ["doctor", "--help"],
                                  ["agree", "--help"], ["models", "--help"],
                                  ["--version"]])
def test_help_and_version_import_no_heavy_dependency(args):
    proc = subprocess.run([sys.executable, "-c", IMPORTS_AFTER, *args, ",".join(HEAVY)],
                          capture_output=True, text=True, env={**os.environ, **STABLE}, timeout=60)
    report = json.loads(proc.stdout)
    assert report["code"] == 0, proc.stderr
    assert report["heavy"] == []  # rich is allowed: typer renders its help with it


# -- golden JSON envelope ----------------------------------------------------------------


def test_json_envelope_of_one_caption_matches_golden():
    with FakeServer("A red ball on green grass.") as server:
        proc = llamavis("caption", "examples/shapes.jpg", "--json", "-P", "openrouter",
                        "--base-url", server.url, "--no-cache", cwd=ROOT,
                        env={"OPENROUTER_API_KEY": KEY})
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert isinstance(doc["elapsed_s"], float) and doc["elapsed_s"] >= 0
    check_golden("caption.json", re.sub(r'"elapsed_s": [0-9.e-]+', '"elapsed_s": 0.0', proc.stdout))
