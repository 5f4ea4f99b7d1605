"""`attempts` counts every request sent for an image; a cached answer costs nothing.

The installed command against a loopback server (Retry-After: 0, so no real waiting).
"""

from __future__ import annotations

import json

from fakeserver import FakeServer, Reply
from test_cli_tasks import EXAMPLES, llamavis

IMAGE = str(EXAMPLES / "shapes.jpg")
NOW = {"Retry-After": "0"}


def run(server: FakeServer, *extra: str, task: str = "caption"):
    return llamavis(task, IMAGE, "-P", "local", "--base-url", server.url, "--json", *extra)


def test_two_retries_then_an_answer_is_three_attempts():
    with FakeServer([Reply(status=503, body="busy", headers=NOW),
                     Reply(status=429, body="slow down", headers=NOW), "A ball."]) as server:
        proc = run(server, "--no-cache")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["output"] == "A ball."
    assert doc["attempts"] == len(server.requests) == 3


def test_a_failure_after_retries_counts_every_request():
    with FakeServer([Reply(status=503, body="busy", headers=NOW)] * 3) as server:
        proc = run(server, "--no-cache", "--max-retries", "2")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["error"]["kind"] == "provider"
    assert doc["attempts"] == len(server.requests) == 3


def test_a_retry_and_a_re_ask_add_up():
    replies = [Reply(status=503, body="busy", headers=NOW), "Maybe", "Outdoor"]
    with FakeServer(replies) as server:
        proc = run(server, "--no-cache", "-c", "indoor,outdoor", task="classify")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["output"] == "outdoor"
    assert doc["attempts"] == len(server.requests) == 3


PRICED = {"prompt_tokens": 1600, "completion_tokens": 4, "cost": 0.000123}


def test_a_cached_answer_costs_nothing_and_keeps_its_first_usage_apart():
    with FakeServer(lambda req: Reply(text="A ball.", usage=PRICED)) as server:
        first = llamavis("caption", IMAGE, "-P", "openrouter", "--base-url", server.url,
                         "--json", "--usage", env={"OPENROUTER_API_KEY": "sk-test"})
        again = llamavis("caption", IMAGE, "-P", "openrouter", "--base-url", server.url,
                         "--json", "--usage", env={"OPENROUTER_API_KEY": "sk-test"})
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert len(server.requests) == 1
    paid, hit = json.loads(first.stdout), json.loads(again.stdout)
    assert paid["cached"] is False and paid["usage"]["cost_usd"] > 0 and "cached_usage" not in paid
    assert hit["cached"] is True and hit["attempts"] == 0 and hit["output"] == "A ball."
    assert hit["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    assert hit["cached_usage"] == paid["usage"]
    assert "$0.000000" in again.stderr and "cost unknown" not in again.stderr
    assert "1 cached" in again.stderr


def test_an_all_cached_run_without_a_price_reports_0_dollars():
    with FakeServer("A ball.") as server:
        for _ in range(2):
            proc = llamavis("caption", IMAGE, str(EXAMPLES / "shapes.jpg"), "-P", "local",
                            "--base-url", server.url, "--usage")
    assert len(server.requests) == 1  # the second image is a byte-identical copy
    assert proc.returncode == 0, proc.stderr
    assert "$0.000000" in proc.stderr and "cost unknown" not in proc.stderr


def test_retries_on_a_route_that_then_fails_over_are_counted_too():
    busy = Reply(status=503, body="overloaded", headers=NOW)
    with FakeServer([busy] * 3) as openrouter, FakeServer("A ball.") as deepinfra:
        proc = llamavis("caption", IMAGE, "-P", "openrouter", "--base-url", openrouter.url,
                        "--fallback", "deepinfra", "--json", "--no-cache", "--max-retries", "2",
                        env={"OPENROUTER_API_KEY": "sk-or-test", "DEEPINFRA_API_KEY": "di-test",
                             "LLAMAVIS_DEEPINFRA_BASE_URL": deepinfra.url})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["output"] == "A ball." and doc["provider"] == "deepinfra"
    assert doc["attempts"] == len(openrouter.requests) + len(deepinfra.requests) == 4
