"""One batch of jobs through the model: one processor call (left padding), one ``generate``.

Imported only by the worker thread once the engine has loaded, so torch and transformers are
already there. Per-job problems (a chat template that rejects the messages, an image that does
not decode) fail that job alone; out of memory fails the batch with the figures.
"""

from __future__ import annotations

import copy
import io
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from llamavis.engine import failures
from llamavis.engine.jobs import Job
from llamavis.engine.loader import Engine
from llamavis.engine.rows import RowTracker
from llamavis.errors import ImageError, LlamavisError, ProviderError
from llamavis.types import Completion, Usage

Log = Callable[[str], None]


def run_batch(engine: Engine, jobs: list[Job], log: Log) -> None:
    """Answer ``jobs`` (same Job.key) with one generate call; resolve each job's future.

    Every tensor is freed before the first future resolves: the last answer may let the
    main thread exit at once, and a daemon thread still inside torch then (freeing a tensor
    releases the GIL) aborts the process ("terminate called without an active exception").
    """
    jobs, texts, images = _prepared(engine, jobs)
    if not jobs:
        return
    started = time.monotonic()
    answers: list[Completion] | LlamavisError
    try:
        answers, streamed = _generate(engine, jobs, texts, images)
    except LlamavisError as exc:
        answers = exc.with_traceback(None)  # its frames hold the batch's tensors
    except Exception as exc:
        answers = _translated(engine, exc, len(jobs), log)
    images.clear()
    if isinstance(answers, LlamavisError):
        _fail(jobs, answers)
        return
    for job, answer in zip(jobs, answers, strict=True):
        job.finish(answer)
    pieces = f"; streamed in {streamed} pieces" if streamed is not None else ""
    log(f"batch of {len(jobs)}: {sum(a.usage.prompt_tokens for a in answers)} prompt and "
        f"{sum(a.usage.completion_tokens for a in answers)} new tokens "
        f"in {time.monotonic() - started:.2f} s{pieces}")


def _generate(engine: Engine, jobs: list[Job], texts: list[str],
              images: list[list[Any]]) -> tuple[list[Completion], int | None]:
    """The batch's answers (and the pieces streamed, if any); tensors live only in here."""
    inputs = _inputs(engine, texts, images)
    prompt_len = int(inputs["input_ids"].shape[1])
    kwargs = _generation(engine, jobs, prompt_len)
    with engine.lock, torch.inference_mode():
        output = engine.model.generate(**inputs, **kwargs)
    prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
    rows = output[:, prompt_len:].tolist()
    answers = [_completion(engine, row, job, prompt_tokens[i])
               for i, (row, job) in enumerate(zip(rows, jobs, strict=True))]
    streamer = kwargs.get("streamer")
    return answers, (streamer.pieces if streamer is not None else None)


def _prepared(engine: Engine, jobs: list[Job]) -> tuple[list[Job], list[str], list[list[Any]]]:
    """The jobs whose prompt renders and whose images decode, with their texts and images."""
    from PIL import Image

    kept: list[Job] = []
    texts: list[str] = []
    images: list[list[Any]] = []
    for job in jobs:
        try:
            text = engine.processor.apply_chat_template(job.messages, add_generation_prompt=True,
                                                        tokenize=False)
        except Exception as exc:  # jinja's raise_exception: e.g. a system message beside an image
            job.finish(ProviderError(f"the model's chat template rejected the request: {exc}",
                                     provider="transformers"))
            continue
        try:
            pictures = [Image.open(io.BytesIO(data)).convert("RGB") for data in job.images]
        except Exception as exc:
            job.finish(ImageError(f"the image does not decode: {exc}"))
            continue
        kept.append(job)
        texts.append(text)
        images.append(pictures)
    return kept, texts, images


def _inputs(engine: Engine, texts: list[str], images: list[list[Any]]) -> Any:
    """Token ids, masks and pixel values for the batch, on the model's device and dtype."""
    inputs = engine.processor(images=images if any(images) else None, text=texts,
                              padding=True, add_special_tokens=False, return_tensors="pt")
    inputs = inputs.to(engine.model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(engine.model.dtype)
    return inputs


def _generation(engine: Engine, jobs: list[Job], prompt_len: int) -> dict[str, Any]:
    """generate()'s arguments: sampling from the jobs, grammar, streaming and per-row limits."""
    limits = [job.max_tokens for job in jobs]
    config = copy.deepcopy(engine.model.generation_config)
    first = jobs[0]  # every job in a batch has the same Job.key
    sample = config.do_sample if first.temperature is None else first.temperature > 0
    config.update(max_new_tokens=max(limits), do_sample=sample, pad_token_id=engine.pad_id,
                  eos_token_id=list(engine.eos_ids))
    if sample:
        if first.temperature is not None:
            config.temperature = first.temperature
        if first.top_p is not None:
            config.top_p = first.top_p
    else:  # greedy: sampling settings would only draw warnings
        config.update(temperature=None, top_p=None, top_k=None)
    if first.seed is not None:
        torch.manual_seed(int(first.seed))
    kwargs: dict[str, Any] = {
        "generation_config": config,
        "stopping_criteria": StoppingCriteriaList([_RowStop(jobs, limits, engine.eos_ids)]),
    }
    if any(job.grammar for job in jobs):
        from llamavis.engine.grammar import GrammarProcessor, Grammars

        if engine.grammars is None:
            engine.grammars = Grammars(engine.tokenizer, engine.eos_ids, engine.logits_size)
        matchers = [engine.grammars.matcher(job.grammar) if job.grammar else None for job in jobs]
        kwargs["logits_processor"] = LogitsProcessorList([GrammarProcessor(
            engine.grammars, matchers, RowTracker(limits, engine.eos_ids), prompt_len)])
    if any(job.on_delta for job in jobs):
        kwargs["streamer"] = _RowStreamer(engine, jobs, limits)
    return kwargs


def _completion(engine: Engine, tokens: list[int], job: Job, prompt_tokens: int) -> Completion:
    """The row's answer: up to and including its first end token, within its own limit."""
    tokens = tokens[: job.max_tokens]
    finish = "length"
    for i, token in enumerate(tokens):
        if token in engine.eos_ids:
            tokens, finish = tokens[: i + 1], "stop"
            break
    text = engine.tokenizer.decode([t for t in tokens if t not in engine.eos_ids],
                                   skip_special_tokens=True)
    usage = Usage(int(prompt_tokens), len(tokens), 0.0)
    return Completion(text, finish_reason=finish, usage=usage, model=engine.model_id)


def _fail(jobs: list[Job], exc: BaseException) -> None:
    for job in jobs:
        job.finish(exc)


def _translated(engine: Engine, exc: Exception, batch: int, log: Log) -> LlamavisError:
    """Out of memory: a ConfigError with the figures; anything else: one job-level error."""
    log("generate failed:\n" + "".join(traceback.format_exception(exc)).rstrip())
    if failures.is_out_of_memory(exc):
        if engine.device == "cuda":
            torch.cuda.empty_cache()
        return failures.memory_error(
            f"generating a batch of {batch}", engine.device, engine.weights_bytes,
            failures.device_memory(torch, engine.device),
            hint=f"lower --batch-size (it was {batch}) or --max-tokens, or try --load-in-4bit (CUDA)")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ProviderError(f"the local model failed: {type(exc).__name__}: {first}",
                         provider="transformers", hint="--debug shows where")


class _RowStop(StoppingCriteria):
    """Ends a row at its own --max-tokens, or when its caller has gone (Ctrl-C, batch stopped)."""

    def __init__(self, jobs: list[Job], limits: list[int], eos_ids: tuple[int, ...]) -> None:
        self.jobs, self.rows = jobs, RowTracker(limits, eos_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.rows.advance(input_ids[:, -1].tolist())
        done = [d or job.cancelled.is_set() for d, job in zip(self.rows.done, self.jobs, strict=True)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class _RowStreamer(BaseStreamer):
    """Hands each streaming row's new text to its job's on_delta, as whole characters."""

    def __init__(self, engine: Engine, jobs: list[Job], limits: list[int]) -> None:
        self.tokenizer, self.eos = engine.tokenizer, frozenset(engine.eos_ids)
        self.sinks = [job.on_delta for job in jobs]
        self.rows = RowTracker(limits, engine.eos_ids)
        self.tokens: list[list[int]] = [[] for _ in jobs]
        self.sent = ["" for _ in jobs]
        self.prompt_seen = False
        self.pieces = 0  # deltas handed out, for --debug

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate hands over the prompt first
            self.prompt_seen = True
            return
        for row, token in enumerate(self.rows.advance(value.reshape(-1).tolist())):
            if self.sinks[row] is not None and token is not None and token not in self.eos:
                self.tokens[row].append(token)
                self._send(row, final=False)

    def end(self) -> None:
        for row in range(len(self.sinks)):
            if self.sinks[row] is not None:
                self._send(row, final=True)

    def _send(self, row: int, *, final: bool) -> None:
        text = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):  # half a UTF-8 character: wait for the rest
            return
        sent, sink = self.sent[row], self.sinks[row]
        if sink is not None and len(text) > len(sent) and text.startswith(sent):
            sink(text[len(sent):])
            self.sent[row] = text
            self.pieces += 1
