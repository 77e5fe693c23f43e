"""Media evals over the content parts of replies and tool results (`{type, media: {mime_type, width, height,
duration}}`). A conversation without media parts scores as upstream: "no images found in messages"."""

from __future__ import annotations

from typing import Any

from ..types import Message
from .base import EvalContext, Score, integer, number, scored, str_list, text


def message_parts(message: Message) -> list[dict[str, Any]]:
    parts = (message.meta or {}).get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def media_parts(ctx: EvalContext, kind: str) -> list[dict[str, Any]]:
    """Parts of `kind` with media, from assistant replies and tool results."""
    return [p for m in ctx.messages if m.role in ("assistant", "tool") for p in message_parts(m)
            if p.get("type") == kind and isinstance(p.get("media"), dict)]


def _format(mime: str) -> str:
    head, _, tail = mime.partition("/")
    if not tail or "/" in tail:
        return mime
    return "mp3" if tail == "mpeg" and head == "audio" else tail


NO_MEDIA = {"image": "no images found in messages", "audio": "no audio found in messages",
            "video": "no video found in messages"}


def _formats(kind: str):
    def handler(params: dict, ctx: EvalContext) -> Score:
        allowed = [f.lower() for f in str_list(params, "formats")]
        if not allowed:
            return scored(False, "at least one format must be specified")
        parts = media_parts(ctx, kind)
        if not parts:
            return scored(False, NO_MEDIA[kind])
        found = [_format(str(p["media"].get("mime_type", ""))) for p in parts]
        bad = [f for f in found if f.lower() not in allowed]
        return scored(not bad, f"{kind} formats {found}" + (f"; not allowed: {bad}" if bad else ""))
    handler.__name__ = f"{kind}_format"
    return handler


image_format = _formats("image")
audio_format = _formats("audio")


def _range_violations(what: str, value: int, params: dict[str, Any]) -> list[str]:
    out = []
    low, high = integer(params, f"min_{what}"), integer(params, f"max_{what}")
    if low is not None and value < low:
        out.append(f"{what} {value} below minimum {low}")
    if high is not None and value > high:
        out.append(f"{what} {value} exceeds maximum {high}")
    return out


def _dimensions(part: dict[str, Any]) -> tuple[int, int] | None:
    media = part["media"]
    width, height = media.get("width"), media.get("height")
    return (int(width), int(height)) if isinstance(width, int) and isinstance(height, int) else None


def image_dimensions(params: dict, ctx: EvalContext) -> Score:
    parts = media_parts(ctx, "image")
    if not parts:
        return scored(False, NO_MEDIA["image"])
    violations: list[str] = []
    for part in parts:
        size = _dimensions(part)
        if size is None:
            violations.append("missing width/height metadata")
            continue
        for what, value in zip(("width", "height"), size, strict=True):
            exact = integer(params, what)
            if exact is not None and value != exact:
                violations.append(f"{what} {value} does not match required {exact}")
            violations.extend(_range_violations(what, value, params))
    return scored(not violations, "; ".join(violations) or "all images meet dimension requirements")


_PRESETS = {"480p": 480, "sd": 480, "720p": 720, "hd": 720, "1080p": 1080, "fhd": 1080, "full_hd": 1080,
            "1440p": 1440, "2k": 1440, "qhd": 1440, "2160p": 2160, "4k": 2160, "uhd": 2160, "4320p": 4320,
            "8k": 4320}


def video_resolution(params: dict, ctx: EvalContext) -> Score:
    parts = media_parts(ctx, "video")
    if not parts:
        return scored(False, NO_MEDIA["video"])
    presets = str_list(params, "presets")
    violations: list[str] = []
    for part in parts:
        size = _dimensions(part)
        if size is None:
            violations.append("video missing width/height metadata")
            continue
        if presets and not any(_PRESETS.get(p.lower()) == size[1] for p in presets):
            violations.append(f"resolution {size[0]}x{size[1]} does not match any preset: {presets}")
        violations.extend(_range_violations("width", size[0], params))
        violations.extend(_range_violations("height", size[1], params))
    return scored(not violations, "; ".join(violations) or "all videos meet resolution requirements")


def _durations(kind: str):
    def handler(params: dict, ctx: EvalContext) -> Score:
        parts = media_parts(ctx, kind)
        if not parts:
            return scored(False, NO_MEDIA[kind])
        low, high = number(params, "min_seconds"), number(params, "max_seconds")
        violations = []
        for part in parts:
            duration = part["media"].get("duration")
            if not isinstance(duration, int | float) or isinstance(duration, bool):
                violations.append("missing duration metadata")
            elif low is not None and duration < low:
                violations.append(f"duration {duration:.1f}s below minimum {low:.1f}s")
            elif high is not None and duration > high:
                violations.append(f"duration {duration:.1f}s exceeds maximum {high:.1f}s")
        return scored(not violations, "; ".join(violations) or f"all {kind} duration within range")
    handler.__name__ = f"{kind}_duration"
    return handler


audio_duration = _durations("audio")
video_duration = _durations("video")


def _tool_parts(ctx: EvalContext, tool: str) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, p) for c in ctx.tool_calls if not tool or c.name == tool
            if isinstance(c.result, list) for p in c.result if isinstance(p, dict) and p.get("type")]


def tool_result_has_media(params: dict, ctx: EvalContext) -> Score:
    kind = text(params, "media_type")
    if not kind:
        return scored(False, "no media_type specified")
    hit = next((name for name, p in _tool_parts(ctx, text(params, "tool")) if str(p["type"]).lower() == kind.lower()),
               None)
    if hit:
        return scored(True, f"tool {hit!r} returned media of type {kind!r}")
    return scored(False, f"no tool result contains media of type {kind!r}")


def tool_result_media_type(params: dict, ctx: EvalContext) -> Score:
    mime = text(params, "mime_type")
    if not mime:
        return scored(False, "no mime_type specified")
    hit = next((name for name, p in _tool_parts(ctx, text(params, "tool")) if p["type"] != "text"
                and isinstance(p.get("media"), dict) and str(p["media"].get("mime_type", "")).lower() == mime.lower()),
               None)
    if hit:
        return scored(True, f"tool {hit!r} returned media with MIME type {mime!r}")
    return scored(False, f"no tool result contains media with MIME type {mime!r}")
