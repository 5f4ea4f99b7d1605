"""Whatever the model says becomes a valid answer or an explicit error, at the least cost."""

from __future__ import annotations

import asyncio

import pytest

from llamavis.errors import InvalidOutputError, RefusedError
from llamavis.tasks import prompts
from llamavis.tasks.answers import (
    ClassSpec,
    MultiClassSpec,
    SchemaSpec,
    TextSpec,
    detect_refusal,
    extract_json,
    match_class,
    parse_confidence,
    resolve,
)
from llamavis.tasks.schemas import schema_from_concise, schema_from_fields, schema_prompt
from llamavis.types import Completion, Usage

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
MESSAGES = [{"role": "user", "content": [IMAGE, {"type": "text", "text": "Describe the scene."}]}]
SCHEMA = schema_from_concise("count int: people visible, weather")
GOOD = '{"count": 2, "weather": "sunny"}'


class FakeAsk:
    """Returns scripted replies and records every request it was given."""

    def __init__(self, *replies: str | Completion) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict]] = []

    async def __call__(self, messages: list[dict]) -> Completion:
        self.requests.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, Completion):
            return reply
        return Completion(reply, "stop", Usage(100, 10, 0.001))


def run(ask: FakeAsk, spec, max_retries: int = 2):
    return asyncio.run(resolve(ask, MESSAGES, spec, max_retries=max_retries))


def images_in(messages: list[dict]) -> list[tuple[int, int]]:
    """(message index, part index) of every image part."""
    return [(i, j) for i, m in enumerate(messages) if isinstance(m["content"], list)
            for j, part in enumerate(m["content"]) if part["type"] == "image_url"]


# --- local repair costs no request -------------------------------------------------------

@pytest.mark.parametrize("reply", [
    f"```json\n{GOOD}\n```",
    f"Sure! Here is the JSON you asked for:\n{GOOD}\nLet me know if you need more.",
    "{'count': 2, 'weather': 'sunny'}",
    '{"count": 2, "weather": "sunny",}',
    '{"count": 2, "weather": "sunny"',  # closing brace missing after a whole value
    '{"Count": "2", "Weather": "sunny"}',  # key case and a numeric string
])
def test_repairable_json_costs_no_extra_request(reply):
    ask = FakeAsk(reply)
    result = run(ask, SchemaSpec(SCHEMA))
    assert result.value == {"count": 2, "weather": "sunny"}
    assert result.attempts == 1 and len(ask.requests) == 1
    assert result.raw == reply
    assert result.repaired


def test_valid_json_is_not_marked_repaired():
    result = run(FakeAsk(GOOD), SchemaSpec(SCHEMA))
    assert result.value == {"count": 2, "weather": "sunny"} and not result.repaired


def test_extract_json_never_turns_prose_into_an_object():
    with pytest.raises(ValueError):
        extract_json("Two people under a sunny sky.")
    assert extract_json(GOOD) == ({"count": 2, "weather": "sunny"}, False)
    assert extract_json(f"```json\n{GOOD}\n```") == ({"count": 2, "weather": "sunny"}, True)


def test_extract_json_picks_the_object_not_a_footnote():
    value, repaired = extract_json(f"See note [1] below.\n{GOOD}\n[1] counted twice")
    assert value == {"count": 2, "weather": "sunny"} and repaired


# --- malformed: one text-only re-ask --------------------------------------------------------

def test_malformed_answer_costs_exactly_one_text_only_reask():
    ask = FakeAsk("There are two people and it is sunny.", GOOD)
    result = run(ask, SchemaSpec(SCHEMA))
    assert result.value == {"count": 2, "weather": "sunny"}
    assert result.attempts == 2 and len(ask.requests) == 2
    reask = ask.requests[1]
    assert images_in(reask) == []
    assert [m["role"] for m in reask] == ["user"]
    text = reask[0]["content"][0]["text"]
    assert "There are two people and it is sunny." in text
    assert "- count (integer or null, required): people visible" in text
    assert result.usage == Usage(200, 20, 0.002)


# --- truncation --------------------------------------------------------------------------

def test_truncated_object_at_token_limit_is_reasked_with_the_image():
    cut = Completion('{"count": 2, "weather": "su', "length", Usage(100, 10))
    ask = FakeAsk(cut, GOOD)
    result = run(ask, SchemaSpec(SCHEMA))
    assert result.value == {"count": 2, "weather": "sunny"} and result.attempts == 2
    assert images_in(ask.requests[1]) == [(0, 0)]
    assert "cut off" in ask.requests[1][-1]["content"][0]["text"]


def test_object_cut_mid_string_is_not_accepted_even_without_length():
    ask = FakeAsk('{"count": 2, "weather": "su', GOOD)
    assert run(ask, SchemaSpec(SCHEMA)).attempts == 2


def test_complete_json_at_token_limit_is_accepted():
    ask = FakeAsk(Completion(GOOD, "length", Usage(1, 1)))
    result = run(ask, SchemaSpec(SCHEMA))
    assert result.attempts == 1 and result.value == {"count": 2, "weather": "sunny"}


def test_truncated_text_answer_is_kept_and_flagged():
    result = run(FakeAsk(Completion("A dog runs across a fie", "length", Usage(1, 1))), TextSpec())
    assert result.value == "A dog runs across a fie" and result.truncated and result.attempts == 1


# --- wrong content: re-ask with the image ------------------------------------------------

@pytest.mark.parametrize("bad, error", [
    ('{"count": 2}', "'weather' is a required property"),
    ('{"count": "two", "weather": "sunny"}', "count: 'two' is not of type 'integer'"),
])
def test_content_error_is_reasked_with_one_image_before_the_text(bad, error):
    ask = FakeAsk(bad, GOOD)
    result = run(ask, SchemaSpec(SCHEMA))
    assert result.value == {"count": 2, "weather": "sunny"} and result.attempts == 2
    reask = ask.requests[1]
    assert images_in(reask) == [(0, 0)]  # exactly one image, first part of the first turn
    assert reask[:1] == MESSAGES
    assert reask[1] == {"role": "assistant", "content": bad}
    assert reask[2]["role"] == "user" and error in reask[2]["content"][0]["text"]
    assert all(m["role"] != "system" for m in reask)


def test_value_outside_enum_is_reasked_with_the_allowed_values():
    schema = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}},
              "required": ["mood"]}
    ask = FakeAsk('{"mood": "angry"}', '{"mood": "sad"}')
    assert run(ask, SchemaSpec(schema)).value == {"mood": "sad"}
    feedback = ask.requests[1][-1]["content"][0]["text"]
    assert '"happy", "sad"' in feedback and images_in(ask.requests[1]) == [(0, 0)]


def test_schema_never_satisfied_ends_as_invalid_output_with_totals():
    replies = ['{"count": 1}', "no json here", '{"weather": "rain"}']
    ask = FakeAsk(*replies)
    with pytest.raises(InvalidOutputError) as err:
        run(ask, SchemaSpec(SCHEMA), max_retries=2)
    exc = err.value
    assert exc.kind == "invalid_output"
    assert exc.attempts == 3 == len(ask.requests)
    assert exc.raw == '{"weather": "rain"}'
    assert exc.usage == Usage(300, 30, 0.003)
    assert "'count' is a required property" in exc.errors


def test_max_retries_zero_asks_once():
    ask = FakeAsk('{"count": 1}')
    with pytest.raises(InvalidOutputError) as err:
        run(ask, SchemaSpec(SCHEMA), max_retries=0)
    assert err.value.attempts == 1


# --- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [SchemaSpec(SCHEMA), ClassSpec(["cat", "dog"]),
                                  MultiClassSpec(["cat", "dog"]), TextSpec()])
def test_refusal_is_refused_not_invalid_output(spec):
    ask = FakeAsk("I'm sorry, but I can't help with identifying people in images.")
    with pytest.raises(RefusedError) as err:
        run(ask, spec)
    assert err.value.kind == "refused"
    assert err.value.attempts == 1 and len(ask.requests) == 1
    assert err.value.raw.startswith("I'm sorry")
    assert not isinstance(err.value, InvalidOutputError)


@pytest.mark.parametrize("text", [
    "I can't help with identifying people.",
    "I\u2019m not able to identify people based on their facial features.",
    "I cannot assist with that request.",
    "I'm sorry, but I can't provide that information.",
    "As an AI language model, I cannot share personal details.",
    "Unfortunately, I'm unable to help with that.",
])
def test_refusals_are_recognised(text):
    assert detect_refusal(text)


@pytest.mark.parametrize("text", [
    "SORRY WE'RE CLOSED",
    "Sorry, we are closed. Please come again.",
    "A dog sits on a couch next to a cat.",
    "I can't believe it's not butter!",
    "I cannot help falling in love with you",
    "I can't help but notice the red door.",
    "I cannot determine the breed from this image.",
    "I can't identify the people in this photo, but I can tell you there are three of them.",
    "",
    "SORRY, I CANNOT ACCOMMODATE PETS",  # signs and shirts read out by OCR are in capitals
    "I WILL NOT SHARE MY FOOD",
    "I CAN'T DO THIS ANYMORE\nMONDAY AGAIN",
])
def test_normal_answers_and_signs_are_not_refusals(text):
    assert not detect_refusal(text)


# --- classify ----------------------------------------------------------------------------

CLASSES = ["Cat", "dog", "traffic-light", "Bus", "box", "hot dog"]


@pytest.mark.parametrize("answer, expected", [
    ("cat", "Cat"),
    ("CATS", "Cat"),
    ("  Dog. ", "dog"),
    ("Dogs", "dog"),
    ("The image shows a dog.", "dog"),
    ("This is a photo of a Cat", "Cat"),
    ("Traffic Light", "traffic-light"),
    ("traffic_light", "traffic-light"),
    ("traffic lights", "traffic-light"),
    ("buses", "Bus"),
    ("Boxes", "box"),
    ("Answer: dog", "dog"),
    ('"cat"', "Cat"),
    ("**Cat**", "Cat"),
    ('{"class": "dog"}', "dog"),
    ('{"label": "cats", "confidence": 0.7}', "Cat"),
    ("It's not a cat, it's a dog.", "dog"),
    ("There is a hot dog on the plate.", "hot dog"),
    ("Dog\nI can also see a cat in the corner.", "dog"),
])
def test_class_answers_map_to_the_users_spelling(answer, expected):
    assert match_class(answer, CLASSES) == expected


@pytest.mark.parametrize("answer", ["a cat or a dog", "bird", "caterpillar", ""])
def test_ambiguous_or_unknown_class_is_none(answer):
    assert match_class(answer, CLASSES) is None


@pytest.mark.parametrize("text, value", [
    ("dog (0.92)", 0.92), ("dog, confidence: 0.9", 0.9), ("Dog - 92%", 0.92),
    ("dog (confidence 85)", 0.85), ("dog", None), ("3 dogs (2)", None),
])
def test_confidence_is_parsed_into_unit_range(text, value):
    assert parse_confidence(text) == value


def test_classify_reports_confidence_from_json():
    result = run(FakeAsk('{"class": "Dog", "confidence": 0.8}'), ClassSpec(CLASSES))
    assert (result.value, result.confidence) == ("dog", 0.8)


def test_class_outside_set_is_reasked_then_invalid_output():
    ask = FakeAsk("bird", "A small bird.", "parrot")
    with pytest.raises(InvalidOutputError) as err:
        run(ask, ClassSpec(["cat", "dog"]), max_retries=2)
    assert err.value.raw == "parrot" and err.value.attempts == 3
    for reask in ask.requests[1:]:
        assert images_in(reask) == [(0, 0)]
        assert "- cat\n- dog" in reask[-1]["content"][0]["text"]


def test_class_outside_set_then_valid_class():
    ask = FakeAsk("bird", "Cats.")
    result = run(ask, ClassSpec(["cat", "dog"]))
    assert result.value == "cat" and result.attempts == 2


def test_two_classes_named_is_wrong_content():
    check = ClassSpec(["cat", "dog"]).check("A cat and a dog.")
    assert not check.ok and not check.malformed and "several classes" in check.errors[0]


# --- multi-classify ------------------------------------------------------------------------

MULTI = ["cat", "dog", "Traffic Light", "person"]


@pytest.mark.parametrize("answer, expected", [
    ("none", []),
    ("None of the above.", []),
    ("No classes apply.", []),
    ("[]", []),
    ("", []),
    ("dogs, cats", ["cat", "dog"]),
    ("- Dog\n- traffic-lights\n- dog", ["dog", "Traffic Light"]),
    ('["person", "Cat", "bird"]', ["cat", "person"]),
    ('{"labels": ["people"]}', ["person"]),
    ('{"cat": true, "dog": false}', ["cat"]),
    ("cat: yes\ndog: no\nperson: yes", ["cat", "person"]),
    ("The image shows a cat and a dog.", ["cat", "dog"]),
    ("not a cat, but a dog", ["dog"]),
])
def test_multi_classify_answers_a_list_from_the_classes(answer, expected):
    check = MultiClassSpec(MULTI).check(answer)
    assert check.ok and check.value == expected


def test_multi_classify_only_unknown_labels_is_reasked():
    ask = FakeAsk("bird, tree", "none")
    result = run(ask, MultiClassSpec(MULTI))
    assert result.value == [] and result.attempts == 2
    feedback = ask.requests[1][-1]["content"][0]["text"]
    assert "'bird', 'tree'" in feedback and "- Traffic Light" in feedback
    assert images_in(ask.requests[1]) == [(0, 0)]


# --- text ----------------------------------------------------------------------------------

def test_text_answer_is_returned_stripped_and_raw_kept():
    result = run(FakeAsk("  A red bus.\n"), TextSpec())
    assert result.value == "A red bus." and result.raw == "  A red bus.\n"


def test_empty_text_answer_is_reasked_with_the_image():
    ask = FakeAsk("", "A red bus.")
    result = run(ask, TextSpec())
    assert result.value == "A red bus." and result.attempts == 2
    assert images_in(ask.requests[1]) == [(0, 0)]


@pytest.mark.subprocess
def test_importing_structured_loads_neither_jsonschema_nor_json_repair():
    import subprocess
    import sys

    code = ("import sys, llamavis.tasks.answers; "
            "print(sorted(m for m in ('jsonschema', 'json_repair') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("answer", ["{}", "{{{{ x {{{{", "stuff {{{{{{"])
def test_multi_classify_gibberish_braces_are_not_read_as_none_apply(answer):
    # A truncated gibberish answer once repaired to {} and passed as "no class applies".
    check = MultiClassSpec(MULTI).check(answer, truncated=True)
    assert not check.ok


# --- a value that is not visible --------------------------------------------------------

@pytest.mark.parametrize("schema", [
    schema_from_fields(["shop=shop name", "total:float=amount paid", "items:int=lines"]),
    schema_from_concise("shop: shop name\ntotal float: amount paid\nitems int: lines"),
])
def test_null_for_a_field_not_visible_is_accepted_as_the_prompt_asks(schema):
    assert "Use null for a value that is not visible" in prompts.get("structured").user
    ask = FakeAsk('{"shop": "ACME", "total": null, "items": "3"}')
    result = run(ask, SchemaSpec(schema))
    assert result.value == {"shop": "ACME", "total": None, "items": 3} and result.attempts == 1
    assert "- total (number or null, required): amount paid" in schema_prompt(schema)


# --- classes told apart only by punctuation ---------------------------------------------

LANGS = ["C", "C++", "C#", "Python"]


@pytest.mark.parametrize("answer, expected", [
    ("C++", "C++"),
    ("**C#**", "C#"),
    ("c", "C"),
    ("The code is written in C++.", "C++"),
    ('{"class": "C#"}', "C#"),
    ("It's C, not C++.", "C"),
])
def test_classes_that_differ_only_in_punctuation_are_told_apart(answer, expected):
    assert match_class(answer, LANGS) == expected


def test_classes_of_punctuation_alone_are_matched():
    assert match_class("+", ["+", "-"]) == "+"
    assert match_class(" `-` ", ["+", "-"]) == "-"


def test_multi_classify_keeps_the_class_spelled_with_punctuation():
    check = MultiClassSpec(LANGS).check('["C++", "Python"]')
    assert check.ok and check.value == ["C++", "Python"]
    assert MultiClassSpec(LANGS).check("C#, C").value == ["C", "C#"]


def test_local_fixes_reach_nested_objects_and_lists():
    item = {"type": "object", "required": ["name", "qty"],
            "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}}}
    schema = {"type": "object", "required": ["items", "shop"], "$defs": {"item": item},
              "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
                             "shop": {"type": "object", "properties": {"zip": {"type": "string"}}}}}
    ask = FakeAsk('{"items": [{"Name": "tea", "qty": "2"}], "shop": {"zip": 10115}}')
    result = run(ask, SchemaSpec(schema))
    assert result.value == {"items": [{"name": "tea", "qty": 2}], "shop": {"zip": "10115"}}
    assert result.attempts == 1 and result.repaired


@pytest.mark.parametrize("answer, expected", [
    ("これは犬です。", "犬"),  # Japanese writes no spaces between words
    ("图片里是一只猫", "猫"),
    ("这是自行车。", "自行车"),
    ("Das ist ein Hund.", "Hund"),
])
def test_classes_in_languages_without_spaces_are_found_in_a_sentence(answer, expected):
    assert match_class(answer, ["猫", "犬", "自行车", "Hund", "Katze"]) == expected


@pytest.mark.parametrize("answer, classes, expected", [
    ("Score: 7", [str(n) for n in range(1, 11)], "7"),  # a rating, not a confidence of 0.07
    ("The score is 9", [str(n) for n in range(1, 11)], "9"),
    ("75%", ["50%", "75%", "100%"], "75%"),
    ("**100%**", ["50%", "75%", "100%"], "100%"),
])
def test_a_class_that_reads_like_a_confidence_is_still_the_class(answer, classes, expected):
    assert match_class(answer, classes) == expected
    assert ClassSpec(classes).check(answer).confidence is None


def test_enum_value_in_another_case_is_fixed_locally():
    schema = {"type": "object", "required": ["paid_by", "tags"],
              "properties": {"paid_by": {"enum": ["cash", "card"]},
                             "tags": {"type": "array", "items": {"enum": ["Food", "Drink"]}}}}
    ask = FakeAsk('{"paid_by": "Card", "tags": ["food ", "DRINK"]}')
    result = run(ask, SchemaSpec(schema))
    assert result.value == {"paid_by": "card", "tags": ["Food", "Drink"]} and result.attempts == 1


@pytest.mark.parametrize("said", ['"null"', '"N/A"', '"none"', '""', '"not visible"'])
def test_a_nullable_number_said_to_be_missing_in_words_becomes_null(said):
    schema = schema_from_fields(["total:float=amount paid"])
    result = run(FakeAsk(f'{{"total": {said}}}', '{"total": null}'), SchemaSpec(schema))
    assert result.value == {"total": None}
    assert result.attempts == (2 if said == '"not visible"' else 1)  # only clear words are read


def test_a_request_that_fails_after_an_answer_carries_the_attempts_and_usage_paid():
    # The re-ask ladder is the one place attempts and usage are counted, failures included.
    from llamavis.errors import ProviderError

    replies = [Completion('{"shade": "red"}', "stop", Usage(100, 5, 0.01))]

    async def ask(messages):
        if replies:
            return replies.pop()
        raise ProviderError("context length exceeded", status=400)

    spec = SchemaSpec({"type": "object", "required": ["colour"],
                       "properties": {"colour": {"type": "string"}}})
    with pytest.raises(ProviderError) as caught:
        asyncio.run(resolve(ask, [], spec, max_retries=2))
    assert caught.value.attempts == 2
    assert caught.value.usage == Usage(100, 5, 0.01)


def test_what_a_content_filter_cut_short_is_added_to_the_usage_paid_before():
    replies = [Completion('{"shade": "red"}', "stop", Usage(100, 5, None))]

    async def ask(messages):
        if replies:
            return replies.pop()
        raise RefusedError("filtered", usage=Usage(100, 1, None))

    spec = SchemaSpec({"type": "object", "required": ["colour"],
                       "properties": {"colour": {"type": "string"}}})
    with pytest.raises(RefusedError) as caught:
        asyncio.run(resolve(ask, [], spec, max_retries=2))
    assert caught.value.attempts == 2 and caught.value.usage == Usage(200, 6, None)


# --- classes that start with words the matcher treats as noise -------------------------------

NOISY = [
    (["class-a", "class-b"], "class-b", "class-b"),  # Roboflow's own example class names
    (["class-a", "class-b"], "Class-A", "class-a"),
    (["class-a", "class-b"], "class-b, because of the stripes", "class-b"),
    (["class-a", "class-b"], "Class: class-b", "class-b"),
    (["class-a", "class-b"], "The answer is class-a.", "class-a"),
    (["class-a", "class-b"], '{"class": "class-b"}', "class-b"),
    (["label-1", "label-2"], "label-2", "label-2"),
    (["label-1", "label-2"], "Label: label-1", "label-1"),
    (["answer-yes", "answer-no"], "answer-no", "answer-no"),
    (["category-x", "category-y"], "category-y", "category-y"),
    (["prediction-high", "prediction-low"], "prediction-low", "prediction-low"),
    (["the-beatles", "the-who"], "The Who", "the-who"),
    (["the answer", "a question"], "the answer", "the answer"),
    (["the answer", "a question"], "a question", "a question"),
    (["final-cut", "draft"], "final-cut", "final-cut"),
    (["a", "b"], "b", "b"),  # noise words are still stripped before a class: "Class: b"
    (["a", "b"], "Class: b", "b"),
    (["dog", "cat"], "Answer: dog", "dog"),
]


@pytest.mark.parametrize(("classes", "answer", "expected"), NOISY,
                         ids=[f"{c[0]}:{a}" for c, a, _ in NOISY])
def test_an_answer_equal_to_a_class_is_that_class_whatever_word_it_starts_with(
        classes, answer, expected):
    assert match_class(answer, classes) == expected
    assert ClassSpec(classes).check(answer).value == expected


def test_classify_class_a_class_b_answers_at_the_first_attempt():
    result = run(FakeAsk("class-b"), ClassSpec(["class-a", "class-b"]))
    assert result.value == "class-b" and result.attempts == 1


@pytest.mark.parametrize(("answer", "expected"), [
    ("class-a, class-b", ["class-a", "class-b"]),
    ("class-b", ["class-b"]),
    ("- class-b\n- class-a", ["class-a", "class-b"]),
])
def test_multi_classify_keeps_classes_that_start_with_a_noise_word(answer, expected):
    check = MultiClassSpec(["class-a", "class-b", "class-c"]).check(answer)
    assert check.ok and check.value == expected


LETTERS = ["A", "B", "C"]


@pytest.mark.parametrize(("answer", "expected"), [
    ("B", "B"),
    ("a", "A"),
    ("**A**", "A"),
    ("It is a B.", "B"),
    ("This is a photo of class C", "C"),
    ("A photo of a B.", "B"),
    ("I think it's C.", "C"),
    ("The answer is A.", "A"),
    ("Option A, clearly.", "A"),
    ("A", "A"),
])
def test_one_letter_classes_do_not_collide_with_the_article_a(answer, expected):
    assert match_class(answer, LETTERS) == expected


def test_one_letter_classes_named_together_are_still_ambiguous():
    assert match_class("A or B", LETTERS) is None


def test_multi_classify_one_letter_classes_beside_the_article():
    check = MultiClassSpec(LETTERS).check("There is a B and a C.")
    assert check.ok and check.value == ["B", "C"]
