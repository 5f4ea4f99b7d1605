"""Model licences a provider asks the account to accept through its API, and which were.

Cloudflare Workers AI serves Llama 3.2 Vision only after an account has sent the prompt
``agree`` once (its model page; until then the model answers error 5016). llamavis never
agrees on the user's behalf: ``llamavis agree cloudflare`` shows the licence, asks, sends
the agreement and remembers it here, per account (the account is in the endpoint URL),
in ``agreements.json`` in the config dir. No key is stored.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamavis.errors import ConfigError, UsageError
from llamavis.store.paths import config_dir


@dataclass(frozen=True)
class Licence:
    """What a provider asks the account to accept, and where to read it."""

    name: str
    urls: tuple[str, ...]


LICENCES = {
    "cloudflare": Licence(
        "Meta's Llama 3.2 Community License and Acceptable Use Policy",
        ("https://github.com/meta-llama/llama-models/blob/main/models/llama3_2/LICENSE",
         "https://github.com/meta-llama/llama-models/blob/main/models/llama3_2/USE_POLICY.md"),
    ),
}


def licence_for(provider: str) -> Licence:
    """The licence a provider asks for through its API, or a UsageError."""
    try:
        return LICENCES[provider]
    except KeyError:
        raise UsageError(f"{provider} asks for no licence agreement through its API",
                         hint=f"only these do: {', '.join(LICENCES)}") from None


def agreements_path() -> Path:
    return config_dir() / "agreements.json"


def _load() -> dict[str, Any]:
    try:
        data = json.loads(agreements_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # unreadable: treated as "not recorded"; the next agreement rewrites it
    return data if isinstance(data, dict) else {}


def agreed_on(provider: str, base_url: str) -> str | None:
    """When the account behind ``base_url`` agreed (an ISO date), or None if not recorded."""
    entry = _load().get(f"{provider} {base_url}")
    return entry.get("agreed_on") if isinstance(entry, dict) else None


def remember(provider: str, base_url: str, now: float | None = None) -> Path:
    """Record that the account behind ``base_url`` has agreed (atomically)."""
    data = _load()
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))
    data[f"{provider} {base_url}"] = {"agreed_on": day}
    path = agreements_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".agreements-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


async def send_agreement(spec: Any, *, base_url: str, api_key: str | None, model_id: str,
                         transport: Any = None, timeout: float = 60.0) -> str:
    """Send the agreement once; the provider's answer. Raises what the provider said."""
    from llamavis.run.clients import open_probe_client

    async with open_probe_client(spec, api_key=api_key, base_url=base_url, timeout=timeout,
                                 connect_timeout=10.0, max_retries=2,
                                 transport=transport) as client:
        answer: str = await client.agree(model_id)
    remember(spec.name, base_url)
    return answer
