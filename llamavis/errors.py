"""Every error llamavis raises, and the exit code each one means.

::

    LlamavisError                  exit 1; .kind is the JSON error.kind
    ├── UsageError                 exit 2   unknown provider, missing --question, bad --field
    ├── ConfigError                exit 3   no key, unreadable config
    │   └── AuthError              exit 3   401/403 from the provider: stops the batch
    ├── ImageError                 bad_image, per image
    ├── ProviderError              provider, with the provider's own message surfaced
    │   ├── ModelUnavailable       provider: the route does not serve the model (any more)
    │   ├── RateLimited            rate_limited (retry_after)
    │   └── ProviderTimeout        timeout
    ├── NetworkError               network
    ├── RefusedError               refused
    └── InvalidOutputError         invalid_output (attempts, last text, errors, usage)

Foreign exceptions (httpx, Pillow, json) are translated into this tree at one
boundary each (backends, images, structured); only the CLI's ``main`` turns an
exception into an exit code.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Documented exit statuses of the ``llamavis`` command."""

    OK = 0
    FAILED = 1  # at least one image failed; the others are still reported
    USAGE = 2
    CONFIG = 3  # configuration or authentication problem
    INTERRUPTED = 130


class LlamavisError(Exception):
    """Base class: a problem llamavis can explain in one line."""

    kind: str = "provider"
    exit_code: ExitCode = ExitCode.FAILED
    retryable: bool = False
    # What the image cost before this error: set by the re-ask ladder (structured.resolve).
    attempts: int = 0
    requests: int = 1  # requests the failing call sent (its retries included): set by the client
    usage: Any = None  # llamavis.types.Usage
    raw: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def to_dict(self) -> dict[str, str]:
        """The ``error`` object of a JSON result."""
        return {"kind": self.kind, "message": str(self)}


class UsageError(LlamavisError):
    """The command line or API call is wrong: fix the arguments."""

    kind = "usage"
    exit_code = ExitCode.USAGE


class ConfigError(LlamavisError):
    """Configuration is missing or unreadable (no key, bad config file)."""

    kind = "auth"
    exit_code = ExitCode.CONFIG


class AuthError(ConfigError):
    """The provider rejected the key (401/403): the whole batch stops."""

    kind = "auth"

    def __init__(
        self, message: str, *, hint: str | None = None, status: int | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.provider = provider


class ImageError(LlamavisError):
    """One image cannot be read, decoded or prepared."""

    kind = "bad_image"


class ProviderError(LlamavisError):
    """The provider answered with an error (or an unusable answer)."""

    kind = "provider"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        provider: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.provider = provider
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body


class ModelUnavailable(ProviderError):
    """The route answered that it does not serve the model: another route may."""

    kind = "provider"


class RateLimited(ProviderError):
    """429 or an equivalent: slow down and try again later."""

    kind = "rate_limited"


class ProviderTimeout(ProviderError):
    """The request (or the provider's upstream) timed out."""

    kind = "timeout"


class NetworkError(LlamavisError):
    """The connection failed or dropped before a full answer arrived."""

    kind = "network"
    retryable = True
    retry_after: float | None = None  # seconds to wait before the retry, when it is known


class RefusedError(LlamavisError):
    """The model declined to answer ("I can't help with ...")."""

    kind = "refused"

    def __init__(
        self, message: str, *, raw: str | None = None, hint: str | None = None,
        attempts: int = 0, usage: Any = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.raw = raw
        self.attempts = attempts
        self.usage = usage  # llamavis.types.Usage summed over the attempts


class InvalidOutputError(LlamavisError):
    """The model's answers never satisfied the task's class set or schema."""

    kind = "invalid_output"

    def __init__(
        self,
        message: str,
        *,
        raw: str | None = None,
        errors: list[str] | None = None,
        attempts: int = 0,
        usage: Any = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.raw = raw
        self.errors = errors or []
        self.attempts = attempts
        self.usage = usage  # llamavis.types.Usage summed over the attempts


class Interrupted(LlamavisError):
    """The user pressed Ctrl-C."""

    kind = "interrupted"
    exit_code = ExitCode.INTERRUPTED
