"""Options resolved into a TaskConfig: what is wrong with them is said before any image."""

from __future__ import annotations

import pytest

from llamavis.errors import UsageError
from llamavis.run.session import RunOptions, Session, TaskArgs


def build_config(task, **kwargs):
    """A task's config the way every run resolves it: through a Session."""
    options, args = RunOptions.split(kwargs)
    return Session(options).config(TaskArgs(task, **args))


@pytest.mark.parametrize("url", ["ftp://host/v1", "localhost:8000/v1", "http://"])
def test_a_bad_base_url_is_a_usage_error_before_any_image(url):
    # Up front, so --dry-run exits 2 too instead of failing each image.
    with pytest.raises(UsageError, match="bad base URL"):
        build_config("caption", provider="local", base_url=url)


@pytest.mark.parametrize("option, value", [("max_tokens", 0), ("max_tokens", -5), ("timeout", 0),
                                           ("timeout", -1.0)])
def test_api_options_out_of_range_are_usage_errors(option, value):
    # The CLI bounds these; the Python API (analyze(max_tokens=0)) must not silently
    # use the template's default or time every request out at once.
    with pytest.raises(UsageError, match=option.replace("_", "-")):
        build_config("caption", provider="local", **{option: value})


def test_api_schema_may_be_a_string_as_on_the_command_line(tmp_path):
    # analyze(task="structured", schema=...) takes what --schema takes, not only a dict.
    path = tmp_path / "s.json"
    path.write_text('{"type": "object", "properties": {"shop": {"type": "string"}}}')
    for schema in ("shop, total float: amount paid", str(path)):
        cfg = build_config("structured", schema=schema, provider="local")
        assert "shop" in cfg.schema["properties"] and "- shop" in cfg.prompt_text


def test_api_schema_that_is_not_a_json_schema_is_a_usage_error():
    with pytest.raises(UsageError, match="--schema"):
        build_config("structured", schema={"shop": "string"}, provider="local")


def test_api_classes_may_be_one_comma_separated_string_as_on_the_command_line():
    cfg = build_config("classify", classes="cat, dog,Traffic light", provider="local")
    assert cfg.classes == ["cat", "dog", "Traffic light"]
