"""--dry-run: what a run would send, through the same runner a run uses; nothing is sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llamavis.run.config import TaskConfig
from llamavis.run.protocol import Source, TaskRunner
from llamavis.types import JSONObject

if TYPE_CHECKING:
    from llamavis.errors import LlamavisError


@dataclass
class DryRun:
    """What a run would send: the routes, each request, how many are cached, the cost."""

    routes: list[TaskConfig]
    requests: list[JSONObject] = field(default_factory=list)
    cached: int = 0
    failed: int = 0
    cost_usd: float | None = 0.0  # None: no price known for some request


async def plan_requests(cfg: TaskConfig, runner: TaskRunner, sources: Iterable[Source], *,
                        cached: bool, on_error: Callable[[str, LlamavisError], None]) -> DryRun:
    """Each source's request(s) from ``runner`` (the routes a run would ask, fallbacks
    too), the images its cache answers (when ``cached``) and the estimated cost."""
    from llamavis.backends.pricing import estimate_request
    from llamavis.errors import LlamavisError

    plan = DryRun(runner.configs())
    for source in sources:
        # (standard input can be read once: "-" is counted as a request)
        if cached and source != "-" and await runner.cached(source):
            plan.cached += 1
            continue
        try:
            req = await runner.dry_run(source)
        except LlamavisError as exc:  # a bad image is reported, the rest go on
            on_error(str(source), exc)
            plan.failed += 1
            continue
        for one in req if isinstance(req, list) else [req]:  # --tiles, --captions: several
            plan.requests.append(one)
            est = estimate_request(cfg.provider, cfg.model_id, cfg.prompt_text,
                                   cfg.params.max_tokens)
            plan.cost_usd = None if plan.cost_usd is None or est is None else plan.cost_usd + est
    return plan
