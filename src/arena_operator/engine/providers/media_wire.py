"""A user message's media parts in each provider's wire format, as upstream's *_multimodal.go builds them:
OpenAI `image_url` (a data: URL) and `input_audio` (wav, mp3); Claude `image` and `document` (PDF) blocks with a
base64 source; Gemini `inlineData`. Media a provider's API does not take fails the call (kind
`unsupported_media`), as upstream does, instead of being dropped silently."""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from ..media import message_parts
from ..types import Message

UNSUPPORTED = "unsupported_media"
OPENAI_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3",
                        "audio/mp3": "mp3"}
CLAUDE_DOCUMENT_MIME = "application/pdf"


def _user_parts(message: Message) -> list[dict[str, Any]]:
    return message_parts(message) if message.role == "user" else []


def _media(part: dict[str, Any]) -> dict[str, Any]:
    media = part.get("media")
    return media if isinstance(media, dict) else {}


def openai_content(message: Message) -> str | list[dict[str, Any]]:
    """The `content` of a chat completions message: the text, or content parts when the turn has media."""
    parts = _user_parts(message)
    if not parts:
        return message.content
    out: list[dict[str, Any]] = []
    for part in parts:
        kind, media = part.get("type"), _media(part)
        if kind == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            data = media.get("data")
            image = {"url": f"data:{media.get('mime_type')};base64,{data}" if data else media.get("url", "")}
            if media.get("detail"):
                image["detail"] = media["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif kind == "audio":
            fmt = OPENAI_AUDIO_FORMATS.get(str(media.get("mime_type", "")))
            if fmt is None:
                raise ProviderError(f"unsupported audio format for OpenAI: {media.get('mime_type')} "
                                    "(supported: wav, mp3)", UNSUPPORTED)
            out.append({"type": "input_audio", "input_audio": {"data": media.get("data", ""), "format": fmt}})
        else:
            raise ProviderError(f"{kind} content not supported by the OpenAI chat completions API", UNSUPPORTED)
    return out


def claude_blocks(message: Message) -> list[dict[str, Any]]:
    """Content blocks of an Anthropic message for a turn with media ([] when it has none)."""
    blocks: list[dict[str, Any]] = []
    for part in _user_parts(message):
        kind, media = part.get("type"), _media(part)
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            source = ({"type": "base64", "media_type": media.get("mime_type"), "data": media["data"]}
                      if media.get("data") else {"type": "url", "url": media.get("url", "")})
            blocks.append({"type": "image", "source": source})
        elif kind == "document":
            if media.get("mime_type") != CLAUDE_DOCUMENT_MIME:
                raise ProviderError(f"claude only supports PDF documents, got: {media.get('mime_type')}", UNSUPPORTED)
            blocks.append({"type": "document", "source": {"type": "base64", "media_type": CLAUDE_DOCUMENT_MIME,
                                                          "data": media.get("data", "")}})
        else:
            raise ProviderError(f"claude does not support {kind} content", UNSUPPORTED)
    return blocks


def gemini_parts(message: Message) -> list[dict[str, Any]]:
    """`parts` of a Gemini content for a turn with media ([] when it has none)."""
    out: list[dict[str, Any]] = []
    for part in _user_parts(message):
        kind, media = part.get("type"), _media(part)
        if kind == "text":
            out.append({"text": part.get("text", "")})
            continue
        if not media.get("mime_type"):
            raise ProviderError(f"{kind} part missing mime_type", UNSUPPORTED)
        out.append({"inlineData": {"mimeType": media["mime_type"], "data": media.get("data", "")}})
    return out


def _tool_media(message: Message) -> list[dict[str, Any]]:
    """A tool result's parts when any of them is media (upstream's HasMedia), else []."""
    parts = message.tool_result.parts if message.tool_result is not None else []
    return parts if any(isinstance(p.get("media"), dict) for p in parts) else []


def openai_tool_content(message: Message) -> str | list[dict[str, Any]]:
    """A tool message's content: its text, or (with media) the text then text and image parts; other media is
    skipped, as upstream's convertToolResultContent."""
    assert message.tool_result is not None
    parts = _tool_media(message)
    if not parts:
        return message.tool_result.content
    out: list[dict[str, Any]] = [{"type": "text", "text": message.tool_result.content}]
    for part in parts:
        media = _media(part)
        if part.get("type") == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image" and (media.get("data") or media.get("url")):
            url = f"data:{media.get('mime_type')};base64,{media['data']}" if media.get("data") else media["url"]
            out.append({"type": "image_url", "image_url": {"url": url}})
    return out


def claude_tool_content(message: Message) -> str | list[dict[str, Any]]:
    """A tool_result block's content: its text, or (with media) the text then text, image and document blocks;
    other media is skipped, as upstream's buildToolResultContentBlocks."""
    assert message.tool_result is not None
    parts = _tool_media(message)
    if not parts:
        return message.tool_result.content
    out: list[dict[str, Any]] = [{"type": "text", "text": message.tool_result.content}]
    for part in parts:
        kind, media = part.get("type"), _media(part)
        if kind == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif kind in ("image", "document") and media.get("data"):
            out.append({"type": kind, "source": {"type": "base64", "media_type": media.get("mime_type"),
                                                 "data": media["data"]}})
        elif kind == "image" and media.get("url"):
            out.append({"type": "image", "source": {"type": "url", "url": media["url"]}})
    return out


def gemini_tool_response(message: Message, part: dict[str, Any]) -> dict[str, Any]:
    """A functionResponse part with the first media of the result as `inlineData` in its response, as upstream's
    buildMultimodalToolResponse (the response is a flat object: one media part fits)."""
    media = next((_media(p) for p in _tool_media(message) if p.get("type") != "text" and _media(p).get("data")),
                 None)
    if media is None:
        return part
    response = {**part["functionResponse"]["response"],
                "inlineData": {"mimeType": media.get("mime_type"), "data": media["data"]}}
    return {"functionResponse": {**part["functionResponse"], "response": response}}
