"""One JSON Schema from --field, concise syntax and JSON Schema; clear errors naming the option."""

from __future__ import annotations

import json

import pytest

from llamavis.errors import ExitCode, UsageError
from llamavis.tasks.schemas import (
    load_schema,
    schema_from_concise,
    schema_from_fields,
    schema_from_options,
    schema_prompt,
    validation_errors,
)

EXPECTED = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "description": "people visible"},
        "weather": {"type": "string", "description": "the weather, e.g. sunny"},
    },
    "required": ["count", "weather"],
}
# What the two short syntaxes build: the same fields, each also allowing null (not visible).
NULLABLE = {**EXPECTED, "properties": {
    "count": {"type": ["integer", "null"], "description": "people visible"},
    "weather": {"type": ["string", "null"], "description": "the weather, e.g. sunny"},
}}


def test_three_syntaxes_give_the_same_schema(tmp_path):
    from_fields = schema_from_fields(
        ["count:int=people visible", "weather=the weather, e.g. sunny"])
    from_concise = load_schema("count int: people visible\nweather: the weather, e.g. sunny")
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(NULLABLE))
    assert from_fields == from_concise == load_schema(str(path)) == load_schema(
        json.dumps(NULLABLE)) == NULLABLE


def test_field_without_type_is_a_required_string():
    schema = schema_from_fields(["brand=Brand name on the label"])
    assert schema["properties"]["brand"] == {"type": ["string", "null"],
                                             "description": "Brand name on the label"}
    assert schema["required"] == ["brand"]


def test_field_description_may_hold_equals_and_colons():
    schema = schema_from_fields(["ratio:float=width/height, as w:h=1.5"])
    assert schema["properties"]["ratio"] == {"type": ["number", "null"],
                                             "description": "width/height, as w:h=1.5"}


def test_concise_comma_separated_types_default_to_string():
    schema = schema_from_concise("name, age int, height float: in metres, adult bool")
    assert {k: v["type"][0] for k, v in schema["properties"].items()} == {
        "name": "string", "age": "integer", "height": "number", "adult": "boolean"}
    assert schema["required"] == ["name", "age", "height", "adult"]


@pytest.mark.parametrize("fields", [["count people visible"], ["=no key"], ["count:integr=people"]])
def test_bad_field_is_a_usage_error_naming_field(fields):
    with pytest.raises(UsageError) as err:
        schema_from_fields(fields)
    assert "--field" in str(err.value)
    assert err.value.exit_code == ExitCode.USAGE


def test_duplicate_field_is_a_usage_error():
    with pytest.raises(UsageError, match="--field: field 'count' is given twice"):
        schema_from_fields(["count=a", "count:int=b"])


@pytest.mark.parametrize("arg", [
    '{"type": "object", "properties": {"a": {"type": "strin"}}}',  # invalid JSON Schema
    '{"type": "object", "properties": ',  # invalid JSON
    '{"name": "string"}',  # not a JSON Schema at all
    '{"type": "array", "items": {"type": "string"}}',  # not an object
    "missing.json",
    "schemas/receipt",  # a path that is not there is not a one-field concise schema
    "~/receipt.schema",
    "receipt.yaml",
    "count integr: people",
    "",
])
def test_bad_schema_is_a_usage_error_naming_schema(arg):
    with pytest.raises(UsageError) as err:
        load_schema(arg)
    assert "--schema" in str(err.value)


def test_schema_file_with_bad_json_names_the_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{oops")
    with pytest.raises(UsageError, match="--schema: file .*s.json.* is not valid JSON"):
        load_schema(str(path))


def test_draft7_schema_is_checked_by_its_own_draft():
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert load_schema(json.dumps(schema)) == schema


def test_openai_response_format_wrapper_is_unwrapped():
    wrapped = {"name": "answer", "strict": True, "schema": EXPECTED}
    assert load_schema(json.dumps(wrapped)) == EXPECTED


def test_field_and_schema_together_is_a_usage_error():
    with pytest.raises(UsageError, match="either --field or --schema"):
        schema_from_options(["a=b"], "a, b")
    assert schema_from_options(None, None) is None
    assert schema_from_options(["count:int=people visible"], None)["required"] == ["count"]


def test_schema_prompt_lists_fields_types_and_descriptions():
    schema = dict(EXPECTED)
    schema["properties"] = {**EXPECTED["properties"],
                            "mood": {"enum": ["happy", "sad"]},
                            "tags": {"type": "array", "items": {"type": "string"}}}
    text = schema_prompt(schema)
    assert "- count (integer, required): people visible" in text
    assert '- mood (one of "happy", "sad")' in text
    assert "- tags (list of string)" in text


def test_validation_errors_name_the_field():
    assert validation_errors(EXPECTED, {"count": 2, "weather": "sunny"}) == []
    errors = validation_errors(EXPECTED, {"count": "two"})
    assert "count: 'two' is not of type 'integer'" in errors
    assert "'weather' is a required property" in errors


def test_schema_file_that_is_not_utf8_is_a_usage_error(tmp_path):
    path = tmp_path / "s.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_schema(str(path))


@pytest.mark.parametrize("field, name, kind", [
    ("count int=people visible", "count", "integer"),  # the form --help and the README show
    ("total number=amount paid", "total", "number"),
    ("adult  bool = over 18", "adult", "boolean"),
    ("count:int=people visible", "count", "integer"),
])
def test_field_type_may_follow_the_key_after_a_space_or_a_colon(field, name, kind):
    schema = schema_from_fields([field])
    assert list(schema["properties"]) == [name]
    assert kind in schema["properties"][name]["type"]


def test_field_key_with_a_space_but_no_type_word_stays_the_key():
    assert list(schema_from_fields(["first name=as printed"])["properties"]) == ["first name"]


def test_schema_prompt_follows_local_refs_to_defs(tmp_path):
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps({
        "type": "object",
        "$defs": {"item": {"type": "object", "required": ["name"],
                           "properties": {"name": {"type": "string", "description": "as printed"},
                                          "price": {"type": "number"}}}},
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
                       "best": {"$ref": "#/$defs/item", "description": "the dearest line"}},
        "required": ["items"],
    }))
    text = schema_prompt(load_schema(str(path)))
    assert "- items (list of object, required)" in text
    assert "  - name (string, required): as printed" in text and "  - price (number)" in text
    assert "- best (object): the dearest line" in text


def test_a_missing_schema_path_says_no_such_file():
    with pytest.raises(UsageError, match="no such file 'schemas/receipt'"):
        load_schema("schemas/receipt")


def test_concise_comma_inside_a_description_points_to_newlines():
    with pytest.raises(UsageError, match="newline"):
        load_schema("name, total float: amount paid, in euros")
    assert list(load_schema("name\ntotal float: amount paid, in euros")["properties"]) == ["name", "total"]
