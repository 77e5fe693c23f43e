"""Classifier evals: a classifier endpoint (a `role: inference` provider, e.g. Hugging Face) scores a reply's
text or a media part, and the score of `expected_label` is the eval's score. Without a configured classifier
(or with no matching message) the eval is skipped — passed — as upstream."""

from __future__ import annotations

import base64
from typing import Any

from ..errors import ProviderError
from .base import EvalContext, Score, integer, text
from .judge import threshold_error
from .media import message_parts

DEFAULT_ROLE = {"text": "assistant", "image": "assistant", "audio": "user"}


def _config_error(params: dict[str, Any]) -> Score | None:
    for required in ("model", "expected_label"):
        if not text(params, required):
            return Score(0.0, f"{required} is required", error=f"{required} is required")
    return threshold_error(params)


def _pick(items: list[Any], index: int | None) -> Any:
    if index is None or index < 0:
        return items[-1]
    if index >= len(items):
        raise IndexError(f"message_index {index} out of range (found {len(items)})")
    return items[index]


def _payload(kind: str, params: dict[str, Any], ctx: EvalContext) -> tuple[Any, str] | Score:
    """(text or (bytes, mime), "") to classify, or the skip/error Score."""
    role = text(params, "message_role") or DEFAULT_ROLE[kind]
    index = integer(params, "message_index")
    if kind == "text":
        texts = [" ".join(filter(None, [m.content, *(p.get("text", "") for p in message_parts(m)
                                                     if p.get("type") == "text")]))
                 for m in ctx.messages if m.role == role]
        texts = [t for t in texts if t.strip()]
        if not texts:
            return Score(1.0, f"no text message found with role {role!r}", skipped=True)
        try:
            return _pick(texts, index), ""
        except IndexError as exc:
            return Score(0.0, str(exc), error=str(exc))
    parts = [p["media"] for m in ctx.messages if m.role == role or (role == "assistant" and m.role == "tool")
             for p in message_parts(m) if p.get("type") == kind and isinstance(p.get("media"), dict)]
    if not parts:
        return Score(1.0, f"no {kind} part found with role {role!r}", skipped=True)
    try:
        media = _pick(parts, index)
    except IndexError as exc:
        return Score(0.0, str(exc), error=str(exc))
    data = media.get("data")
    if not isinstance(data, str) or not data:
        message = f"{kind} part has no inline data to classify"
        return Score(0.0, message, error=message)
    return (base64.b64decode(data), str(media.get("mime_type", ""))), ""


def _classifier(kind: str):
    async def handler(params: dict, ctx: EvalContext) -> Score:
        if (bad := _config_error(params)) is not None:
            return bad
        classify = ctx.services.classify
        if classify is None:
            return Score(1.0, "no classify registry configured (add a provider with role: inference)", skipped=True)
        payload = _payload(kind, params, ctx)
        if isinstance(payload, Score):
            return payload
        try:
            scores = await classify(kind, payload[0], text(params, "model"), text(params, "classifier_id"))
        except LookupError as exc:
            return Score(1.0, str(exc), skipped=True)
        except ProviderError as exc:
            return Score(0.0, f"classify failed: {exc}", error=f"classify failed: {exc}")
        wanted = text(params, "expected_label")
        found = next((s for label, s in scores if label.lower() == wanted.lower()), None)
        labels = ", ".join(label for label, _ in scores)
        if found is None:
            return Score(0.0, f"label {wanted!r} not returned by model; got: {labels}", {"scores": scores})
        return Score(found, f"{wanted} score {found:.3f}", {"scores": scores})
    return handler


text_toxicity = _classifier("text")
text_sentiment = _classifier("text")
image_moderation = _classifier("image")
audio_emotion = _classifier("audio")
