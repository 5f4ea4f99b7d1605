"""Answers read into a ``Completion``: a JSON body, or the chunks of a stream. No I/O here.

The client reads bytes off the wire; these functions decide what they mean, so every
case (an in-band error, no choices, a content filter, an empty answer, a stream cut
short) is testable without HTTP. Each takes the request ``payload`` it answers: the
model asked for and the images sent price the usage when the provider gives no cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from llamavis.backends.errors import error_from_chunk, in_band_error, one_line
from llamavis.backends.payload import count_images, usage_from
from llamavis.backends.providers import ProviderSpec
from llamavis.backends.sse import ChatStream, ServerSentEvent
from llamavis.errors import NetworkError, ProviderError, RefusedError
from llamavis.types import Completion, JSONObject


def completion_from_body(
    body: bytes, spec: ProviderSpec, payload: JSONObject, *, now: float | None = None
) -> Completion:
    """The answer in a non-streamed chat-completions response body (``now``: the wall
    clock, for an X-RateLimit-Reset inside an in-band error)."""
    data = json_body(body, spec)
    if not isinstance(data, dict):
        raise bad_body(body, spec)
    if (error := in_band_error(data)) is not None:
        raise error_from_chunk(error, spec.name, now=now)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ProviderError(f"{spec.name} answered without any choices", provider=spec.name,
                            body=data)
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return completion(spec, payload, text=content_text(content),
                      finish_reason=choice.get("finish_reason"), usage=data.get("usage"),
                      model=data.get("model"), id_=data.get("id"))


def completion_from_stream(stream: ChatStream, spec: ProviderSpec, payload: JSONObject) -> Completion:
    """The answer a fed ChatStream assembled; a stream that ended too soon is a failure."""
    if not stream.complete:
        raise NetworkError(f"{spec.name} stream ended before the answer was complete")
    return completion(spec, payload, text=stream.text, finish_reason=stream.finish_reason,
                      usage=stream.usage, model=stream.model, id_=stream.id)


def completion_from_events(
    events: Iterable[ServerSentEvent], spec: ProviderSpec, payload: JSONObject
) -> Completion:
    """The answer in a whole stream of server-sent events (an in-band error raises)."""
    stream = ChatStream(spec.name)
    for event in events:
        if stream.done:
            break
        stream.feed(event)
    return completion_from_stream(stream, spec, payload)


def completion(
    spec: ProviderSpec, payload: JSONObject, *, text: str, finish_reason: Any, usage: Any,
    model: Any, id_: Any,
) -> Completion:
    """A Completion, or the error a filtered or empty answer is."""
    model_id = str(payload.get("model") or "")
    counted = usage_from(usage, spec, model_id, count_images(payload))
    if finish_reason == "content_filter":
        # The provider's filter cut or withheld the answer: what came is not the answer,
        # and asking again gets the same verdict.
        raise RefusedError(
            f"{spec.name}'s content filter stopped the answer",
            raw=text or None,
            usage=counted,
            hint="the provider's moderation refused it; try another provider or model",
        )
    if not text.strip():
        why = f" (finish_reason {finish_reason})" if finish_reason else ""
        raise ProviderError(f"{spec.name} returned an empty answer{why}", provider=spec.name)
    return Completion(
        text=text,
        finish_reason=str(finish_reason) if finish_reason else None,
        usage=counted,
        model=model if isinstance(model, str) and model else model_id or None,
        id=id_ if isinstance(id_, str) else None,
    )


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", None)
        )
    return ""


def model_list(items: Any, body: bytes, spec: ProviderSpec) -> list[JSONObject]:
    """The model objects of a model list (``items``, as the wire's client found them in
    ``body``); a body that held no list is not the expected JSON."""
    if not isinstance(items, list):
        raise bad_body(body, spec)
    return [item for item in items if isinstance(item, dict)]


def bad_body(body: bytes, spec: ProviderSpec) -> ProviderError:
    """The error for a body that is not the JSON expected (its start, on one line)."""
    snippet = one_line(body.decode("utf-8", errors="replace"), 80)
    return ProviderError(
        f"{spec.name} answered with a body that is not the expected JSON: {snippet!r}",
        provider=spec.name,
    )


def json_body(body: bytes, spec: ProviderSpec) -> Any:
    """The JSON a response body holds, or the error for a body that is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        raise bad_body(body, spec) from None
