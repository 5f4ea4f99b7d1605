"""The seam between a run and the wire: what every chat client is, by type.

The HTTP client (``ChatClient``), Cloudflare's native client and the in-process engine
(``LocalClient``) all satisfy ``ChatBackend``; a run holds one through this type and never
asks an object what it can do. The payload is always the OpenAI chat-completions shape; a
client for another wire translates it (``request_for`` says what it really sends).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from llamavis.types import Completion, JSONObject

Payload = JSONObject
TextHook = Callable[[str], None]


class ChatBackend(Protocol):
    """One provider's chat endpoint (or the model in this process)."""

    async def chat(self, payload: Payload, *, on_delta: TextHook | None = None,
                   on_retry: TextHook | None = None) -> Completion:
        """One answer; streamed to ``on_delta`` when ``payload["stream"]``; ``on_retry``
        hears why a request is sent again."""
        ...

    def request_for(self, payload: Payload) -> tuple[str, Payload]:
        """(URL, body) that ``chat`` would send for ``payload`` (a dry run shows it)."""
        ...

    def headers(self, *, redact: bool = False) -> dict[str, str]:
        """The request headers; ``redact`` hides the key."""
        ...

    async def aclose(self) -> None:
        """Release connections or worker threads (safe to call twice)."""
        ...
