"""A task command's parameters as one typed object, and what the core needs from them.

Typer hands a command its options as keyword arguments named in ``cli/options.py``;
``Invocation(**those)`` gives each a type (a misspelt name fails at once instead of
silently taking a default), and ``run_options()`` / ``task_args()`` turn them into the
core's ``RunOptions`` and ``TaskArgs``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamavis.engine.options import EngineOptions
from llamavis.errors import UsageError
from llamavis.run.options import RunOptions, TaskArgs
from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Invocation:
    """Every option of a task command (cli/options.py), by its parameter name."""

    images: list[str] | None = None
    # the task's own options (only those its TaskSpec names are on its command)
    question: str | None = None
    classes: list[str] | None = None
    prompt: str | None = None
    field: list[str] | None = None
    schema: str | None = None
    show_schema: bool = False
    # model
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    template: str | None = None
    var: list[str] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_RETRIES
    # output
    json_out: bool = False
    jsonl: bool = False
    ordered: bool = False
    output_dir: Path | None = None
    overwrite: bool = False
    no_stream: bool = False
    dry_run: bool = False
    usage: bool = False
    debug: bool = False
    # batch
    concurrency: int | None = None
    max_cost: float | None = None
    no_cache: bool = False
    # input
    recursive: bool = False
    files_from: str | None = None
    null: bool = False
    fallback: str | None = None  # a model option, appended last in cli/options.py
    no_fallback: bool = False
    # the in-process engine (-P transformers)
    device: str | None = None
    dtype: str | None = None
    load_in_4bit: bool = False
    batch_size: int | None = None
    # dataset captioning (llamavis.dataset) and ocr's pages and tiles
    sidecar: str | None = None
    sidecar_mode: str = "skip"
    prefix: str = ""
    suffix: str = ""
    captions: int = 1
    manifest: Path | None = None
    write_metadata: bool = False
    tiles: str | None = None
    dpi: int = 300

    def run_options(self) -> RunOptions:
        """The options the core takes: what to ask whom, and how a batch runs."""
        return RunOptions(
            provider=self.provider, model=self.model, base_url=self.base_url,
            api_key=self.api_key, template=self.template, variables=parse_vars(self.var),
            max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed,
            timeout=self.timeout, max_retries=self.max_retries, concurrency=self.concurrency,
            cache=not self.no_cache, max_cost=self.max_cost,
            ordered=self.ordered, fallback=self.fallback, failover=not self.no_fallback,
            engine=self.engine_options(),
            captions=self.captions, tiles=parse_tiles(self.tiles),
        )

    def engine_options(self) -> EngineOptions:
        """--device, --dtype, --load-in-4bit, --batch-size, checked (the one check)."""
        from llamavis.engine.options import CLI_NAMES, engine_from_cli

        return engine_from_cli({name: getattr(self, name) for name in CLI_NAMES})

    def task_args(self, task: str) -> TaskArgs:
        """The task and its own arguments (``--field``/``--schema`` made one JSON Schema)."""
        return TaskArgs(task, question=self.question, classes=self.classes,
                        prompt=self.prompt, schema=self.json_schema(task))

    def json_schema(self, task: str) -> dict[str, Any] | None:
        """The JSON Schema that --field/--schema build, for a task that takes one."""
        from llamavis.tasks import specs as taskspecs

        if "schema" not in taskspecs.get(task).params:
            return None
        from llamavis.tasks.schemas import schema_from_options

        return schema_from_options(self.field, self.schema)


def parse_tiles(value: str | None) -> str | int | None:
    """--tiles auto|N: "auto", a number of strips, or None; anything else is a usage error."""
    if value is None or value.strip().lower() == "auto":
        return None if value is None else "auto"
    if value.strip().isdigit() and int(value) >= 1:
        return int(value)
    raise UsageError(f"--tiles takes auto or a number of strips (1 or more), got {value!r}")


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    """--var KEY=VALUE ... as a dict; a pair without "=" is a usage error."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out
