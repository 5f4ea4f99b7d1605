"""Providers as data: one OpenAI-compatible client serves them all.

Facts come from ../shared/providers.md; each row names what a provider does
differently (base URL, key variables, model ids, JSON mode, image rules).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..errors import UsageError

JsonMode = Literal["json_schema", "json_object", None]

# USD per million tokens (input, output) and per image, by provider model id.
# Sources: providers.md section 7 (public pages, dates vary). Estimates only: a
# provider's own usage.cost wins whenever the response carries one.
Price = tuple[float, float, float]  # (input $/Mtok, output $/Mtok, $/image)


@dataclass(frozen=True)
class ProviderSpec:
    """Everything llamavis needs to know to talk to one provider."""

    name: str
    base_url: str
    key_envs: tuple[str, ...]
    models: Mapping[str, str]
    json_mode: JsonMode = None
    key_required: bool = True
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    image_mimes: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
    # OpenRouter: require endpoints that honour response_format instead of
    # silently ignoring it.
    require_parameters: bool = False
    stream_usage: bool = True  # send stream_options.include_usage
    supports_seed: bool = True
    prices: Mapping[str, Price] = field(default_factory=dict)
    description: str = ""
    # Which client class speaks to it (backends/factory.py): "openai" for every
    # OpenAI-compatible endpoint; other wires get a class of their own.
    wire: str = "openai"

    def model_id(self, model: str | None) -> str:
        """Resolve an alias (11b/90b), a Roboflow model_version, or pass an id through."""
        if not model:
            model = "11b"
        alias = resolve_alias(model)
        if alias is not None:
            return self.models[alias]
        return model

    def price(self, model_id: str) -> Price | None:
        return self.prices.get(model_id)


_OPENROUTER_11B = "meta-llama/llama-3.2-11b-vision-instruct"
_OPENROUTER_90B = "meta-llama/llama-3.2-90b-vision-instruct"
_HF_11B = "meta-llama/Llama-3.2-11B-Vision-Instruct"
_HF_90B = "meta-llama/Llama-3.2-90B-Vision-Instruct"

PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            name="openrouter",
            base_url="https://openrouter.ai/api/v1",
            key_envs=("OPENROUTER_API_KEY",),
            models={"11b": _OPENROUTER_11B, "90b": _OPENROUTER_90B},
            json_mode="json_schema",
            require_parameters=True,
            extra_headers={
                "HTTP-Referer": "https://github.com/llamavis/llamavis",
                "X-OpenRouter-Title": "llamavis",
                "X-Title": "llamavis",
            },
            image_mimes=("image/jpeg", "image/png", "image/webp", "image/gif"),
            prices={
                _OPENROUTER_11B: (0.049, 0.049, 0.0),
                _OPENROUTER_90B: (0.35, 0.40, 0.0005058),
            },
            description="OpenRouter (hosted; routes to several upstream providers)",
        ),
        ProviderSpec(
            name="novita",
            base_url="https://api.novita.ai/v3/openai",
            key_envs=("NOVITA_API_KEY",),
            models={"11b": _OPENROUTER_11B, "90b": _OPENROUTER_90B},
            json_mode=None,
            # No public price found for Novita's 11B (providers.md section 7): costs unknown.
            description="Novita AI (hosted)",
        ),
        ProviderSpec(
            name="deepinfra",
            base_url="https://api.deepinfra.com/v1/openai",
            key_envs=("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN"),
            models={"11b": _HF_11B, "90b": _HF_90B},
            json_mode="json_object",
            prices={_HF_11B: (0.049, 0.049, 0.0), _HF_90B: (0.35, 0.40, 0.0)},
            description="DeepInfra (hosted)",
        ),
        ProviderSpec(
            name="local",
            base_url="http://127.0.0.1:8000/v1",
            key_envs=("LLAMAVIS_API_KEY",),
            models={"11b": _HF_11B, "90b": _HF_90B},
            json_mode="json_schema",
            key_required=False,
            description="any OpenAI-compatible server: vLLM <=0.10.2, MAX serve, TGI, transformers serve",
        ),
        ProviderSpec(
            name="ollama",
            base_url="http://127.0.0.1:11434/v1",
            key_envs=(),
            models={"11b": "llama3.2-vision:11b", "90b": "llama3.2-vision:90b"},
            json_mode="json_schema",
            key_required=False,
            stream_usage=True,
            description="Ollama's OpenAI-compatible endpoint (llama3.2-vision needs Ollama < 0.30)",
        ),
    )
}

# The order in which a provider is picked when none is named: the first with a key.
AUTO_ORDER = ("openrouter", "novita", "deepinfra", "local", "ollama")

# Roboflow's "Llama 3.2 Vision" block names its models like "11B (Free) - OpenRouter".
# The :free variants were withdrawn by OpenRouter (providers.md section 0 #10), so
# Free and Regular both map to the regular model id.
_ROBOFLOW = re.compile(r"^\s*(11|90)\s*B\s*\((free|regular)\)\s*-\s*openrouter\s*$", re.I)


def resolve_alias(model: str) -> str | None:
    """'11b', '90B', '11B (Free) - OpenRouter' -> '11b'/'90b'; None for a provider id."""
    m = model.strip().lower()
    if m in ("11b", "90b"):
        return m
    match = _ROBOFLOW.match(model)
    if match:
        return f"{match.group(1)}b"
    return None


def get_provider(name: str) -> ProviderSpec:
    """The spec for a provider name, or a UsageError listing the known ones."""
    try:
        return PROVIDERS[name.strip().lower()]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise UsageError(f"unknown provider {name!r}; choose one of: {known}") from None


def env_key(spec: ProviderSpec, environ: Mapping[str, str] | None = None) -> str | None:
    """The provider's key from the environment, if one is set."""
    env = os.environ if environ is None else environ
    for var in spec.key_envs:
        value = env.get(var, "").strip()
        if value:
            return value
    return None
