"""One image through one task -> Result. The only orchestrator.

A Runner holds what a whole run shares (the HTTP client, the result cache) and
turns one image source into one Result: read, prepare, look up the cache, ask,
check and re-ask, store. Per-image problems become ``Result.error``; only
problems that must stop a batch (a rejected key, a usage error) are raised.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, BinaryIO

from llamavis.errors import ConfigError, LlamavisError, UsageError
from llamavis.run.clients import Sleep, open_client
from llamavis.run.config import TaskConfig
from llamavis.run.loading import ImageLoading, Stored
from llamavis.run.protocol import DeltaHook, ResetHook, Source
from llamavis.types import (
    Completion,
    JSONObject,
    PreparedImage,
    Result,
    Usage,
)

if TYPE_CHECKING:
    import httpx

    from llamavis.backends.protocol import ChatBackend
    from llamavis.store.cache import ResultCache

__all__ = ["Runner", "Stored", "build_messages"]


def build_messages(image: PreparedImage, text: str) -> list[JSONObject]:
    """The layout Llama 3.2 Vision was trained on: one user turn, the image first, no system."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image.data_url()}},
                {"type": "text", "text": text},
            ],
        }
    ]


class Runner(ImageLoading):
    """Runs a TaskConfig over images, one at a time or many concurrently.

    ``aclose`` closes its client; an owner sharing one client between Runners (the core's
    Engine) closes that client itself instead.
    """

    def __init__(
        self,
        cfg: TaskConfig,
        *,
        cache: ResultCache | None = None,
        client: ChatBackend | None = None,
        stdin: BinaryIO | None = None,
        concurrency: int = 4,
        debug: Callable[[str], None] | None = None,
        sleep: Sleep | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.cache = cache
        self.stdin = stdin
        self.clock = clock
        self._debug = debug
        self._client = client
        self._concurrency, self._sleep, self._transport = concurrency, sleep, transport
        self._asked: dict[str, asyncio.Future[Result]] = {}  # fingerprint -> its answer

    @property
    def client(self) -> ChatBackend:
        """The client given, else one of its own (opened on first use, closed by aclose)."""
        if self._client is None:
            self._client = open_client(self.cfg, concurrency=self._concurrency, debug=self._debug,
                                       sleep=self._sleep, transport=self._transport)
        return self._client

    def configs(self) -> list[TaskConfig]:
        return [self.cfg]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def payload(self, messages: list[JSONObject], *, stream: bool) -> JSONObject:
        from llamavis.backends.client import build_payload
        from llamavis.tasks.guided import guided_fields

        spec = self.cfg.checker()
        # Whether the endpoint honours response_format is the client's to find out.
        return build_payload(
            self.cfg.provider, self.cfg.model_id, messages, self.cfg.params, stream=stream,
            json_schema=spec.json_schema, json_wanted=spec.wants_json, guide=guided_fields(spec),
        )

    # -- running ---------------------------------------------------------------

    async def run(
        self, source: Source, *, on_delta: DeltaHook | None = None,
        on_reset: ResetHook | None = None,
    ) -> Result:
        """One image through the task; per-image failures end up in Result.error."""
        start = self.clock()
        result = Result(image=str(source), task=self.cfg.task, provider=self.cfg.provider.name,
                        model=self.cfg.model_id)
        try:
            key, hit, image = await self.load(source)
            result.fingerprint = key
            if hit is not None:
                return self._from_cache(result, hit, start)
            assert image is not None  # a miss is prepared
            first = self._asked.get(key)
            if first is not None:  # the same bytes asked the same way in this run: ask once
                return self._shared(result, await asyncio.shield(first), start)
            await self._ask_once(key, result, image, on_delta, on_reset)
        except (ConfigError, UsageError):
            raise
        except LlamavisError as exc:
            if self._debug is not None:
                self._debug(f"{source}: " + "".join(traceback.format_exception(exc)).rstrip())
            result.error = exc.to_dict()
            result.raw = exc.raw or result.raw
            result.attempts = exc.attempts
            if isinstance(exc.usage, Usage):
                result.usage = exc.usage
        except Exception:
            if self._debug is not None:  # a bug: --debug shows where (never local variables)
                self._debug(f"internal error on {source}:\n{traceback.format_exc().rstrip()}")
            raise
        result.elapsed_s = self.clock() - start
        return result

    async def _ask_once(
        self, key: str, result: Result, image: PreparedImage, on_delta: DeltaHook | None,
        on_reset: Callable[[], None] | None,
    ) -> None:
        """Ask, letting byte-identical sources of this run wait for this answer.

        With the cache on, a later copy finds the answer stored (``get`` sees it at once);
        without it the finished answer is kept here for the rest of the run."""
        mine: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._asked[key] = mine
        try:
            await self._ask(result, image, on_delta, on_reset)
        except LlamavisError as exc:
            failed = replace(result, error=exc.to_dict())
            mine.set_result(failed)  # a copy gets the same error, not a second request
            raise
        except BaseException as exc:
            self._asked.pop(key, None)
            mine.set_exception(exc)
            mine.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            mine.set_result(result)
            if self.cache is not None:
                self.cache.put_soon(key, result.to_dict())  # stored in batches by its writer
        finally:
            if self.cache is not None:
                self._asked.pop(key, None)

    async def _ask(
        self, result: Result, image: PreparedImage, on_delta: DeltaHook | None,
        on_reset: ResetHook | None,
    ) -> None:
        """Ask until an answer checks out (structured.resolve counts attempts and usage)."""
        from llamavis.tasks.answers import resolve

        stream_to = on_delta if self.cfg.task_spec.streams else None
        # A stream cut mid-way is asked again from the start: clear what was shown.
        on_retry = (lambda _why: on_reset()) if stream_to and on_reset else None

        async def ask(messages: list[JSONObject]) -> Completion:
            payload = self.payload(messages, stream=stream_to is not None)
            completion: Completion = await self.client.chat(payload, on_delta=stream_to,
                                                            on_retry=on_retry)
            return completion

        resolution = await resolve(
            ask, build_messages(image, self.cfg.prompt_text), self.cfg.checker(),
            max_retries=self.cfg.max_retries,
            on_retry=(lambda _n, _check: on_reset()) if on_reset is not None else None,
        )
        result.output = resolution.value
        result.raw = resolution.raw
        result.usage = resolution.usage
        result.attempts = resolution.attempts
        result.confidence = resolution.confidence
        result.truncated = resolution.truncated

    def _shared(self, result: Result, first: Result, start: float) -> Result:
        """A copy's result from the answer its twin got: no request of its own (cached, as
        an answer from the store is); a failure is the twin's failure, not asked again."""
        if first.error is None:
            return self._from_cache(result, first.to_dict(), start)
        return replace(result, error=first.error, raw=first.raw, elapsed_s=self.clock() - start)

    async def dry_run(self, source: Source) -> JSONObject:
        """The request that would be sent for one image, image data shortened, key redacted."""
        from llamavis.backends.client import redact_payload

        image = await self.prepare(source)
        payload = self.payload(build_messages(image, self.cfg.prompt_text), stream=False)
        # What this provider's wire really carries (Workers AI: its native input).
        url, payload = self.client.request_for(payload)
        return {
            "image": str(source),
            "method": "POST",
            "url": url,
            "headers": self.client.headers(redact=True),
            "json": redact_payload(payload),
            "image_size": [image.width, image.height],
            "image_bytes": len(image.data),
        }
