"""Media content parts (image, audio, video, document) of scripted turns and mock tools, as upstream's media
loader reads them: `{type, text}` or `{type, media: {file_path | data | url, mime_type, detail, width, …}}`.

A bundle is untrusted input, so a part's file must be a regular file inside the bundle (relative, no `..`, no
symlink leading out) of at most MAX_MEDIA_BYTES; inline `data` (base64 or a `data:` URI) is decoded and bounded
the same way. Files and inline data are read once, when the bundle loads (a bad part is a load error naming
file:line); http(s) URLs are fetched when the turn runs (as upstream: the model gets the bytes, not the URL),
through the egress policy, within URL_TIMEOUT_S and MAX_MEDIA_BYTES.

A part, once resolved, is `{type, media: {mime_type, data (base64), size_bytes, file_path?, url?, detail?, width?,
height?, duration?, caption?}}`: the shape providers' wire formats, media assertions and MediaOutputs read."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from .egress import EgressRefused, async_client
from .errors import ProviderError
from .types import Message

MAX_MEDIA_BYTES = 10 * 1024 * 1024  # one part's bytes (upstream allows 50 MB; reports and requests carry them)
URL_TIMEOUT_S = 30.0  # fetching one http(s) media URL, connect to last byte
THUMBNAIL_MAX_B64 = 50_000  # upstream: images up to ~37.5 KB decoded are shown inline in the HTML report
MEDIA_TYPES = ("image", "audio", "video", "document")
#: Keys of `media` kept as metadata (what media assertions and MediaOutputs read), beside the source.
METADATA_KEYS = ("detail", "width", "height", "duration", "caption", "format")
#: Upstream's MIME detection by file extension (turnexecutors/media_loader.go).
MIME_BY_EXTENSION = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp",
    ".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg", ".m4a": "audio/mp4", ".pcm": "audio/pcm",
    ".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime", ".pdf": "application/pdf",
}
DEFAULT_MIME = {"image": "image/jpeg"}  # upstream's default for inline image data without mime_type


class MediaFetchError(ProviderError):
    """A turn's media URL could not be fetched: the run errors (kind `media`), as upstream's turn fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "media")


Problem = tuple[list[str | int], str]  # (path inside the part list, message)


def _mime_prefix(kind: str) -> str:
    return "application/" if kind == "document" else f"{kind}/"


def _confined_file(root: Path, value: Any) -> tuple[Path | None, str]:
    """The file a part names, or why it may not be read."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None, "file_path must be a non-empty string"
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        return None, f"{value!r} must be a path inside the bundle: relative, without '..'"
    real_root = root.resolve()
    target = (root / value).resolve()
    if target != real_root and real_root not in target.parents:
        return None, f"{value!r} leads outside the bundle (a symlink)"
    if not target.is_file():
        return None, f"{value!r}: file not found"
    size = target.stat().st_size
    if size > MAX_MEDIA_BYTES:
        return None, f"{value!r} is {size} bytes; a media file may be at most {MAX_MEDIA_BYTES}"
    return target, ""


def _decode(data: str) -> tuple[bytes | None, str, str]:
    """(bytes, mime from a data: URI, problem) of inline data: base64, or `data:<mime>;base64,<b64>`."""
    mime = ""
    if data.startswith("data:"):
        head, sep, data = data[5:].partition(",")
        if not sep or not head.endswith(";base64"):
            return None, "", "a data: URI must be data:<mime>;base64,<data>"
        mime = head[: -len(";base64")]
    if len(data) > (MAX_MEDIA_BYTES * 4) // 3 + 4:
        return None, "", f"inline data exceeds {MAX_MEDIA_BYTES} bytes"
    try:
        return base64.b64decode(data, validate=True), mime, ""
    except (binascii.Error, ValueError):
        return None, "", "data is not valid base64"


def _resolve_one(part: Any, root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    if not isinstance(part, dict):
        return None, [([], "a content part must be a mapping with a type")]
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return None, [(["text"], "empty text content")]
        return {"type": "text", "text": text}, []
    if kind not in MEDIA_TYPES:
        return None, [(["type"], f"unsupported content part type {kind!r}; use text, {', '.join(MEDIA_TYPES)}")]
    raw = part.get("media")
    if not isinstance(raw, dict):
        return None, [(["media"], f"a {kind} part needs media: with file_path, data or url")]
    media: dict[str, Any] = {k: raw[k] for k in METADATA_KEYS if raw.get(k) is not None}
    mime = raw.get("mime_type") if isinstance(raw.get("mime_type"), str) else ""
    payload: bytes | None = None
    if raw.get("storage_reference"):
        return None, [(["media", "storage_reference"], "storage references need a media store, which runs here "
                                                         "do not have; use file_path, data or url")]
    if raw.get("url"):
        url = str(raw["url"])
        if url.startswith("data:"):
            payload, uri_mime, problem = _decode(url)
            if problem:
                return None, [(["media", "url"], problem)]
            mime = mime or uri_mime
        elif url.startswith(("http://", "https://")):
            media["url"] = url
        else:
            return None, [(["media", "url"], f"unsupported URL scheme in {url[:80]!r} (http, https and data only)")]
    elif raw.get("data"):
        payload, uri_mime, problem = _decode(str(raw["data"]))
        if problem:
            return None, [(["media", "data"], problem)]
        mime = mime or uri_mime or DEFAULT_MIME.get(kind, "")
        if not mime:
            return None, [(["media", "mime_type"], "inline data specified but mime_type is missing")]
    elif raw.get("file_path") is not None:
        target, problem = _confined_file(root, raw["file_path"])
        if target is None:
            return None, [(["media", "file_path"], problem)]
        payload = target.read_bytes()
        media["file_path"] = str(raw["file_path"])
        mime = mime or MIME_BY_EXTENSION.get(target.suffix.lower(), "application/octet-stream")
    else:
        return None, [(["media"], "no URL, data, or file_path specified")]
    if mime and not mime.startswith(_mime_prefix(kind)) and mime != "application/octet-stream":
        return None, [(["media", "mime_type"], f"a {kind} part cannot have mime_type {mime!r}")]
    media["mime_type"] = mime
    if payload is not None:
        media["data"] = base64.b64encode(payload).decode()
        media["size_bytes"] = len(payload)
    return {"type": kind, "media": media}, []


def resolve_parts(parts: list[Any], root: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Load time: each part checked and its file or inline data read; problems name the part (`[index, …]`)."""
    resolved, problems = [], []
    for index, part in enumerate(parts):
        done, found = _resolve_one(part, root)
        problems.extend(([index, *where], message) for where, message in found)
        if done is not None:
            resolved.append(done)
    return resolved, problems


def text_of(parts: list[dict[str, Any]]) -> str:
    """The text parts joined: a multimodal turn's content, as text-reading assertions and logs see it."""
    return "\n".join(p["text"] for p in parts if p.get("type") == "text" and p.get("text"))


async def fetch_urls(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run time: parts with an http(s) URL get its bytes (a copy; the bundle's parts are shared by runs)."""
    if not any("url" in p.get("media", {}) and "data" not in p.get("media", {}) for p in parts):
        return parts
    out = []
    async with async_client() as client:
        for part in parts:
            media = part.get("media") or {}
            if "url" in media and "data" not in media:
                payload, mime = await _fetch(client, media["url"])
                media = {**media, "data": base64.b64encode(payload).decode(), "size_bytes": len(payload),
                         "mime_type": media.get("mime_type") or mime}
                part = {**part, "media": media}
            out.append(part)
    return out


async def _fetch(client: httpx.AsyncClient, url: str) -> tuple[bytes, str]:
    try:
        async with client.stream("GET", url, timeout=URL_TIMEOUT_S) as response:
            if response.status_code != 200:
                raise MediaFetchError(f"media URL {url}: HTTP {response.status_code}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_MEDIA_BYTES:
                    raise MediaFetchError(f"media URL {url}: more than {MAX_MEDIA_BYTES} bytes")
                chunks.append(chunk)
            mime = response.headers.get("content-type", "").split(";")[0].strip()
            return b"".join(chunks), mime or MIME_BY_EXTENSION.get(os.path.splitext(url.split("?")[0])[1], "")
    except EgressRefused as exc:
        raise MediaFetchError(f"media URL {url}: {exc}") from None
    except httpx.TimeoutException:
        raise MediaFetchError(f"media URL {url}: timed out after {URL_TIMEOUT_S:g}s") from None
    except httpx.TransportError as exc:
        raise MediaFetchError(f"media URL {url}: connection failed ({type(exc).__name__})") from None


def parts_meta(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A message's meta for its parts (none: empty)."""
    return {"parts": parts} if parts else {}


def message_parts(message: Any) -> list[dict[str, Any]]:
    parts = (message.meta or {}).get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def media_of(message: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(part index, part) of a message's media parts."""
    for index, part in enumerate(message_parts(message)):
        if isinstance(part.get("media"), dict):
            yield index, part


def _size(media: dict[str, Any]) -> int:
    if isinstance(media.get("size_bytes"), int):
        return media["size_bytes"]
    if isinstance(media.get("size_kb"), int):
        return media["size_kb"] * 1024
    data = media.get("data")
    return len(data) * 3 // 4 if isinstance(data, str) else 0


def media_outputs(messages: list[Any]) -> list[dict[str, Any]]:
    """Upstream's CollectMediaOutputs: the media of replies and tool results, each with where it sits."""
    outputs = []
    for message_index, message in enumerate(messages):
        if message.role not in ("assistant", "tool"):
            continue
        for part_index, part in media_of(message):
            media = part["media"]
            output: dict[str, Any] = {"type": part.get("type", ""), "mime_type": media.get("mime_type", ""),
                                      "size_bytes": _size(media)}
            for key in ("duration", "width", "height"):
                if isinstance(media.get(key), int | float) and not isinstance(media.get(key), bool):
                    output[key] = media[key]
            if media.get("file_path"):
                output["file_path"] = media["file_path"]
            data = media.get("data")
            if part.get("type") == "image" and isinstance(data, str) and data and len(data) <= THUMBNAIL_MAX_B64:
                output["thumbnail"] = data
            output["message_index"] = message_index
            output["part_index"] = part_index
            outputs.append(output)
    return outputs


async def user_message(turn: Any) -> Message:
    """A scripted user turn as a message: its parts (URLs fetched now) in meta, their text as its content."""
    if not turn.parts:
        return Message("user", turn.content or "")
    parts = await fetch_urls(turn.parts)
    return Message("user", turn.content or text_of(parts), meta=parts_meta(parts))
