"""`llamavis keys set/delete` through the installed command: what is stored is what was meant."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from test_cli_tasks import llamavis

KEY = "sk-or-v1-0123456789abcdef"


def keys_file() -> dict:
    path = llamavis("keys", "path").stdout.strip()
    return json.loads(Path(path).read_text(encoding="utf-8")) if os.path.exists(path) else {}


def test_set_trims_surrounding_whitespace():
    proc = llamavis("keys", "set", "openrouter", input=f"  {KEY} \r\n".encode())
    assert proc.returncode == 0, proc.stderr
    assert keys_file()["openrouter"] == KEY
    assert KEY not in proc.stdout + proc.stderr


def test_set_refuses_a_key_with_whitespace_inside_and_stores_nothing():
    proc = llamavis("keys", "set", "openrouter", input=b"sk-or-v1 0123 4567\n")
    assert proc.returncode == 2
    assert "whitespace" in proc.stderr and "0123" not in proc.stderr
    assert "openrouter" not in keys_file()


def test_delete_forgets_one_key_and_keeps_the_others():
    for provider, key in (("openrouter", KEY), ("novita", "nv-key-42")):
        assert llamavis("keys", "set", provider, input=key.encode() + b"\n").returncode == 0
    proc = llamavis("keys", "delete", "openrouter")
    assert proc.returncode == 0, proc.stderr
    assert "deleted" in proc.stderr and KEY not in proc.stderr
    assert llamavis("keys", "list").stdout.split() == ["novita"]
    path = llamavis("keys", "path").stdout.strip()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KEY not in Path(path).read_text(encoding="utf-8")


def test_delete_of_a_key_never_stored_says_so():
    proc = llamavis("keys", "delete", "novita")
    assert proc.returncode == 0 and "no novita key is stored" in proc.stderr


def test_delete_of_an_unknown_provider_is_a_usage_error():
    proc = llamavis("keys", "delete", "nosuch")
    assert proc.returncode == 2 and "nosuch" in proc.stderr
