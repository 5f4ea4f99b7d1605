"""The client for ``-P transformers``: Llama 3.2 Vision run inside this process.

It has ChatClient's face (``chat``, ``headers``, ``aclose``) and takes the same OpenAI-shape
payload, so tasks, templates, the re-ask ladder, the cache and the JSON envelope are shared
with the HTTP providers. Concurrent ``chat()`` calls become one batched ``generate`` call
(engine/batcher.py); the model loads on the first request, in the engine's worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from llamavis.backends.protocol import Payload
from llamavis.backends.providers import ProviderSpec
from llamavis.engine.batcher import MicroBatcher
from llamavis.engine.jobs import Job, job_from_payload
from llamavis.engine.options import EngineOptions
from llamavis.types import Completion

if TYPE_CHECKING:
    from llamavis.engine.loader import Engine as Model

JOIN_S = 10.0  # how long aclose() waits for a worker to leave its batch


class LocalClient:
    """Answers chat-completions payloads with the in-process model (no network, no key)."""

    def __init__(self, spec: ProviderSpec, *, engine: EngineOptions | None = None,
                 debug: Callable[[str], None] | None = None, base_url: str | None = None,
                 **_http_options: object) -> None:
        # ChatClient's other HTTP options (key, timeout, retries, transport) mean nothing here.
        self.spec = spec
        self.base_url = base_url or spec.base_url
        self.options = engine or EngineOptions()
        self._debug = debug
        self._batchers: dict[str, MicroBatcher] = {}
        self._engines: dict[str, Model] = {}

    def __repr__(self) -> str:
        return f"LocalClient(provider={self.spec.name!r}, options={self.options})"

    async def __aenter__(self) -> LocalClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def request_for(self, payload: Payload) -> tuple[str, Payload]:
        """The payload as it is: nothing translates it on the way to the model."""
        return f"{self.base_url}/chat/completions", payload

    def headers(self, *, redact: bool = False) -> dict[str, str]:
        """Nothing is sent over a network, so there are no headers (and no key)."""
        return {}

    async def aclose(self) -> None:
        """Stop the worker threads after their current batch (the model stays loaded).

        Waits a while for them: a process that exits while a daemon thread is inside torch
        can abort. After Ctrl-C the cancelled rows end at the next step; a very slow step
        is not waited for.
        """
        batchers, self._batchers = self._batchers, {}
        for batcher in batchers.values():
            batcher.close()
        for batcher in batchers.values():
            await asyncio.to_thread(batcher.join, JOIN_S)

    async def chat(
        self,
        payload: Payload,
        *,
        on_delta: Callable[[str], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> Completion:
        """One answer from the local model; streamed to ``on_delta`` if ``payload["stream"]``."""
        job = job_from_payload(payload)
        if on_delta is not None and payload.get("stream"):
            loop = asyncio.get_running_loop()
            def deliver(text: str, sink: Callable[[str], None] = on_delta) -> None:
                loop.call_soon_threadsafe(sink, text)  # the worker thread -> the event loop

            job.on_delta = deliver
        future = self._batcher(str(payload.get("model") or "")).submit(job)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            job.cancelled.set()  # a running generate drops the row at its next step
            raise

    def _batcher(self, model_id: str) -> MicroBatcher:
        batcher = self._batchers.get(model_id)
        if batcher is None:
            batcher = self._batchers[model_id] = MicroBatcher(
                start=lambda: self._start(model_id), run=lambda jobs: self._run(model_id, jobs))
        return batcher

    def _start(self, model_id: str) -> int:
        """Worker thread: load the model (once per process) and say the batch size."""
        from llamavis.engine.loader import get_engine

        engine = self._engines[model_id] = get_engine(model_id, self.options, self._log)
        size = self.options.batch_size_for(engine.device)
        self._log(f"{model_id}: batches of up to {size} on {engine.device}")
        return size

    def _run(self, model_id: str, jobs: list[Job]) -> None:
        from llamavis.engine.generate import run_batch

        run_batch(self._engines[model_id], jobs, self._log)

    def _log(self, line: str) -> None:
        if self._debug is not None:
            self._debug(f"transformers: {line}")
