"""The one options object of a run, from the command line's keywords to the wire.

``RunOptions`` is everything a run takes besides the task and the images, typed and
checked once: the in-process engine's options are an ``EngineOptions`` by the time a
``RunOptions`` exists (the API may hand a dict; it is checked here). ``TaskArgs`` is the
task and its own arguments. The defaults are written once, in ``llamavis.types``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from llamavis.engine.options import EngineOptions
from llamavis.types import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class RunOptions:
    """What a run takes besides the task and the images: the CLI's options, typed.

    The defaults are the command line's: the cache is on, 4 requests in flight (two
    batches' worth for the in-process engine), 2 retries, 120 s per request.
    """

    provider: str | None = None  # None: LLAMAVIS_PROVIDER, else the first with a key set
    model: str | None = None  # an alias (11b, 90b) or a provider's model id
    base_url: str | None = None  # None: LLAMAVIS_BASE_URL, else the provider's endpoint
    api_key: str | None = field(default=None, repr=False)  # None: environment, keys file
    template: str | None = None  # a template name or .toml path (default: the task's)
    variables: Mapping[str, str] = field(default_factory=dict)  # template $variables
    max_tokens: int | None = None  # None: the template's
    temperature: float | None = None  # None: the template's
    seed: int | None = None
    timeout: float = DEFAULT_TIMEOUT_S  # seconds allowed for one request
    max_retries: int = DEFAULT_RETRIES  # retries of a failed request, re-asks of a bad answer
    concurrency: int | None = None  # requests in flight; None: 4 (in-process: 2 batches)
    cache: bool = True  # read and write the on-disk result cache
    max_cost: float | None = None  # USD: start no new request once the batch would pass it
    ordered: bool = False  # deliver results in input order (else as they finish)
    # -P transformers: device, dtype, load_in_4bit, batch_size; a dict is checked into one
    engine: EngineOptions = field(default_factory=EngineOptions)
    # routes to ask when the provider cannot serve an image: "deepinfra,cloudflare:11b" or a list
    fallback: str | Sequence[str] | None = None
    # with no provider pinned, move an image on to the other configured routes (--no-fallback)
    failover: bool = True
    captions: int = 1  # answers per image, each its own request and seed (llamavis.run.captions)
    tiles: str | int | None = None  # ocr: "auto" or N strips per page (llamavis.run.tiled)

    def __post_init__(self) -> None:
        if not isinstance(self.engine, EngineOptions):  # the API's engine={"device": "cpu"}
            engine: Mapping[str, Any] | None = self.engine
            object.__setattr__(self, "engine", EngineOptions.from_mapping(engine))

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[RunOptions, dict[str, Any]]:
        """(the RunOptions among ``kwargs``, the rest) — for ``analyze(..., **everything)``."""
        names = cls.names()
        return (cls(**{k: v for k, v in kwargs.items() if k in names}),
                {k: v for k, v in kwargs.items() if k not in names})

    def as_kwargs(self) -> dict[str, Any]:
        """The options by name, as ``Client(**options)`` takes them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def routes(self) -> list[str]:
        """--fallback as a list of route texts (each may hold several, comma-separated)."""
        value = self.fallback
        return [value] if isinstance(value, str) else list(value or ())


@dataclass(frozen=True)
class TaskArgs:
    """One task and its own arguments: what may differ from call to call on one Client."""

    task: str = "caption"
    question: str | None = None
    classes: list[str] | str | None = None  # a list of classes, or "a,b,c" as --classes takes it
    prompt: str | None = None
    schema: dict[str, Any] | str | None = None  # a JSON Schema, or what --schema takes

    def key(self) -> str:
        """A canonical text of the arguments: equal calls share one resolved config."""
        return json.dumps([self.task, self.question, self.classes, self.prompt, self.schema],
                          sort_keys=True, default=str)
