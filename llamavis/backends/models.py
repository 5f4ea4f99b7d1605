"""Models as data: what each model family needs.

Beside ``providers.py``: a *profile* says how a model family takes images (how many,
where, how large, whether a system message may stand beside one). Where each model
still lives, with dates, is ``llamavis.providers.facts``. Sources: ../shared/providers.md
sections 2 and 10.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


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
