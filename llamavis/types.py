"""The plain data that flows between llamavis's layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llamavis.urls import scrubbed, shown

# Defaults written once: the command line, the API, the config and the clients all use these.
DEFAULT_TIMEOUT_S = 120.0  # seconds allowed for one request
DEFAULT_RETRIES = 2  # retries of a failed request, and re-asks of an invalid answer

# A JSON object as it comes off (or goes onto) the wire: a payload, an answer, a schema.
JSONObject = dict[str, Any]


@dataclass
class Usage:
    """Tokens and cost of one or more requests; ``+`` adds them up."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # the provider's own figure, else our estimate, else None

    def __add__(self, other: Usage) -> Usage:
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
        )

    def to_dict(self) -> JSONObject:
        d = asdict(self)
        if self.cost_usd is not None:
            d["cost_usd"] = round(self.cost_usd, 10)  # no float noise like 7.9183999999e-05
        return d

    @classmethod
    def from_dict(cls, d: JSONObject | None) -> Usage:
        d = d or {}
        return cls(
            int(d.get("prompt_tokens") or 0),
            int(d.get("completion_tokens") or 0),
            d.get("cost_usd"),
        )


@dataclass
class PreparedImage:
    """One image, decoded, oriented, flattened, shrunk and encoded for upload."""

    source: str  # what the user named: a path, a URL, or "-"
    data: bytes  # the bytes to send
    mime: str  # "image/jpeg", "image/png", ...
    width: int
    height: int
    original_bytes: int = 0
    original_size: tuple[int, int] | None = None
    passthrough: bool = False  # sent exactly as read, not re-encoded
    _url: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.data).hexdigest()

    def data_url(self) -> str:
        """The image as a data: URL, encoded once (prepare_image does it off the event loop)."""
        if self._url is None:
            import base64

            self._url = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        return self._url


@dataclass
class Completion:
    """One answer from a chat-completions endpoint."""

    text: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    id: str | None = None
    requests: int = 1  # requests sent for this answer, transient-failure retries included


@dataclass
class GenParams:
    """Generation parameters sent with each request."""

    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    top_p: float | None = None

    def to_dict(self) -> JSONObject:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Result:
    """What llamavis says about one image: the JSON envelope of the CLI, typed.

    ``to_dict()`` is that envelope (what ``--json`` prints) and ``Result.from_dict``
    reads one back. ``output`` is a string, one class, a list of classes or an object,
    by task; on failure it is None and ``error`` is ``{"kind": ..., "message": ...}``.
    """

    image: str
    task: str
    provider: str | None = None
    model: str | None = None
    output: Any = None
    raw: str | None = None
    usage: Usage = field(default_factory=Usage)
    attempts: int = 0
    cached: bool = False
    elapsed_s: float = 0.0
    error: dict[str, str] | None = None
    confidence: float | None = None
    truncated: bool = False
    captions: list[str] | None = None  # --captions N: each answer, in seed order
    # A cached answer: what it cost when it was first asked (``usage`` is then 0, $0).
    cached_usage: Usage | None = None
    tiles: list[dict[str, Any]] | None = None  # ocr --tiles: each tile's box, text and usage
    # The request's identity (image bytes + how it is asked: Runner.cache_key); never in
    # to_dict: --output-dir records it beside a sidecar to know the sidecar is this answer's.
    fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the image got a valid answer (``error`` is None)."""
        return self.error is None

    @classmethod
    def from_dict(cls, d: JSONObject) -> Result:
        """The Result a JSON envelope (``to_dict()``) describes."""
        return cls(
            image=str(d.get("image", "")), task=str(d.get("task", "")),
            provider=d.get("provider"), model=d.get("model"), output=d.get("output"),
            raw=d.get("raw"), usage=Usage.from_dict(d.get("usage")),
            attempts=int(d.get("attempts") or 0), cached=bool(d.get("cached")),
            elapsed_s=float(d.get("elapsed_s") or 0.0), error=d.get("error"),
            confidence=d.get("confidence"), truncated=bool(d.get("truncated")),
            captions=d.get("captions"), tiles=d.get("tiles"),
            cached_usage=Usage.from_dict(d["cached_usage"]) if d.get("cached_usage") else None,
        )

    def to_dict(self) -> JSONObject:
        d: JSONObject = {
            "image": shown(self.image),  # never a password from an image URL
            "task": self.task,
            "provider": self.provider,
            "model": self.model,
            "output": self.output,
            "raw": self.raw,
            "usage": self.usage.to_dict(),
            "attempts": self.attempts,
            "cached": self.cached,
            "elapsed_s": round(self.elapsed_s, 3),
            "error": _scrubbed_error(self.error),
        }
        if self.confidence is not None:
            d["confidence"] = self.confidence
        if self.truncated:
            d["truncated"] = True
        if self.cached_usage is not None:
            d["cached_usage"] = self.cached_usage.to_dict()
        if self.captions is not None:
            d["captions"] = self.captions
        if self.tiles is not None:
            d["tiles"] = self.tiles
        return d


def _scrubbed_error(error: Any) -> Any:
    """An error dict with any URL in its message shown as llamavis shows URLs."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return {**error, "message": scrubbed(error["message"])}
    return error
