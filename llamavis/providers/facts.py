"""Where Llama 3.2 Vision lives: route facts as data, each with its source and its date.

A *route status* says what is known about one model on one provider: its state, the
source, the date the state began (``since``) and the date it was last confirmed
(``checked``), so that ``llamavis models``, ``llamavis doctor``, error hints and the
default route order can tell the truth about routes that are gone, and say how old the
knowledge is. Sources: ../shared/providers.md sections 10 and 11 (December 2026).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

State = Literal["served", "unconfirmed", "unknown", "listed_no_endpoint", "retired"]
# Live first, dead last: the order in which the default failover tries configured routes.
RANK: dict[str, int] = {"served": 0, "unconfirmed": 1, "unknown": 2, "listed_no_endpoint": 3,
                        "retired": 4}
_WORDS = {"served": "served", "unconfirmed": "unconfirmed", "unknown": "unknown",
          "listed_no_endpoint": "listed, no endpoint", "retired": "retired"}


@dataclass(frozen=True)
class RouteStatus:
    """What is known about one model on one route, where that comes from, and when."""

    state: State
    source: str
    checked: str  # the date (ISO) the state was last confirmed by its source
    since: str | None = None  # the date the state began (retirement, last evidence)
    note: str = ""

    @property
    def live(self) -> bool:
        return self.state == "served"

    @property
    def dead(self) -> bool:
        return self.state in ("listed_no_endpoint", "retired")

    def short(self) -> str:
        """A few words for tables: 'served', 'retired 2025-05-28', 'unconfirmed since 2026-07-02'."""
        words = _WORDS[self.state]
        if not self.since:
            return words
        if self.state == "retired":
            return f"{words} {self.since}"
        if self.state == "unconfirmed":
            return f"{words} since {self.since}"
        return f"{words} ({self.since})"

    def describe(self) -> str:
        """The short form with its note, for messages."""
        return f"{self.short()}; {self.note}" if self.note else self.short()

    def age_days(self, today: dt.date | None = None) -> int:
        """Days since the fact was last confirmed."""
        day = today or dt.date.today()
        return max(0, (day - dt.date.fromisoformat(self.checked)).days)

    def age(self, today: dt.date | None = None) -> str:
        """'checked 2026-09-05, 92 days ago' for tables and doctor."""
        days = self.age_days(today)
        return f"checked {self.checked}, {days} day{'s' if days != 1 else ''} ago"

    def to_dict(self, today: dt.date | None = None) -> dict[str, object]:
        return {"state": self.state, "status": self.short(), "since": self.since,
                "checked": self.checked, "age_days": self.age_days(today),
                "source": self.source, "note": self.note}


_P11 = "providers.md section 11"
_OPENROUTER_GONE = RouteStatus(
    "listed_no_endpoint", "roboflow/inference PR #2893 (deprecates its block for this reason); "
    "models.dev history", "2026-08-31", "2026-08-31", 'answers 404 "No endpoints found"')
_DEEPINFRA = RouteStatus(
    "unconfirmed", "anomalyco/models.dev history (no longer listed 2026-07-02); OpenRouter, "
    "its downstream, has no endpoint", "2026-07-02", "2026-07-02",
    "no notice either way; `llamavis doctor --probe` tells")
_AZURE_GONE = RouteStatus(
    "retired", "learn.microsoft.com foundry model-retirement-schedule (ms.date 2026-09-02)",
    "2026-09-02", "2026-06-13", "Llama 4 Scout and Maverick stay on Azure")
_AZURE_L4 = RouteStatus("served", "learn.microsoft.com foundry model-retirement-schedule "
                        "(ms.date 2026-09-02)", "2026-09-02", note="on your own deployment")
_LOCAL = RouteStatus("unknown", "providers.md sections 10 and 11", "2026-12-01",
                     note="depends on your server (vLLM <= 0.10.2, Ollama < 0.30, SGLang, "
                          "MAX 25.3-25.7, mistral.rs, MLX-VLM, transformers serve)")
_IN_PROCESS = RouteStatus("served", "huggingface.co/docs/transformers model_doc/mllama (5.x); "
                          "our own tests", "2026-12-01",
                          note="in this process (pip install 'llamavis[local]'); Meta's weights "
                               "are gated: accept the licence, `hf auth login`")
_NVIDIA_NOTE = "free developer tier; inline images up to 180,000 base64 characters"
_LANGMART = RouteStatus("unconfirmed", "langmart.ai model docs (DeepInfra as its primary "
                        "provider)", "2026-07-02", "2026-07-02",
                        "rides on DeepInfra, itself unconfirmed")
_SUCCESSOR = RouteStatus("served", "providers.md section 10 (successors)", "2026-08-31")
_OLLAMA = RouteStatus("unknown", "ollama/ollama#16490", "2026-08-31", note="needs Ollama < 0.30")

STATUS: dict[tuple[str, str], RouteStatus] = {
    ("nvidia", "11b"): RouteStatus("served", f"{_P11}: called successfully (GetStream/"
                                   "Vision-Agents nvidia plugin, PR #625)", "2026-07-30",
                                   note=_NVIDIA_NOTE),
    ("nvidia", "90b"): RouteStatus("served", f"{_P11}: listed in /v1/models (openmake_llm "
                                   "PR #749)", "2026-09-05", note=_NVIDIA_NOTE),
    ("nvidia", "maverick"): RouteStatus("retired", "NVIDIA-Omniverse/usd-content-agents PR #13",
                                        "2026-07-27", "2026-07-27", "410 Gone"),
    ("cloudflare", "11b"): RouteStatus(
        "served", "cloudflare-docs workers-ai-models/llama-3.2-11b-vision-instruct.json and "
        "changelog (no deprecation up to 2026-10-09)", "2026-10-09",
        note="accept Meta's licence once (`llamavis agree cloudflare`); free daily allowance"),
    ("cloudflare", "scout"): _SUCCESSOR,
    ("openrouter", "11b"): _OPENROUTER_GONE,
    ("openrouter", "90b"): _OPENROUTER_GONE,
    ("openrouter", "scout"): _SUCCESSOR,
    ("openrouter", "maverick"): _SUCCESSOR,
    ("novita", "11b"): RouteStatus("retired", "novita.ai/docs changelog 14-05-25", "2025-05-28",
                                   "2025-05-28", "replacement suggested: qwen2.5-vl-72b"),
    ("novita", "90b"): RouteStatus("unknown", "not found in any source", "2026-08-31"),
    ("deepinfra", "11b"): _DEEPINFRA,
    ("deepinfra", "90b"): _DEEPINFRA,
    ("deepinfra", "scout"): _SUCCESSOR,
    ("deepinfra", "maverick"): _SUCCESSOR,
    ("azure", "11b"): _AZURE_GONE,
    ("azure", "90b"): _AZURE_GONE,
    ("azure", "scout"): _AZURE_L4,
    ("azure", "maverick"): _AZURE_L4,
    ("langmart", "11b"): _LANGMART,
    ("langmart", "90b"): _LANGMART,
    ("local", "11b"): _LOCAL,
    ("local", "90b"): _LOCAL,
    ("ollama", "11b"): _OLLAMA,
    ("ollama", "90b"): _OLLAMA,
    ("transformers", "11b"): _IN_PROCESS,
    ("transformers", "90b"): _IN_PROCESS,
}

# Routes llamavis has no provider for, listed so that nobody goes looking for them.
GONE: dict[str, RouteStatus] = {
    "meta-llama-api": RouteStatus("retired", "langchain-ai/langchain-meta PR #22", "2026-07-06",
                                  "2026-07-06", "the Llama API public preview"),
    "groq": RouteStatus("retired", "valentinfrlch/ha-llmvision#311; Llama 4: public trackers",
                        "2026-07-17", "2025-04-14",
                        "Llama 4 Maverick deprecated 2026-03-09, Scout decommissioned 2026-07-17"),
    "bedrock": RouteStatus("retired", "AWS model card", "2026-07-07", "2026-07-07",
                           "90B legacy, end of life"),
    "github-models": RouteStatus("retired", "GitHub community discussion 203602", "2026-07-30",
                                 "2026-07-30"),
    "together, fireworks, sambanova": RouteStatus(
        "retired", "stanford-crfm/helm PR #4104; Kiln-AI/Kiln PR #1790", "2026-08-31",
        note="gone or not in current catalogues"),
    "oracle-oci": RouteStatus("unconfirmed", "docs.oracle.com generative-ai meta-llama-3-2-90b "
                              "(undated)", "2026-12-01",
                              note="90B on demand in 4 regions; OCI's own signed API, not "
                                   "OpenAI-compatible: no provider here"),
    "vertex-ai": RouteStatus("unconfirmed", "cloud.google.com partner-models/llama (undated)",
                             "2026-12-01", note="90B MaaS in preview; not a provider here"),
}


def status(provider: str, alias: str) -> RouteStatus:
    """The known status of a model alias on a provider ('unknown' when nothing is known)."""
    return STATUS.get((provider, alias), RouteStatus("unknown", "no source", "2026-12-01"))


def serving_routes(alias: str = "11b", *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Hosted providers whose table says they serve the alias, best evidence first."""
    order = ("nvidia", "cloudflare", "deepinfra", "langmart", "azure", "openrouter", "novita")
    return [name for name in order if name not in exclude
            and STATUS.get((name, alias), _LOCAL).state == "served"]


@dataclass(frozen=True)
class LocalStack:
    """A local server that runs (or ran) Llama 3.2 Vision: how to start it, how to reach it."""

    name: str
    provider: str  # the llamavis provider to use with it
    base_url: str
    model: str
    command: str
    note: str = ""
    checked: str = "2026-12-01"


_HF_11B = "meta-llama/Llama-3.2-11B-Vision-Instruct"
LOCAL_STACKS = (
    LocalStack("transformers serve", "local", "http://127.0.0.1:8000/v1", _HF_11B,
               "pip install 'transformers[serving]' && transformers serve --port 8000",
               "runs on a CPU too, slowly; or -P transformers with no server"),
    LocalStack("SGLang (GPU)", "local", "http://127.0.0.1:30000/v1", _HF_11B,
               f"pip install sglang && python -m sglang.launch_server --model-path {_HF_11B} "
               "--port 30000", "0.5.23 still ships mllama; GPU only from PyPI"),
    LocalStack("mistral.rs (its own server build)", "local", "http://127.0.0.1:1234/v1",
               "default",
               f"mistralrs-server --port 1234 --isq 4 vision-plain -m {_HF_11B} --arch vllama",
               "the server comes from its GitHub releases or a Rust build, not PyPI (newer "
               "builds name it `mistralrs serve`); its /v1/models lists `default` first"),
    LocalStack("Modular MAX 25.7 (GPU)", "local", "http://127.0.0.1:8000/v1", _HF_11B,
               f"pip install 'modular==25.7.0' && max serve --model-path {_HF_11B} --devices gpu",
               "25.3-25.7 only (26.1 removed Llama 3.2 Vision); bfloat16, GPU only"),
    LocalStack("vLLM <= 0.10.2 (GPU)", "local", "http://127.0.0.1:8000/v1", _HF_11B,
               f"pip install 'vllm==0.10.2' && vllm serve {_HF_11B} --enforce-eager "
               "--max-num-seqs 16", "later releases dropped mllama"),
    LocalStack("Ollama < 0.30", "ollama", "http://127.0.0.1:11434/v1", "llama3.2-vision:11b",
               "ollama serve & ollama pull llama3.2-vision",
               "with an Ollama older than 0.30: later ones cannot run llama3.2-vision"),
    LocalStack("MLX-VLM (Apple silicon)", "local", "http://127.0.0.1:8080/v1",
               "mlx-community/Llama-3.2-11B-Vision-Instruct-4bit",
               "pip install mlx-vlm && python -m mlx_vlm.server --model "
               "mlx-community/Llama-3.2-11B-Vision-Instruct-4bit --port 8080",
               "the model id is the MLX repo you load"),
)
