"""Models as data: what each model family needs, and where each still lives.

Beside ``providers.py``: a *profile* says how a model family takes images (how many,
where, how large, whether a system message may stand beside one); a *route status*
says what is known about one model on one provider, with its source, so that error
messages, ``llamavis models`` and ``llamavis doctor`` can tell the truth about routes
that are gone. Sources: ../shared/providers.md sections 2 and 10 (dates as given there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ModelProfile:
    """The request rules of one model family."""

    family: str
    title: str
    aliases: tuple[str, ...]
    max_images: int  # images one request may carry
    system_with_image: bool  # may a system message stand beside an image?
    image_first: bool  # the image part goes before the text
    max_side: int  # longest image side worth sending, in pixels
    pattern: re.Pattern[str]  # recognises the family in any provider's model id


LLAMA_32_VISION = ModelProfile(
    family="llama-3.2-vision",
    title="Llama 3.2 Vision",
    aliases=("11b", "90b"),
    # One image per prompt (Meta; Ollama and early vLLM enforce it); the chat template
    # raises on a system message beside an image; 4 tiles of 560 px, 1120 px square.
    max_images=1,
    system_with_image=False,
    image_first=True,
    max_side=1120,
    pattern=re.compile(r"llama[-_ ]?3\.2.*vision|llama3\.2-vision|mllama", re.I),
)
LLAMA_4 = ModelProfile(
    family="llama-4",
    title="Llama 4",
    aliases=("scout", "maverick"),
    # Model card: text + up to 5 images, system prompt allowed; the image processor cuts
    # 336 px tiles, at most 16 of them (plus a global view): 4 x 336 = 1344 px square.
    max_images=5,
    system_with_image=True,
    image_first=True,
    max_side=1344,
    pattern=re.compile(r"llama[-_ ]?4|scout|maverick", re.I),
)
PROFILES = (LLAMA_32_VISION, LLAMA_4)
ALIASES = tuple(alias for profile in PROFILES for alias in profile.aliases)


def profile_for(model: str | None) -> ModelProfile:
    """The profile of an alias or a provider's model id; Llama 3.2 Vision by default."""
    text = (model or "").strip().lower()
    for profile in PROFILES:
        if text in profile.aliases or profile.pattern.search(text):
            return profile
    return LLAMA_32_VISION


def is_llama32_vision(model_id: str) -> bool:
    """Whether a server's model id names Llama 3.2 Vision (for `llamavis models`)."""
    return bool(LLAMA_32_VISION.pattern.search(model_id))


State = Literal["served", "listed_no_endpoint", "retired", "unknown"]


@dataclass(frozen=True)
class RouteStatus:
    """What is known about one model on one route, and where that knowledge comes from."""

    state: State
    source: str
    since: str | None = None  # the date the state began (retirement, last evidence)
    note: str = ""

    def short(self) -> str:
        """A few words for tables: 'served', 'retired 2025-05-28', 'no endpoint (2026-08-31)'."""
        words = {"served": "served", "listed_no_endpoint": "listed, no endpoint",
                 "retired": "retired", "unknown": "unknown"}[self.state]
        if not self.since:
            return words
        return f"{words} {self.since}" if self.state == "retired" else f"{words} ({self.since})"

    def describe(self) -> str:
        """The short form with its note, for messages."""
        return f"{self.short()}; {self.note}" if self.note else self.short()


_OPENROUTER_GONE = RouteStatus(
    "listed_no_endpoint", "roboflow/inference PR #2893 (deprecates its block for this reason)",
    "2026-08-31", 'answers 404 "No endpoints found"')
_DEEPINFRA = RouteStatus("served", "deepinfra.com model /api pages; models.dev (2026-07)",
                         note="probably (evidence from 2026-07)")
_LOCAL = RouteStatus("unknown", "providers.md section 10",
                     note="depends on your server (vLLM <= 0.10.2, Ollama < 0.30, SGLang, MLX-VLM)")
_IN_PROCESS = RouteStatus("served", "huggingface.co/docs/transformers model_doc/mllama (5.x)",
                          note="in this process (pip install 'llamavis[local]'); Meta's weights "
                               "are gated: accept the licence, `hf auth login`")

STATUS: dict[tuple[str, str], RouteStatus] = {
    ("openrouter", "11b"): _OPENROUTER_GONE,
    ("openrouter", "90b"): _OPENROUTER_GONE,
    ("openrouter", "scout"): RouteStatus("served", "providers.md section 10 (successors)"),
    ("openrouter", "maverick"): RouteStatus("served", "providers.md section 10 (successors)"),
    ("novita", "11b"): RouteStatus("retired", "novita.ai/docs changelog 14-05-25", "2025-05-28",
                                   "replacement suggested: qwen2.5-vl-72b"),
    ("novita", "90b"): RouteStatus("unknown", "not found in any source"),
    ("deepinfra", "11b"): _DEEPINFRA,
    ("deepinfra", "90b"): _DEEPINFRA,
    ("deepinfra", "scout"): RouteStatus("served", "providers.md section 10 (successors)"),
    ("deepinfra", "maverick"): RouteStatus("served", "providers.md section 10 (successors)"),
    ("cloudflare", "11b"): RouteStatus(
        "served", "cloudflare-docs workers-ai-models/llama-3.2-11b-vision-instruct.json; "
        "not among the models deprecated 2026-05-30", note="accept Meta's licence once"),
    ("cloudflare", "scout"): RouteStatus("served", "providers.md section 10 (successors)"),
    ("azure", "11b"): RouteStatus("served", "Azure Foundry model card; models.dev (2026-07)",
                                  note="on your own deployment; no retirement notice found"),
    ("azure", "90b"): RouteStatus("served", "Azure Foundry model card; models.dev (2026-07)",
                                  note="on your own deployment; no retirement notice found"),
    ("langmart", "11b"): RouteStatus("served", "langmart.ai model docs",
                                     note="DeepInfra as primary provider"),
    ("langmart", "90b"): RouteStatus("served", "langmart.ai model docs",
                                     note="DeepInfra as primary provider"),
    ("local", "11b"): _LOCAL,
    ("local", "90b"): _LOCAL,
    ("ollama", "11b"): RouteStatus("unknown", "ollama/ollama#16490", note="needs Ollama < 0.30"),
    ("ollama", "90b"): RouteStatus("unknown", "ollama/ollama#16490", note="needs Ollama < 0.30"),
    ("transformers", "11b"): _IN_PROCESS,
    ("transformers", "90b"): _IN_PROCESS,
}

# Routes llamavis has no provider for, listed so that nobody goes looking for them.
GONE: dict[str, RouteStatus] = {
    "groq": RouteStatus("retired", "valentinfrlch/ha-llmvision#311", "2025-04-14"),
    "bedrock": RouteStatus("retired", "AWS model card", "2026-07-07", "90B legacy, end of life"),
    "github-models": RouteStatus("retired", "GitHub community discussion 203602", "2026-07-30"),
    "together, fireworks, sambanova, vertex": RouteStatus(
        "retired", "stanford-crfm/helm PR #4104; Kiln-AI/Kiln PR #1790",
        note="gone or not in current catalogues"),
}


def status(provider: str, alias: str) -> RouteStatus:
    """The known status of a model alias on a provider ('unknown' when nothing is known)."""
    return STATUS.get((provider, alias), RouteStatus("unknown", "no source"))


def serving_routes(alias: str = "11b", *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Hosted providers whose table says they serve the alias, best evidence first."""
    order = ("deepinfra", "cloudflare", "langmart", "azure", "openrouter", "novita")
    return [name for name in order if name not in exclude
            and STATUS.get((name, alias), _LOCAL).state == "served"]


@dataclass(frozen=True)
class LocalStack:
    """A local server that still runs Llama 3.2 Vision: how to start it, how to reach it."""

    name: str
    provider: str  # the llamavis provider to use with it
    base_url: str
    model: str
    command: str
    note: str = ""


_HF_11B = "meta-llama/Llama-3.2-11B-Vision-Instruct"
LOCAL_STACKS = (
    LocalStack("vLLM <= 0.10.2 (GPU)", "local", "http://127.0.0.1:8000/v1", _HF_11B,
               f"pip install 'vllm==0.10.2' && vllm serve {_HF_11B} --enforce-eager "
               "--max-num-seqs 16", "later releases dropped mllama"),
    LocalStack("Ollama < 0.30", "ollama", "http://127.0.0.1:11434/v1", "llama3.2-vision:11b",
               "ollama serve & ollama pull llama3.2-vision",
               "with an Ollama older than 0.30: later ones cannot run llama3.2-vision"),
    LocalStack("SGLang", "local", "http://127.0.0.1:30000/v1", _HF_11B,
               f"python -m sglang.launch_server --model-path {_HF_11B} --port 30000",
               "mllama support in current releases unverified"),
    LocalStack("MLX-VLM (Apple silicon)", "local", "http://127.0.0.1:8080/v1",
               "mlx-community/Llama-3.2-11B-Vision-Instruct-4bit",
               "pip install mlx-vlm && python -m mlx_vlm.server --model "
               "mlx-community/Llama-3.2-11B-Vision-Instruct-4bit --port 8080",
               "the model id is the MLX repo you load"),
    LocalStack("transformers serve", "local", "http://127.0.0.1:8000/v1", _HF_11B,
               "pip install 'transformers[serving]' && transformers serve --port 8000",
               "runs on a CPU too, slowly"),
)
