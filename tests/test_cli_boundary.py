"""What a user hands llamavis is checked once, at the boundary (issue 18): the installed command
against loopback servers. A schema refers only inside itself; nothing is fetched or read."""

from __future__ import annotations

import json

import pytest

from fakeserver import FakeServer
from test_cli_tasks import EXAMPLES, llamavis

IMAGE = str(EXAMPLES / "shapes.jpg")


def schema_with_ref(ref: str) -> str:
    return json.dumps({"type": "object", "properties": {"item": {"$ref": ref}}})


def structured(server: FakeServer, schema: str, *extra: str):
    return llamavis("structured", IMAGE, "--schema", schema, "-P", "local", "--base-url",
                    server.url, "--json", "--no-cache", *extra)


def test_a_remote_ref_exits_2_before_any_request_and_nothing_is_fetched():
    with FakeServer('{"item": 1}') as server, FakeServer() as target:
        ref = f"http://127.0.0.1:{target.httpd.server_address[1]}/schema.json"
        proc = structured(server, schema_with_ref(ref))
    assert proc.returncode == 2
    assert ref in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert server.requests == [] and target.get_paths == [] and target.requests == []


@pytest.mark.parametrize("form", ["file-url", "relative"])
def test_a_file_ref_exits_2_and_the_file_is_never_read(tmp_path, form):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"type": "string", "description": "TOP-SECRET-CONTENT"}))
    schema = tmp_path / "schema.json"
    ref = secret.as_uri() if form == "file-url" else "secret.json"
    schema.write_text(schema_with_ref(ref))
    with FakeServer('{"item": "x"}') as server:
        proc = structured(server, str(schema))
    assert proc.returncode == 2 and ref in proc.stderr
    assert server.requests == [] and "TOP-SECRET-CONTENT" not in proc.stdout + proc.stderr


def test_an_unresolvable_local_ref_exits_2_before_any_request():
    with FakeServer('{"item": 1}') as server:
        proc = structured(server, schema_with_ref("#/$defs/missing"))
    assert proc.returncode == 2 and "#/$defs/missing" in proc.stderr and server.requests == []


def test_a_local_ref_still_validates_the_answer():
    schema = json.dumps({"type": "object", "$defs": {"n": {"type": "integer"}},
                         "properties": {"count": {"$ref": "#/$defs/n"}}, "required": ["count"]})
    with FakeServer('{"count": 3}') as server:
        proc = structured(server, schema)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == {"count": 3}


def test_a_2000_deep_schema_exits_2_with_one_line(tmp_path):
    deep = '{"type": "array", "items": ' * 2000 + "{}" + "}" * 2000
    path = tmp_path / "deep.json"
    path.write_text('{"type": "object", "properties": {"a": ' + deep + "}}")
    with FakeServer('{"a": []}') as server:
        proc = structured(server, str(path))
    assert proc.returncode == 2 and server.requests == []
    assert proc.stderr.strip().splitlines() == [
        "llamavis: error: --schema is nested more than 64 levels deep"]


def test_a_schema_over_1_mb_exits_2(tmp_path):
    props = {f"field_{i}": {"type": "string", "description": "x" * 40} for i in range(25_000)}
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"type": "object", "properties": props}))
    with FakeServer("{}") as server:
        proc = structured(server, str(path))
    assert proc.returncode == 2 and "1,000,000" in proc.stderr and server.requests == []
