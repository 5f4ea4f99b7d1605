"""How many bytes an answer may take: a bound derived from the request's ``max_tokens``.

A model asked for ``max_tokens`` tokens cannot honestly need more than a few bytes per
token, even streamed (an SSE event per token, with ids, roles and usage around each
one, is a few hundred bytes). ``answer_limit`` allows ``BASE_BYTES`` (256 KiB) plus
``BYTES_PER_TOKEN`` (1 KiB) per token asked for: 336 KiB for ``--max-tokens 80``, about
4.3 MB for 4,096. A body or stream past it is cut there and reported as the provider's
fault (kind ``provider``), not retried: the same request would get the same flood.
Bytes are counted after decompression, so a small gzip bomb is cut too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llamavis.errors import ProviderError

BASE_BYTES = 256 * 1024
BYTES_PER_TOKEN = 1024
DEFAULT_TOKENS = 4096  # a request that names no max_tokens


def answer_limit(payload: dict[str, Any]) -> int:
    """The most bytes an answer to ``payload`` may take."""
    tokens = payload.get("max_tokens") or payload.get("max_completion_tokens") or DEFAULT_TOKENS
    try:
        count = max(1, int(tokens))
    except (TypeError, ValueError):
        count = DEFAULT_TOKENS
    return BASE_BYTES + BYTES_PER_TOKEN * count


def too_large(provider: str, limit: int, tokens: object) -> ProviderError:
    return ProviderError(
        f"{provider} sent more than {limit:,} bytes for an answer of at most {tokens} tokens; "
        "cut there",
        provider=provider, retryable=False,
        hint="the server misbehaves: it sent far more than the tokens asked for",
    )


async def capped(chunks: AsyncIterator[bytes], limit: int, provider: str,
                 tokens: object) -> AsyncIterator[bytes]:
    """``chunks`` as they come, until more than ``limit`` bytes: then ``too_large``."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise too_large(provider, limit, tokens)
        yield chunk


async def read_capped(chunks: AsyncIterator[bytes], limit: int, provider: str,
                      tokens: object) -> bytes:
    """The whole body of ``chunks``, or ``too_large`` past ``limit`` bytes."""
    body = bytearray()
    async for chunk in capped(chunks, limit, provider, tokens):
        body += chunk
    return bytes(body)
