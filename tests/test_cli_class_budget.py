"""classify / multi-classify ask for enough tokens to spell their classes back."""

from __future__ import annotations

import json

from llamavis.tasks.budget import answer_tokens, estimate_tokens

from fakeserver import FakeServer
from test_cli_tasks import EXAMPLES, llamavis

IMAGE = str(EXAMPLES / "shapes.jpg")
LONG = ("a bright red rubber ball resting on freshly mown green grass beside a small "
        "wooden garden fence under blue sky")  # 20 words


def ask(task: str, classes: str, answer: str, *extra: str):
    with FakeServer(answer) as server:
        proc = llamavis(task, IMAGE, "-c", classes, "-P", "local", "--base-url", server.url,
                        "--json", "--no-cache", *extra)
    return proc, server.requests


def test_a_20_word_class_gets_the_tokens_to_be_spelled_back():
    assert len(LONG.split()) == 20
    proc, requests = ask("classify", f"indoor,{LONG}", LONG)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == LONG
    sent = requests[0]["max_tokens"]
    # English runs ~4 characters a token: the budget covers the class at 3, with room to spare
    assert sent > 20 and sent >= len(LONG) / 3


def test_short_classes_keep_the_template_default():
    _, requests = ask("classify", "indoor,outdoor", "outdoor")
    assert requests[0]["max_tokens"] == 20


def test_multi_classify_budgets_for_every_class_at_once():
    classes = [f"{LONG} number {i}" for i in range(6)]
    answer = json.dumps(classes)
    proc, requests = ask("multi-classify", ",".join(classes), answer)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == classes
    assert requests[0]["max_tokens"] >= len(answer) / 3 > 120


def test_max_tokens_still_wins():
    _, requests = ask("classify", f"indoor,{LONG}", "indoor", "--max-tokens", "7")
    assert requests[0]["max_tokens"] == 7


def test_the_estimate_counts_bytes_so_cjk_classes_are_not_short_changed():
    assert estimate_tokens("猫") == 1 and estimate_tokens("cat") == 1
    assert answer_tokens("classify", ["犬" * 40], 20) >= 40
    assert answer_tokens("caption", ["x" * 900], 80) == 80
