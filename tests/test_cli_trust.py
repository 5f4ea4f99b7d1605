"""Answers you can trust: the installed command against a loopback server that answers badly."""

from __future__ import annotations

import json

import pytest

from fakeserver import FakeServer, Reply
from test_cli_tasks import EXAMPLES, llamavis

IMAGE = str(EXAMPLES / "shapes.jpg")
CLASSES = "Cat,Dog,Traffic Light"
FIELDS = ["--field", "colour=colour of the ball", "--field", "count:int=how many balls"]


def run_json(server: FakeServer, *args: str) -> tuple[int, dict, str]:
    proc = llamavis(*args, IMAGE, "-P", "local", "--base-url", server.url, "--json", "--no-cache")
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def has_image(body: dict) -> bool:
    return any(isinstance(m["content"], list) and any(p.get("type") == "image_url" for p in m["content"])
               for m in body["messages"])


@pytest.mark.parametrize(("answer", "expected"), [
    ("The image shows a dog.", "Dog"),
    ("dogs", "Dog"),
    ("CAT", "Cat"),
    ("traffic_lights", "Traffic Light"),
    ("traffic-light", "Traffic Light"),
    ('```json\n{"class": "cat"}\n```', "Cat"),
    ("Answer: Dog (0.9)", "Dog"),
])
def test_classify_lands_in_the_class_set_as_the_user_spelled_it(answer, expected):
    with FakeServer(answer) as server:
        code, doc, _ = run_json(server, "classify", "-c", CLASSES)
    assert code == 0 and doc["output"] == expected and doc["raw"] == answer
    assert len(server.requests) == 1


def test_classify_outside_the_set_is_reasked_then_invalid_output_exit_1():
    with FakeServer("A giraffe.") as server:
        proc = llamavis("classify", IMAGE, "-c", CLASSES, "-P", "local", "--base-url", server.url,
                        "--json", "--max-retries", "2")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert doc["output"] is None and doc["error"]["kind"] == "invalid_output"
    assert doc["raw"] == "A giraffe." and doc["attempts"] == 3 and len(server.requests) == 3
    # Wrong content is re-asked with the image, still exactly one, before the text.
    for body in server.requests[1:]:
        images = [p for m in body["messages"] if isinstance(m["content"], list)
                  for p in m["content"] if p["type"] == "image_url"]
        assert len(images) == 1 and body["messages"][0]["content"][0]["type"] == "image_url"


def test_classify_second_answer_in_the_set_wins():
    with FakeServer(["Maybe a wolf?", "Dog"]) as server:
        code, doc, _ = run_json(server, "classify", "-c", CLASSES)
    assert code == 0 and doc["output"] == "Dog" and doc["attempts"] == 2


def test_multi_classify_keeps_only_given_classes_and_none_is_empty():
    with FakeServer("- cats\n- a tree\n- Traffic-Lights") as server:
        code, doc, _ = run_json(server, "multi-classify", "-c", CLASSES)
    assert code == 0 and doc["output"] == ["Cat", "Traffic Light"]
    with FakeServer("None of these apply.") as server:
        code, doc, _ = run_json(server, "multi-classify", "-c", CLASSES)
    assert code == 0 and doc["output"] == []


def test_fenced_json_costs_no_extra_request():
    with FakeServer('Here you go:\n```json\n{"colour": "red", "count": 1,}\n```') as server:
        code, doc, _ = run_json(server, "structured", *FIELDS)
    assert code == 0 and doc["output"] == {"colour": "red", "count": 1}
    assert len(server.requests) == 1 and doc["attempts"] == 1


def test_malformed_answer_costs_exactly_one_text_only_reask():
    with FakeServer(["The ball is red and there is one of it.", '{"colour": "red", "count": 1}']) as server:
        code, doc, _ = run_json(server, "structured", *FIELDS)
    assert code == 0 and doc["output"] == {"colour": "red", "count": 1}
    assert len(server.requests) == 2 and doc["attempts"] == 2
    assert has_image(server.requests[0]) and not has_image(server.requests[1])
    assert "The ball is red" in json.dumps(server.requests[1])  # the model's own answer goes back
    assert doc["usage"]["prompt_tokens"] == 2 * 1610  # usage adds up across attempts


def test_truncated_json_first_and_valid_json_second():
    replies = [Reply(text='{"colour": "red", "cou', finish_reason="length"),
               Reply(text='{"colour": "red", "count": 1}')]
    with FakeServer(replies) as server:
        code, doc, _ = run_json(server, "structured", *FIELDS)
    assert code == 0 and doc["output"] == {"colour": "red", "count": 1}
    assert len(server.requests) == 2


def test_wrong_type_is_reasked_with_the_image():
    with FakeServer(['{"colour": "red", "count": "many"}', '{"colour": "red", "count": 2}']) as server:
        code, doc, _ = run_json(server, "structured", *FIELDS)
    assert code == 0 and doc["output"] == {"colour": "red", "count": 2}
    assert has_image(server.requests[1])


def test_schema_never_satisfied_ends_invalid_output_exit_1():
    with FakeServer('{"colour": 7}') as server:
        proc = llamavis("structured", IMAGE, *FIELDS, "-P", "local", "--base-url", server.url,
                        "--json", "--max-retries", "1")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["error"]["kind"] == "invalid_output"
    assert doc["output"] is None and doc["raw"] == '{"colour": 7}' and doc["attempts"] == 2
    assert len(server.requests) == 2


@pytest.mark.parametrize("task_args", [["classify", "-c", CLASSES], ["structured", *FIELDS], ["caption"]])
def test_refusal_is_kind_refused_never_an_answer(task_args):
    with FakeServer("I'm sorry, but I can't help with identifying people in images.") as server:
        proc = llamavis(*task_args[:1], IMAGE, *task_args[1:], "-P", "local", "--base-url", server.url, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["output"] is None and doc["error"]["kind"] == "refused"
    assert doc["raw"].startswith("I'm sorry")


def test_structured_request_asks_for_constrained_json_where_the_provider_has_it():
    with FakeServer('{"colour": "red", "count": 1}') as server:
        run_json(server, "structured", *FIELDS)
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["count"]["type"] == ["integer", "null"]


def test_show_schema_prints_one_schema_from_each_syntax():
    a = json.loads(llamavis("structured", "--field", "name=the name", "--field", "age:int=years",
                            "--show-schema").stdout)
    b = json.loads(llamavis("structured", "--schema", "name: the name, age int: years", "--show-schema").stdout)
    assert a["properties"]["age"]["type"] == b["properties"]["age"]["type"] == ["integer", "null"]
    assert a["required"] == b["required"] == ["name", "age"]
