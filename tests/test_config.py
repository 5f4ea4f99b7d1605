"""The keys file: stored keys, and one clear exit-3 line whenever it cannot be used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llamavis.errors import ConfigError
from llamavis.store.paths import keys_path, load_keys, store_key

from test_cli_tasks import llamavis

SHAPES = Path(__file__).resolve().parent.parent / "examples" / "shapes.jpg"


def write_keys(content: bytes) -> Path:
    path = keys_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_setting_a_key_twice_overwrites_it_keeps_the_others_and_mode_0600():
    store_key("novita", "nv-1")
    store_key("openrouter", "or-1")
    path = store_key("openrouter", "or-2")
    assert load_keys() == {"novita": "nv-1", "openrouter": "or-2"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_keys_set_twice_through_the_command():
    for key in ("first-key", "second-key"):
        assert llamavis("keys", "set", "openrouter", input=f"{key}\n".encode()).returncode == 0
    path = keys_path()
    assert json.loads(path.read_text())["openrouter"] == "second-key"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p for p in path.parent.iterdir() if p.name != "keys.json"] == []  # no temp files left


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"openrouter": null}', "openrouter"),
        (b'{"openrouter": 12345}', "openrouter"),
    ],
)
def test_a_broken_keys_file_is_a_config_error_naming_it(content, words):
    path = write_keys(content)
    with pytest.raises(ConfigError, match=words) as info:
        load_keys()
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b'{"openrouter": null}'])
def test_a_broken_keys_file_exits_3_with_one_line(content):
    write_keys(content)
    proc = llamavis("caption", str(SHAPES), "-P", "openrouter",
                    "--base-url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 3, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "keys file" in proc.stderr
    assert "internal error" not in proc.stderr


def test_a_keys_file_that_cannot_be_written_is_a_config_error(monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ConfigError, match="cannot write keys file .*Permission denied") as info:
        store_key("openrouter", "a-secret-key")
    assert "a-secret-key" not in str(info.value)


def test_keys_set_where_the_config_dir_cannot_be_made_exits_3_with_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    env = {"LLAMAVIS_CONFIG_DIR": str(tmp_path / "file" / "llamavis")}
    proc = llamavis("keys", "set", "openrouter", input=b"a-key\n", env=env)
    assert proc.returncode == 3, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "keys file" in proc.stderr
    assert "a-key" not in proc.stderr and "internal error" not in proc.stderr


def test_config_dir_comes_from_the_environment(tmp_path):
    env = {"LLAMAVIS_CONFIG_DIR": str(tmp_path / "elsewhere")}
    assert llamavis("keys", "path", env=env).stdout.strip() == str(tmp_path / "elsewhere" / "keys.json")
    assert llamavis("keys", "set", "novita", input=b"k\n", env=env).returncode == 0
    assert (tmp_path / "elsewhere" / "keys.json").exists()
    assert llamavis("keys", "list", env=env).stdout.split() == ["novita"]
    assert os.environ["LLAMAVIS_CONFIG_DIR"] != env["LLAMAVIS_CONFIG_DIR"]


def test_providers_says_where_each_key_comes_from_and_never_shows_it():
    store_key("openrouter", "stored-secret")
    store_key("novita", "stored-secret")
    proc = llamavis("providers", "--json", env={"NOVITA_API_KEY": "env-secret"})
    assert proc.returncode == 0, proc.stderr
    rows = {r["provider"]: r["key"] for r in json.loads(proc.stdout)}
    assert rows["openrouter"] == "set (keys file)"
    assert rows["novita"] == "set (env)"  # the environment wins, as it does for requests
    assert rows["deepinfra"] == "not set" and rows["ollama"] == "not needed"
    assert "secret" not in proc.stdout + proc.stderr
