"""`llamavis doctor`: one verdict per route, in the provider's own words, against loopback servers."""

from __future__ import annotations

import json
import socket

from cfserver import MODEL as CF_MODEL
from cfserver import CloudflareServer
from fakeserver import FakeServer, Reply
from support.cli import invoke as llamavis

KEY = "doctor-SENTINEL-key-77aa11"
DI_11B = "meta-llama/Llama-3.2-11B-Vision-Instruct"
OR_11B = "meta-llama/llama-3.2-11b-vision-instruct"
NO_ENDPOINTS = f"No endpoints found for {OR_11B}."


def doctor_json(*args: str, env: dict[str, str]) -> tuple[int, list[dict], str]:
    proc = llamavis("doctor", *args, "--json", env=env)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def models(*ids: str) -> dict:
    return {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}


def test_a_serving_endpoint_is_live_without_any_chat_request():
    with FakeServer("never asked", get={"/v1/models": models(DI_11B, "other/model")}) as server:
        code, rows, _ = doctor_json("-P", "deepinfra", env={
            "DEEPINFRA_API_KEY": KEY, "LLAMAVIS_DEEPINFRA_BASE_URL": server.url})
    assert code == 0
    [row] = rows
    assert (row["provider"], row["model"], row["verdict"]) == ("deepinfra", DI_11B, "live")
    assert set(row) >= {"provider", "model", "verdict", "detail", "latency_s"}
    assert isinstance(row["latency_s"], float)
    assert server.requests == []  # no chat request: only GET /models
    assert server.get_paths == ["/v1/models"]


def test_probe_calls_an_endpoint_answering_no_endpoints_found_dead_with_those_words():
    dead = Reply(status=404, body={"error": {"message": NO_ENDPOINTS, "code": 404}})
    with FakeServer(dead) as server:
        code, rows, stderr = doctor_json("-P", "openrouter", "--probe", "--base-url", server.url,
                                         env={"OPENROUTER_API_KEY": KEY})
    assert code == 1
    assert rows[0]["verdict"] == "dead" and NO_ENDPOINTS in rows[0]["detail"]
    assert "--probe sends one request" in stderr  # said before it was sent
    assert len(server.requests) == 1
    image = server.requests[0]["messages"][0]["content"][0]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png")
    assert KEY not in json.dumps(rows) + stderr


def test_probe_of_a_serving_route_is_live_and_says_whether_response_format_was_honoured():
    with FakeServer('{"colour": "red"}') as server:
        code, rows, _ = doctor_json("-P", "local", "--probe", "--base-url", server.url, env={})
    assert code == 0 and rows[0]["verdict"] == "live"
    assert "response_format honoured" in rows[0]["detail"]
    assert "response_format" in server.requests[0]


def test_probe_says_response_format_was_refused_when_the_endpoint_would_not_take_it():
    refused = Reply(status=400, body={"error": {"message": "response_format is not supported",
                                                "code": 400}})
    with FakeServer([refused, Reply('{"colour": "red"}')]) as server:
        code, rows, _ = doctor_json("-P", "local", "--probe", "--base-url", server.url, env={})
    assert code == 0 and rows[0]["verdict"] == "live"
    assert "response_format refused (local HTTP 400: response_format is not supported)" in \
        rows[0]["detail"]
    assert "response_format" in server.requests[0] and "response_format" not in server.requests[1]


def test_openrouter_listing_the_model_without_endpoints_is_dead_without_a_probe():
    get = {"/v1/models": models(OR_11B),
           f"/v1/models/{OR_11B}/endpoints": {"data": {"id": OR_11B, "endpoints": []}}}
    with FakeServer(get=get) as server:
        code, rows, _ = doctor_json("-P", "openrouter", "--base-url", server.url,
                                    env={"OPENROUTER_API_KEY": KEY})
    assert code == 1
    assert rows[0]["verdict"] == "dead" and "no live endpoint" in rows[0]["detail"]
    assert server.requests == []


def test_unset_routes_are_not_configured_and_a_closed_port_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"DEEPINFRA_API_KEY": KEY, "LLAMAVIS_DEEPINFRA_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    code, rows, stderr = doctor_json("-P", "azure", "-P", "novita", "-P", "deepinfra", env=env)
    verdicts = {r["provider"]: r for r in rows}
    assert code == 1
    assert verdicts["azure"]["verdict"] == "not_configured"
    assert "AZURE_AI_CHAT_ENDPOINT" in verdicts["azure"]["detail"]
    assert verdicts["novita"]["verdict"] == "not_configured"
    assert "NOVITA_API_KEY" in verdicts["novita"]["detail"]
    assert "retired" in verdicts["novita"]["detail"]  # what the route table knows
    assert verdicts["deepinfra"]["verdict"] == "unreachable"
    assert "no route is live" in stderr


def test_cloudflare_is_blocked_until_the_licence_is_accepted_and_probe_quotes_its_words():
    with CloudflareServer(KEY) as cf:
        env = {"CLOUDFLARE_API_TOKEN": KEY, "LLAMAVIS_CLOUDFLARE_BASE_URL": cf.url}
        listed = doctor_json("-P", "cloudflare", env=env)
        probed = doctor_json("-P", "cloudflare", "--probe", env=env)
        assert llamavis("agree", "cloudflare", "--yes", env=env).returncode == 0
        after = doctor_json("-P", "cloudflare", env=env)
    assert listed[0] == 1 and listed[1][0]["verdict"] == "blocked"
    assert "llamavis agree cloudflare" in listed[1][0]["detail"]
    assert probed[0] == 1 and probed[1][0]["verdict"] == "blocked"
    assert "you must submit the prompt 'agree'" in probed[1][0]["detail"]
    assert after[0] == 0 and after[1][0] == {**after[1][0], "verdict": "live", "model": CF_MODEL}
    assert cf.agreements == 1


def test_a_rejected_key_is_not_configured_with_the_providers_words():
    rejected = Reply(status=401, body={"error": {"message": "User not found.", "code": 401}})
    with FakeServer(get={"/v1/models": rejected}) as server:
        code, rows, _ = doctor_json("-P", "openrouter", "--base-url", server.url,
                                    env={"OPENROUTER_API_KEY": KEY})
    assert code == 1
    assert rows[0]["verdict"] == "not_configured" and "User not found." in rows[0]["detail"]


def test_base_url_without_exactly_one_provider_is_a_usage_error():
    proc = llamavis("doctor", "--base-url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 2 and "-P" in proc.stderr


def test_the_table_names_each_route_and_its_verdict():
    with FakeServer(get={"/v1/models": models(DI_11B)}) as server:
        proc = llamavis("doctor", "-P", "deepinfra", env={
            "DEEPINFRA_API_KEY": KEY, "LLAMAVIS_DEEPINFRA_BASE_URL": server.url})
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()[:2]
    assert header.split()[:3] == ["PROVIDER", "MODEL", "VERDICT"]
    assert row.split()[:3] == ["deepinfra", DI_11B, "live"]
    assert "-P deepinfra" in proc.stderr
