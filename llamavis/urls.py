"""Image URLs as llamavis shows them: never with the password a user put in one.

A leaf module (standard library only), so that the JSON envelope (types), the writers
(outputs) and the error lines (cli) all mask a URL the same way without importing more.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def is_url(source: str) -> bool:
    """True for the http(s) URLs that read_source downloads."""
    return source[:8].lower().startswith(("http://", "https://"))


def shown(source: str) -> str:
    """A source as llamavis shows it anywhere: a URL with any password in it masked."""
    if not is_url(source):
        return source
    parts = urlsplit(source)
    if parts.password is None:
        return source
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
