"""Turn what the user asked for into one resolved TaskConfig (provider, key, model, prompt).

Nothing here touches the network or an image; a TaskConfig is all a Runner needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from llamavis.backends.providers import (
    AUTO_ORDER,
    PROVIDERS,
    ProviderSpec,
    env_key,
    get_provider,
    resolve_base_url,
)
from llamavis.engine.options import EngineOptions
from llamavis.errors import ConfigError, UsageError
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.store.paths import load_keys
from llamavis.tasks import prompts
from llamavis.tasks import specs as taskspecs
from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, GenParams, JSONObject

if TYPE_CHECKING:
    from llamavis.tasks.answers import OutputSpec

T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    """Whom a request goes to: the provider, its model id, its endpoint and the key."""

    spec: ProviderSpec
    model_id: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)


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


def resolve_route(
    provider: str | None, model: str | None, base_url: str | None, api_key: str | None,
    *, require_key: bool = True,
) -> Route:
    """Whom to ask: the provider (named, LLAMAVIS_PROVIDER or the first with a key),
    its endpoint, its model id and the key; Usage/ConfigError when one is wrong."""
    base_url = base_url or os.environ.get("LLAMAVIS_BASE_URL") or None
    if base_url:
        from llamavis.backends.client import checked_base_url

        base_url = checked_base_url(base_url)  # a UsageError now, not once per image
    spec = pick_provider(provider, base_url, api_key)
    key = find_key(spec, api_key, required=require_key)
    model = model or os.environ.get("LLAMAVIS_MODEL") or None
    # --base-url, then LLAMAVIS_<PROVIDER>_BASE_URL, then the provider's default
    return Route(spec, spec.model_id(model), resolve_base_url(spec, base_url), key)


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


def pick_provider(name: str | None, base_url: str | None, api_key: str | None) -> ProviderSpec:
    """The provider named, else LLAMAVIS_PROVIDER, else the first with a key set."""
    name = name or os.environ.get("LLAMAVIS_PROVIDER") or None
    if name:
        return get_provider(name)
    stored = load_keys()
    for candidate in AUTO_ORDER:
        spec = PROVIDERS[candidate]
        if spec.key_envs and (env_key(spec) or stored.get(candidate)):
            return spec
    if base_url or api_key:
        return PROVIDERS["local"]
    raise ConfigError(
        "no provider configured",
        hint="set DEEPINFRA_API_KEY (or another provider's key, see `llamavis providers`), "
        "run `llamavis keys set deepinfra`, or use --provider local/ollama with --base-url; "
        "`llamavis doctor` shows which routes serve the model",
    )


def find_key(spec: ProviderSpec, api_key: str | None, *, required: bool = True) -> str | None:
    """--api-key, else the environment, else the keys file; ConfigError if required and none."""
    if api_key:
        return api_key
    key = env_key(spec) or load_keys().get(spec.name)
    if key or not spec.key_required or not required:
        return key
    var = spec.key_envs[0]
    raise ConfigError(
        f"no API key for {spec.name}",
        hint=f"set {var} or run `llamavis keys set {spec.name}`",
    )


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


def build_config(args: TaskArgs, options: RunOptions, *, require_key: bool = True,
                 route: Route | None = None) -> TaskConfig:
    """Resolve a task request into a TaskConfig, or raise Usage/ConfigError up front.

    The task's own problems are found before the provider's (a missing --classes is a
    usage error even without a key). ``route`` skips resolving provider, model, endpoint
    and key again (a session reuses the one it resolved first).
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
    if route is None:
        route = resolve_route(options.provider, options.model, options.base_url,
                              options.api_key, require_key=require_key)
    params = GenParams(
        # a class is spelled back whole: classify's budget grows with the longest class
        max_tokens=_first(options.max_tokens, answer_tokens(
            args.task, class_list, tpl.defaults.max_tokens or 1024)),
        temperature=_first(options.temperature, tpl.defaults.temperature),
        seed=options.seed,
        top_p=tpl.defaults.top_p,
    )
    return TaskConfig(
        task=args.task, template=tpl, prompt_text=text, provider=route.spec,
        model_id=route.model_id, base_url=route.base_url, params=params,
        api_key=route.api_key, max_retries=options.max_retries, timeout=options.timeout,
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
