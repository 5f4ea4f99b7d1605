"""Run every Llama step of a Roboflow workflow on each image, through llamavis' own machinery.

Each step is a Session derived from the run's (``Session.derive``: its own route, key,
model and concurrency, the run's cache, standard input and options), with one resolved
TaskConfig and its runner; the run's session runs one batch over the images, and an image
is done when all its steps are. The cache, resume, ``--max-cost``, ``--fallback``, the
engine's options and exit codes are those of every task command. Prints nothing: results
go to a callback, as in ``Session.run``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from llamavis.errors import ConfigError, LlamavisError
from llamavis.roboflow.graph import Graph, StepValue, evaluate
from llamavis.roboflow.plan import step_options, task_args
from llamavis.roboflow.workflow import ROUTE, Step, Workflow
from llamavis.run.config import TaskConfig
from llamavis.run.protocol import Source, TaskRunner
from llamavis.run.runner import Runner
from llamavis.run.session import Session
from llamavis.types import PreparedImage, Result, Usage

TASK = "roboflow"


@dataclass
class StepRun:
    """One step, resolved: what to ask whom, through the step's own session."""

    step: Step
    session: Session
    cfg: TaskConfig

    @property
    def concurrency(self) -> int:
        return self.session.concurrency(self.cfg)


def configs(workflow: Workflow, session: Session) -> list[StepRun]:
    """Resolve every step up front: a bad option or a missing key stops the run before any image."""
    runs = []
    for step in workflow.steps:
        try:
            child = session.derive(step_options(step, session.options))
            cfg = child.config(task_args(step))
        except LlamavisError as exc:
            raise _for_step(exc, step) from None
        runs.append(StepRun(step, child, cfg))
    return runs


def _for_step(exc: LlamavisError, step: Step) -> LlamavisError:
    exc.message = f"step {step.name!r}: {exc.message}"
    if isinstance(exc, ConfigError) and exc.hint and f"keys set {ROUTE}" in exc.hint:
        exc.hint += (f", or give --input {step.key_input}=KEY" if step.key_input
                     else ", or write the step's api_key")
    exc.args = (exc.message,)
    return exc


class SharedImages:
    """Each image read once for all its steps: a URL downloaded once, standard input read once."""

    def __init__(self, stdin: BinaryIO | None) -> None:
        self.stdin = stdin
        self._tasks: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    async def prepare(self, source: str, how: tuple[object, ...],
                      make: Callable[[bytes, str], PreparedImage]) -> PreparedImage:
        """The image prepared by ``make`` (a step runner's own preparation), once per ``how``."""
        return await self._once(("image", source, how), lambda: self._prepare(source, make))

    async def data(self, source: str) -> bytes:
        """The image's bytes, read once for every step."""
        return await self._once(("bytes", source), lambda: self._read(source))

    async def _prepare(self, source: str,
                       make: Callable[[bytes, str], PreparedImage]) -> PreparedImage:
        data = await self.data(source)
        return await asyncio.to_thread(make, data, source)

    async def _read(self, source: str) -> bytes:
        from llamavis.images.sources import read_source

        return await asyncio.to_thread(read_source, source, stdin=self.stdin)

    async def _once(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.ensure_future(make())
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)  # one step cancelled must not cancel the others' read

    def forget(self, source: str) -> None:
        """Drop an image once all its steps are done (a batch of a million keeps none)."""
        for key in [k for k in self._tasks if k[1] == source]:
            del self._tasks[key]


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # seen by the steps that await it; not "never retrieved"


class StepRunner(Runner):
    """A Runner whose images come from the SharedImages of the run."""

    def __init__(self, cfg: TaskConfig, *, images: SharedImages, **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.images = images

    async def prepare(self, source: Source) -> PreparedImage:
        # as Runner prepares it (the model's size, the provider's inline limit), shared
        spec = self.cfg.provider
        how = (self.cfg.image_purpose, spec.image_mimes, self._max_side(), spec.max_image_url)
        return await self.images.prepare(str(source), how, self._prepare)

    async def load(self, source: Source) -> tuple[Any, Any, Any]:
        """As Runner.load, with the bytes and the prepared image shared between steps."""
        key, hit = await asyncio.to_thread(self.lookup, await self.images.data(str(source)))
        if hit is not None:
            return key, hit, None
        return key, None, await self.prepare(source)


def runners(runs: list[StepRun], images: SharedImages) -> list[TaskRunner]:
    """Each step's runner from its session (a FallbackRunner with ``--fallback``): each route
    is planned from the step's own config, so the step's ``api_key`` stays with the route its
    model_version names and a fallback route uses its own key and endpoint."""
    make = functools.partial(StepRunner, images=images)
    return [r.session.runner(r.cfg, make=make) for r in runs]


async def run_image(source: str, runs: list[StepRun], steps: list[TaskRunner],
                    images: SharedImages, graph: Graph | None = None) -> Result:
    """All steps on one image, concurrently; a fatal error (a rejected key) stops the others.
    With declared outputs (``graph``), the formatter blocks run on the steps' answers."""
    try:
        pairs = await _all_steps(source, runs, steps)
        if graph is None:
            return combine(source, pairs)
        size = await _size(images, source) if graph.needs_size else None
    finally:
        images.forget(source)
    values = {step.name: StepValue(r.raw, step.classes, r.output if r.error is None else None,
                                   r.confidence) for step, r in pairs}
    outputs, errors = evaluate(graph, values, size)
    return combine(source, pairs, outputs=outputs, errors=errors)


async def _all_steps(source: str, runs: list[StepRun],
                     steps: list[TaskRunner]) -> list[tuple[Step, Result]]:
    tasks = [asyncio.ensure_future(runner.run(source)) for runner in steps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # no-op for the finished ones
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    return [(run.step, task.result()) for run, task in zip(runs, tasks, strict=True)]


async def _size(images: SharedImages, source: str) -> tuple[int, int] | None:
    """The image's (width, height) as Roboflow's blocks see it: the file's own, undecoded."""
    import io

    try:
        data = await images.data(source)
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return int(img.size[0]), int(img.size[1])
    except Exception:  # noqa: BLE001 - an unreadable image already failed its steps
        return None


def combine(source: str, pairs: list[tuple[Step, Result]], *, outputs: dict[str, Any] | None = None,
            errors: list[str] | None = None) -> Result:
    """One Result per image for the batch: its output is the steps' entries, by step name,
    and the declared outputs (None when the workflow declares none)."""
    usage = Usage()
    for _, result in pairs:
        usage = usage + result.usage
    failed = [(step, result.error) for step, result in pairs if result.error is not None]
    error = None
    if failed:
        step, first = failed[0]
        error = {"kind": first["kind"], "message": f"step {step.name!r}: {first['message']}"}
    elif errors:
        error = {"kind": "invalid_output", "message": errors[0]}
    return Result(
        image=source, task=TASK,
        output={"steps": {step.name: entry(step, result) for step, result in pairs},
                "outputs": outputs},
        usage=usage, attempts=sum(r.attempts for _, r in pairs),
        cached=all(r.cached for _, r in pairs), error=error,
        elapsed_s=max((r.elapsed_s for _, r in pairs), default=0.0),
    )


def entry(step: Step, result: Result) -> dict[str, Any]:
    """The block's two outputs (raw text, classes passed through) plus the validated value."""
    return {
        "output": result.raw,
        "classes": step.classes,
        "parsed": result.output if result.error is None else None,
        "error": result.error,
        "provider": result.provider,
        "model": result.model,
    }


def record(result: Result, steps: list[Step]) -> dict[str, Any]:
    """The per-image JSON object: ``{"image": PATH, "<step name>": {...}, ...}``."""
    entries = result.output.get("steps", {}) if isinstance(result.output, dict) else {}
    out: dict[str, Any] = {"image": result.image}
    for step in steps:  # a batch-level failure left no entries: each step shows its error
        out[step.name] = entries.get(step.name) or {
            "output": None, "classes": step.classes, "parsed": None, "error": result.error,
            "provider": None, "model": None,
        }
    return out


def declared(result: Result, graph: Graph) -> dict[str, Any]:
    """The image's declared outputs, keyed by output name (None each for a failed image)."""
    outputs = result.output.get("outputs") if isinstance(result.output, dict) else None
    return outputs if outputs is not None else {name: None for name, _ in graph.outputs}


async def run(session: Session, runs: list[StepRun], sources: Iterable[str], *,
              on_result: Callable[[Result], None],
              on_progress: Callable[[Any], None] | None = None,
              total: int | None = None, graph: Graph | None = None) -> Any:
    """The batch over images; returns its BatchSummary (errors carry ``.summary`` as usual).
    Closes the session (its steps' clients and the cache)."""
    images = SharedImages(session.stdin)
    steps = runners(runs, images)
    try:
        return await session.batch(
            sources, lambda source: run_image(str(source), runs, steps, images, graph),
            concurrency=max(r.concurrency for r in runs), on_result=on_result,
            on_progress=on_progress, total=total, task=TASK)
    finally:
        await session.aclose()


async def dry_run(session: Session, runs: list[StepRun], sources: Iterable[str], *,
                  on_error: Callable[[str, LlamavisError], None]) -> dict[str, Any]:
    """Every request a run would send (key redacted, image data shortened), sending nothing;
    each step's routes (``--fallback``'s too)."""
    from llamavis.backends.pricing import estimate_request

    images = SharedImages(session.stdin)
    steps = runners(runs, images)
    requests: list[dict[str, Any]] = []
    cost: float | None = 0.0
    try:
        for source in sources:
            try:
                for run, runner in zip(runs, steps, strict=True):
                    request = {"step": run.step.name, **await runner.dry_run(source)}
                    cfg = run.cfg
                    est = estimate_request(cfg.provider, cfg.model_id, cfg.prompt_text,
                                           cfg.params.max_tokens)
                    cost = None if cost is None or est is None else cost + est
                    requests.append(request)
            except LlamavisError as exc:  # a bad image is reported once, the rest go on
                on_error(source, exc)
            images.forget(source)
    finally:
        await session.aclose()
    return {
        "steps": [_step_doc(r, runner) for r, runner in zip(runs, steps, strict=True)],
        "request_count": len(requests),
        "estimated_cost_usd": None if cost is None else round(cost, 8),
        "requests": requests,
    }


def _step_doc(run: StepRun, runner: TaskRunner) -> dict[str, Any]:
    return {"name": run.step.name, "task": run.cfg.task, "provider": run.cfg.provider.name,
            "model": run.cfg.model_id,
            "routes": [{"provider": c.provider.name, "model": c.model_id, "base_url": c.base_url}
                       for c in runner.configs()]}
