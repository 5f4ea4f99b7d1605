"""Cost estimates from the provider table's prices, for --dry-run, --usage and --max-cost.

A provider's own figure (OpenRouter ``usage.cost``, DeepInfra ``estimated_cost``)
always wins over these estimates.
"""

from __future__ import annotations

from llamavis.backends.providers import ProviderSpec

# Llama 3.2 Vision consumes a tile of 560 px as (560/14)^2 + 1 = 1601 vision tokens;
# hosted providers report roughly that many prompt tokens per image.
IMAGE_TOKENS = 1601
CHARS_PER_TOKEN = 4


def estimate_usd(
    spec: ProviderSpec, model_id: str, prompt_tokens: int, completion_tokens: int, images: int = 0
) -> float | None:
    """USD for the given token counts from the price table; None when no price is known."""
    price = spec.price(model_id)
    if price is None:
        return None
    per_in, per_out, per_image = price
    return (prompt_tokens * per_in + completion_tokens * per_out) / 1e6 + images * per_image


def estimate_request(
    spec: ProviderSpec, model_id: str, prompt_text: str, max_tokens: int | None
) -> float | None:
    """An upper-bound cost for one request with one image: the answer at its max_tokens."""
    prompt_tokens = IMAGE_TOKENS + len(prompt_text) // CHARS_PER_TOKEN
    return estimate_usd(spec, model_id, prompt_tokens, max_tokens or 1024, images=1)
