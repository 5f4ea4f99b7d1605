"""Turn what the user asked for into one resolved TaskConfig (provider, key, model, prompt).

Nothing here touches the network or an image; a TaskConfig is all a Runner needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from llamavis.backends.providers import ProviderSpec
from llamavis.engine.options import EngineOptions
from llamavis.errors import UsageError
from llamavis.providers.resolve import Route
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.tasks import prompts
from llamavis.tasks import specs as taskspecs
from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, GenParams, JSONObject

if TYPE_CHECKING:
    from llamavis.tasks.answers import OutputSpec

T = TypeVar("T")


@dataclass
class TaskConfig:
    """A task fully resolved: what to ask, whom, and how to check the answer."""

    task: str
    template: prompts.Template
    prompt_text: str
    provider: ProviderSpec
    model_id: str
    base_url: str
    params: GenParams
    api_key: str | None = field(default=None, repr=False)
    max_retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT_S
    classes: list[str] | None = None
    schema: JSONObject | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)  # -P transformers
    _checker: OutputSpec | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def route(self) -> Route:
        return Route(self.provider, self.model_id, self.base_url, self.api_key)

    @property
    def task_spec(self) -> taskspecs.TaskSpec:
        return taskspecs.get(self.task)

    @property
    def image_purpose(self) -> str:
        """How the image is encoded: "text" keeps small print legible (OCR)."""
        return self.task_spec.image_purpose

    def checker(self) -> OutputSpec:
        """The checker for this task's answers (llamavis.tasks.answers), built once per run."""
        if self._checker is None:
            self._checker = self.task_spec.make_checker(self.classes or [], self.schema)
        return self._checker

    def cache_parts(self) -> JSONObject:
        """Everything besides the image that decides the answer (never the key)."""
        return {
            "task": self.task,
            "prompt": self.prompt_text,
            "provider": self.provider.name,
            "base_url": self.base_url,
            "model": self.model_id,
            "params": self.params.to_dict(),
            "classes": self.classes,
            "schema": self.schema,
        }


def split_classes(values: list[str] | str | None) -> list[str]:
    """-c 'a,b' -c c -> ['a', 'b', 'c'], stripped, de-duplicated, order kept."""
    if isinstance(values, str):  # the API's classes="a,b": one value, not its characters
        values = [values]
    out: list[str] = []
    for value in values or []:
        for item in value.split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
    return out


def task_variables(
    task: str,
    *,
    question: str | None,
    classes: list[str],
    prompt: str | None,
    schema: JSONObject | None,
    extra: dict[str, str],
) -> dict[str, str]:
    """The $variables a task's template is rendered with."""
    from llamavis.tasks.schemas import schema_prompt

    variables = dict(extra)
    if question is not None:
        variables["question"] = question
    if prompt is not None:
        variables["prompt"] = prompt
    if classes:
        variables["classes"] = "\n".join(f"- {c}" for c in classes)
    if schema is not None:
        variables["fields"] = schema_prompt(schema)
    return variables


def build_config(args: TaskArgs, options: RunOptions, route: Callable[[], Route]) -> TaskConfig:
    """Resolve a task request into a TaskConfig, or raise Usage/ConfigError up front.

    The task's own problems are found before the provider's (a missing --classes is a
    usage error even without a key): ``route`` (the session's, from the one route
    resolver) is asked for only once the task's arguments are good.
    """
    class_list = split_classes(args.classes)
    task_spec = taskspecs.get(args.task)
    task_spec.check_inputs(class_list, args.schema)
    from llamavis.tasks.budget import answer_tokens
    from llamavis.tasks.schemas import load_schema

    # The API takes what --schema takes: a dict, a file path, inline JSON or concise text.
    json_schema = None
    if "schema" in task_spec.params and args.schema is not None:
        json_schema = load_schema(args.schema)
    check_numbers(options)
    tpl = prompts.get(options.template or task_spec.default_template)
    text = tpl.render(task_variables(
        args.task, question=args.question, classes=class_list, prompt=args.prompt,
        schema=json_schema, extra=dict(options.variables)))
    chosen = route()
    params = GenParams(
        # a class is spelled back whole: classify's budget grows with the longest class
        max_tokens=_first(options.max_tokens, answer_tokens(
            args.task, class_list, tpl.defaults.max_tokens or 1024)),
        temperature=_first(options.temperature, tpl.defaults.temperature),
        seed=options.seed,
        top_p=tpl.defaults.top_p,
    )
    return TaskConfig(
        task=args.task, template=tpl, prompt_text=text, provider=chosen.spec,
        model_id=chosen.model_id, base_url=chosen.base_url, params=params,
        api_key=chosen.api_key, max_retries=options.max_retries, timeout=options.timeout,
        classes=class_list or None, schema=json_schema, engine=options.engine,
    )


def check_numbers(options: RunOptions) -> None:
    """The numeric options in range, or a UsageError naming the option."""
    if options.temperature is not None and not 0.0 <= options.temperature <= 2.0:
        raise UsageError("--temperature must be between 0.0 and 2.0")
    if options.max_retries < 0:
        raise UsageError("--max-retries must be 0 or more")
    if options.max_tokens is not None and options.max_tokens < 1:
        raise UsageError("--max-tokens must be 1 or more")
    if not options.timeout > 0:
        raise UsageError("--timeout must be more than 0 seconds")


def _first(value: T | None, default: T) -> T:
    return default if value is None else value
