"""The prompt-template registry: built-ins, user files, rendering with $variables."""

from __future__ import annotations

import pytest

from llamavis.errors import ConfigError, UsageError
from llamavis.run.session import RunOptions, Session, TaskArgs
from llamavis.tasks import prompts


def build_config(task, **kwargs):
    """A task's config the way every run resolves it: through a Session."""
    options, args = RunOptions.split(kwargs)
    return Session(options).config(TaskArgs(task, **args))


def write(tmp_path, text: str, name: str = "mine.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_dollar_signs_in_the_users_text_are_kept_as_written():
    cfg = build_config("vqa", question="Is it under $5, or ${price}?", provider="local")
    assert cfg.prompt_text.endswith("Is it under $5, or ${price}?")


def test_a_dollar_amount_in_a_template_file_is_text_not_a_placeholder(tmp_path):
    path = write(tmp_path, 'user = "Is the price on the tag above $5? $question"\n'
                           'variables = ["question"]\n')
    cfg = build_config("vqa", question="Look closely.", template=str(path), provider="local")
    assert cfg.prompt_text == "Is the price on the tag above $5? Look closely."


def test_a_template_without_user_text_is_a_config_error_naming_the_file(tmp_path):
    path = write(tmp_path, 'instructions = "Be brief."\n')
    with pytest.raises(ConfigError, match=r"mine\.toml: user: Field required"):
        prompts.get(str(path))


def test_a_template_path_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(UsageError, match="no such template file"):
        prompts.get(str(tmp_path / "missing.toml"))


def test_ocr_prompt_never_asks_for_an_empty_answer():
    # An empty answer is an error of kind provider (the contract), so an image without
    # text must get a short non-empty reply, not a failure.
    text = build_config("ocr", provider="local").prompt_text.lower()
    assert "empty" not in text and "(no text)" in text

