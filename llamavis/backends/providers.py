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

from llamavis.errors import ConfigError, UsageError

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
    # The provider's own variables for its endpoint, read after LLAMAVIS_<NAME>_BASE_URL
    # (Azure: the user's endpoint, no default).
    base_url_envs: tuple[str, ...] = ()
    # Variables that fill "{account}" in base_url (Cloudflare's account id).
    account_envs: tuple[str, ...] = ()
    # How the key travels: "bearer" (Authorization), or "bearer+api-key" as Azure's
    # inference SDK sends it (Foundry endpoints take one header, serverless the other).
    key_header: Literal["bearer", "bearer+api-key"] = "bearer"
    api_version: str | None = None  # the api-version query parameter, where one is needed
    # Takes vLLM's extra request fields for constrained decoding (guided_choice,
    # guided_regex, guided_json): classify and multi-classify then send their classes.
    guided: bool = False
    # The longest data: URL one request may carry inline (NVIDIA: 180,000 base64
    # characters); every image is re-encoded, and shrunk if need be, to fit it.
    max_image_url: int | None = None

    def model_id(self, model: str | None) -> str:
        """Resolve an alias (11b/90b/scout/maverick), a Roboflow model_version, or pass an id."""
        if not model:
            model = "11b"
        alias = resolve_alias(model)
        if alias is None:
            return model
        if alias not in self.models:
            served = ", ".join(self.models) or "none"
            raise UsageError(f"{self.name} does not serve {alias}; its aliases: {served}",
                             hint="give a model id with -m, or see `llamavis models`")
        return self.models[alias]

    def alias_of(self, model_id: str) -> str | None:
        """The alias this provider serves ``model_id`` under, if any."""
        return next((alias for alias, known in self.models.items() if known == model_id), None)

    def price(self, model_id: str) -> Price | None:
        return self.prices.get(model_id)


_OPENROUTER_11B = "meta-llama/llama-3.2-11b-vision-instruct"
_OPENROUTER_90B = "meta-llama/llama-3.2-90b-vision-instruct"
_HF_11B = "meta-llama/Llama-3.2-11B-Vision-Instruct"
_HF_90B = "meta-llama/Llama-3.2-90B-Vision-Instruct"
_HF_SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
_HF_MAVERICK = "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"
_CF_11B = "@cf/meta/llama-3.2-11b-vision-instruct"
_HF_IDS = {"11b": _HF_11B, "90b": _HF_90B, "scout": _HF_SCOUT, "maverick": _HF_MAVERICK}

PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            name="nvidia",
            base_url="https://integrate.api.nvidia.com/v1",
            key_envs=("NVIDIA_API_KEY",),
            models={"11b": "meta/llama-3.2-11b-vision-instruct",
                    "90b": "meta/llama-3.2-90b-vision-instruct",
                    "scout": "meta/llama-4-scout-17b-16e-instruct"},
            json_mode=None,  # no response_format documented for these models: prompt + check
            stream_usage=False,
            max_image_url=180_000,  # larger images would have to be NVCF asset uploads
            # A free developer tier (credits); no per-token price published: cost unknown.
            description="NVIDIA API catalog (hosted, free developer tier; inline images up "
                        "to 180,000 base64 characters)",
        ),
        ProviderSpec(
            name="openrouter",
            base_url="https://openrouter.ai/api/v1",
            key_envs=("OPENROUTER_API_KEY",),
            models={"11b": _OPENROUTER_11B, "90b": _OPENROUTER_90B,
                    "scout": "meta-llama/llama-4-scout", "maverick": "meta-llama/llama-4-maverick"},
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
            description="OpenRouter (hosted; lists Llama 3.2 Vision with no live endpoint)",
        ),
        ProviderSpec(
            name="novita",
            base_url="https://api.novita.ai/v3/openai",
            key_envs=("NOVITA_API_KEY",),
            models={"11b": _OPENROUTER_11B, "90b": _OPENROUTER_90B},
            json_mode=None,
            # No public price found for Novita's 11B (providers.md section 7): costs unknown.
            description="Novita AI (hosted; retired the 11B on 2025-05-28)",
        ),
        ProviderSpec(
            name="deepinfra",
            base_url="https://api.deepinfra.com/v1/openai",
            key_envs=("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN"),
            models=_HF_IDS,
            json_mode="json_object",
            prices={_HF_11B: (0.049, 0.049, 0.0), _HF_90B: (0.35, 0.40, 0.0)},
            description="DeepInfra (hosted)",
        ),
        ProviderSpec(
            name="cloudflare",
            # Workers AI's native API: its OpenAI-compatible path is reported to answer image
            # parts with empty content on this model (providers.md section 10).
            base_url="https://api.cloudflare.com/client/v4/accounts/{account}/ai",
            key_envs=("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_AUTH_TOKEN"),
            account_envs=("CLOUDFLARE_ACCOUNT_ID",),
            models={"11b": _CF_11B, "scout": "@cf/meta/llama-4-scout-17b-16e-instruct"},
            json_mode=None,
            stream_usage=False,
            prices={_CF_11B: (0.049, 0.68, 0.0)},  # cloudflare-docs model page
            description="Cloudflare Workers AI (hosted, native API; 11B only)",
            wire="cloudflare",
        ),
        ProviderSpec(
            name="azure",
            base_url="",  # the user's own Foundry or serverless endpoint
            base_url_envs=("AZURE_AI_CHAT_ENDPOINT",),
            key_envs=("AZURE_AI_CHAT_KEY",),
            # 3.2 Vision retired on Azure 2026-06-13 (providers/facts.py); Llama 4 stays.
            models={"11b": "Llama-3.2-11B-Vision-Instruct", "90b": "Llama-3.2-90B-Vision-Instruct",
                    "scout": "Llama-4-Scout-17B-16E-Instruct",
                    "maverick": "Llama-4-Maverick-17B-128E-Instruct-FP8"},
            json_mode="json_object",
            key_header="bearer+api-key",
            # The REST version azure-ai-inference uses for Foundry, serverless and managed
            # endpoints alike; a base URL that carries its own api-version keeps it.
            api_version="2024-05-01-preview",
            description="Azure AI Foundry (your endpoint: serverless API or Foundry models)",
        ),
        ProviderSpec(
            name="langmart",
            base_url="https://api.langmart.ai/v1",
            key_envs=("LANGMART_API_KEY",),
            models={"11b": _OPENROUTER_11B, "90b": _OPENROUTER_90B},
            json_mode=None,
            prices={_OPENROUTER_90B: (0.35, 0.40, 0.0005058)},  # langmart.ai model docs
            description="LangMart (hosted gateway; DeepInfra upstream)",
        ),
        ProviderSpec(
            name="local",
            base_url="http://127.0.0.1:8000/v1",
            key_envs=("LLAMAVIS_API_KEY",),
            models=_HF_IDS,
            json_mode="json_schema",
            key_required=False,
            description="any OpenAI-compatible server: vLLM <=0.10.2, SGLang, MLX-VLM, TGI, "
                        "transformers serve",
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
        ProviderSpec(
            name="transformers",
            base_url="in-process://transformers",  # no server: the model runs in llamavis
            key_envs=(),
            models={"11b": _HF_11B, "90b": _HF_90B},
            json_mode="json_schema",  # held to the schema while generating (llguidance)
            key_required=False,
            image_mimes=("image/jpeg", "image/png", "image/webp", "image/gif"),
            stream_usage=False,
            guided=True,
            wire="transformers",
            description="Hugging Face transformers in this process (pip install 'llamavis[local]'); "
                        "-m a repo id or a local directory",
        ),
    )
}

# The order in which configured providers are tried when none is named.
# Ties only: routes are tried by their known status first (providers/facts.py: live
# first, dead last), then in this order.
AUTO_ORDER = ("nvidia", "cloudflare", "deepinfra", "langmart", "azure", "openrouter", "novita",
              "local", "ollama")

# Roboflow's "Llama 3.2 Vision" block names its models like "11B (Free) - OpenRouter".
# The :free variants were withdrawn by OpenRouter (providers.md section 0 #10), so
# Free and Regular both map to the regular model id.
_ROBOFLOW = re.compile(r"^\s*(11|90)\s*B\s*\((free|regular)\)\s*-\s*openrouter\s*$", re.I)


def resolve_alias(model: str) -> str | None:
    """'11b', '90B', 'scout', '11B (Free) - OpenRouter' -> the alias; None for a provider id."""
    m = model.strip().lower()
    if m in ("11b", "90b", "scout", "maverick"):
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


def base_url_env(spec: ProviderSpec) -> str:
    """The variable that sets this provider's endpoint: LLAMAVIS_<NAME>_BASE_URL."""
    return f"LLAMAVIS_{spec.name.upper()}_BASE_URL"


def resolve_base_url(
    spec: ProviderSpec, explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The endpoint for ``spec``: --base-url, then LLAMAVIS_<NAME>_BASE_URL, then the
    provider's own variables, then the default; ConfigError naming what to set if none."""
    env = os.environ if environ is None else environ
    for value in (explicit, *(env.get(var) for var in (base_url_env(spec), *spec.base_url_envs))):
        if value and value.strip():
            return value.strip().rstrip("/")
    if not spec.base_url:
        names = " or ".join((*spec.base_url_envs, base_url_env(spec)))
        raise ConfigError(f"no endpoint for {spec.name}",
                          hint=f"set {names} to your endpoint, or pass --base-url")
    if "{account}" not in spec.base_url:
        return spec.base_url
    account = next((env[v].strip() for v in spec.account_envs if env.get(v, "").strip()), None)
    if account is None:
        raise ConfigError(f"no {spec.name} account id",
                          hint=f"set {spec.account_envs[0]}, or pass --base-url with the account in it")
    return spec.base_url.replace("{account}", account)
