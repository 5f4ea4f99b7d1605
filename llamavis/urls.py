"""URLs as llamavis shows them: never with a password or a key a user put in one.

A leaf module (standard library only), so that the JSON envelope (types), the writers
(outputs), the wire's errors (backends) and the error lines (cli) all mask a URL the same
way without importing more. ``shown`` masks one URL; ``scrubbed`` every URL inside a text
(an error message, a debug line, a traceback).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"

# Query names whose value is a credential (compared lower-case, with "-" read as "_").
SECRET_NAMES = frozenset({
    "key", "api_key", "apikey", "token", "access_token", "refresh_token", "id_token",
    "auth", "authorization", "sig", "signature", "secret", "client_secret", "password",
    "passwd", "pwd", "code", "session", "sessionid", "credential", "credentials",
    "x_amz_signature", "x_amz_credential", "x_amz_security_token", "x_goog_signature",
    "x_goog_credential", "private_token", "bearer", "jwt", "hmac",
})

_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>`]+", re.IGNORECASE)


def is_url(source: str) -> bool:
    """True for the http(s) URLs that read_source downloads."""
    return source[:8].lower().startswith(("http://", "https://"))


def secret_name(name: str) -> bool:
    """True for a query parameter whose value is a credential (``key``, ``X-Amz-Signature``...)."""
    low = name.lower().replace("-", "_")
    return low in SECRET_NAMES or low.endswith(("_key", "_token", "_secret", "_signature"))


def shown(source: str) -> str:
    """A source as llamavis shows it anywhere: a URL with its userinfo password (or a lone
    user name, often a token) and its secret-looking query values masked."""
    if not is_url(source):
        return source
    try:
        parts = urlsplit(source)
        netloc = _netloc(parts.netloc)
        query = _query(parts.query)
    except ValueError:  # a URL too broken to take apart: keep only its scheme
        return source.split("//", 1)[0] + "//" + MASK
    if netloc == parts.netloc and query == parts.query:
        return source
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrubbed(text: str) -> str:
    """``text`` with every http(s) URL in it ``shown``: for messages that quote a URL."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_shown_in_text, text)


def _shown_in_text(match: re.Match[str]) -> str:
    url = match.group(0)
    bare = url.rstrip(".,:;!?)]}")  # the sentence's punctuation, not the URL's
    return shown(bare) + url[len(bare):]


def _netloc(netloc: str) -> str:
    if "@" not in netloc:
        return netloc
    userinfo, host = netloc.rsplit("@", 1)
    user, sep, _password = userinfo.partition(":")
    return f"{user}:{MASK}@{host}" if sep else f"{MASK}@{host}"


def _query(query: str) -> str:
    """The query with each secret-looking value masked, every other byte kept as sent."""
    if not query:
        return query
    pieces = []
    for piece in query.split("&"):
        name, sep, _value = piece.partition("=")
        pieces.append(f"{name}={MASK}" if sep and secret_name(unquote_plus(name)) else piece)
    return "&".join(pieces)
