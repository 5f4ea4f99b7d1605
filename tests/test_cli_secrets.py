"""Credentials in a URL never reach any output: the installed command against a loopback server."""

from __future__ import annotations

import json
import socket

import pytest

from llamavis.urls import scrubbed, shown

from fakeserver import FakeServer, Reply
from test_cli_tasks import EXAMPLES, llamavis

IMAGE = str(EXAMPLES / "shapes.jpg")
SECRETS = ("secret", "SECRET", "s3cr3t")


def credentialed(port: int) -> str:
    return (f"http://user:secret@127.0.0.1:{port}/v1"
            "?key=SECRET-K&api-key=SECRET-A&token=SECRET-T&sig=s3cr3t")


def port_of(server: FakeServer) -> int:
    return int(server.url.split(":")[2].split("/")[0])


def leaks(proc) -> list[str]:
    out = proc.stdout + proc.stderr
    return [line for line in out.splitlines() if any(s in line for s in SECRETS)]


def test_shown_masks_userinfo_and_secret_query_values_only():
    url = "https://u:pw@h:8/v1?model=m&key=K1&X-Amz-Signature=S&api_key=A&page=2"
    assert shown(url) == "https://u:***@h:8/v1?model=m&key=***&X-Amz-Signature=***&api_key=***&page=2"
    assert shown("https://tok3n@h/v1") == "https://***@h/v1"  # a lone user name is a token
    assert shown("https://h/v1?page=2") == "https://h/v1?page=2"
    assert scrubbed("cannot connect to http://a:b@h/v1?token=T: refused.") == \
        "cannot connect to http://a:***@h/v1?token=***: refused."


@pytest.mark.parametrize("extra", [["--json"], ["--jsonl"], [], ["--debug"]])
def test_a_failing_request_shows_no_credential(extra):
    with FakeServer([Reply(status=500, body="boom")] * 5) as server:
        proc = llamavis("caption", IMAGE, "-P", "local", "--base-url", credentialed(port_of(server)),
                        "--no-cache", "--max-retries", "1", *extra)
    assert proc.returncode == 1
    assert len(server.requests) == 2  # the key still reaches the server: only output is masked
    assert "key=SECRET-K" in server.paths[0]
    assert leaks(proc) == []
    if extra == ["--debug"]:  # the debug log names the URL it posts to, masked
        assert "POST http://user:***@127.0.0.1" in proc.stderr and "key=***" in proc.stderr


def test_a_refused_connection_shows_no_credential():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = llamavis("caption", IMAGE, "-P", "local", "--base-url", credentialed(port),
                    "--no-cache", "--max-retries", "0", "--json", "--debug")
    assert proc.returncode != 0
    assert leaks(proc) == []
    assert "user:***@127.0.0.1" in proc.stdout + proc.stderr


def test_dry_run_shows_the_url_masked():
    with FakeServer() as server:
        proc = llamavis("caption", IMAGE, "-P", "local", "--base-url", credentialed(port_of(server)),
                        "--dry-run")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["routes"][0]["base_url"].startswith("http://user:***@127.0.0.1")
    assert "key=***" in doc["requests"][0]["url"] and "api-key=***" in doc["requests"][0]["url"]
    assert leaks(proc) == [] and server.requests == []


@pytest.mark.parametrize("extra", [["--json"], []])
def test_doctor_and_models_show_no_credential(extra):
    with FakeServer([Reply(status=401, body="bad key")] * 10) as server:
        url = credentialed(port_of(server))
        doctor = llamavis("doctor", "-P", "local", "--base-url", url, "--probe", *extra)
        models = llamavis("models", "-P", "local", "--base-url", url, *extra)
    assert leaks(doctor) == [] and leaks(models) == []
    assert doctor.stdout.strip() and models.stdout + models.stderr


def test_providers_masks_a_credential_in_llamavis_base_url():
    proc = llamavis("providers", "--json",
                    env={"LLAMAVIS_BASE_URL": "http://user:secret@127.0.0.1:9/v1?key=SECRET-K"})
    assert proc.returncode == 0, proc.stderr
    assert leaks(proc) == []


def test_roboflow_print_commands_masks_the_base_url():
    workflow = str(EXAMPLES / "roboflow_workflow.json")
    proc = llamavis("roboflow", workflow, IMAGE, "--print-commands",
                    "--base-url", credentialed(9))
    assert proc.returncode == 0, proc.stderr
    assert "user:***@127.0.0.1:9" in proc.stdout and leaks(proc) == []
