"""A user turn's media in each provider's request, as upstream's *_multimodal.go builds it, and the media a
provider's API does not take refused (kind unsupported_media) instead of dropped."""

from __future__ import annotations

from typing import Any

import pytest

from arena_operator.engine.errors import ProviderError
from arena_operator.engine.providers.media_wire import (
    claude_blocks,
    claude_tool_content,
    gemini_parts,
    gemini_tool_response,
    openai_content,
    openai_tool_content,
)
from arena_operator.engine.types import Message, ToolResult

IMAGE = {"type": "image", "media": {"mime_type": "image/png", "data": "UE5H", "detail": "low"}}
IMAGE_URL = {"type": "image", "media": {"mime_type": "image/png", "url": "https://example.test/a.png"}}
WAV = {"type": "audio", "media": {"mime_type": "audio/wav", "data": "V0FW"}}
MP3 = {"type": "audio", "media": {"mime_type": "audio/mpeg", "data": "TVAz"}}
OGG = {"type": "audio", "media": {"mime_type": "audio/ogg", "data": "T0dH"}}
VIDEO = {"type": "video", "media": {"mime_type": "video/mp4", "data": "TVA0"}}
PDF = {"type": "document", "media": {"mime_type": "application/pdf", "data": "UERG"}}
DOCX = {"type": "document", "media": {"mime_type": "application/msword", "data": "RE9D"}}
TEXT = {"type": "text", "text": "Describe:"}


def user(*parts: dict[str, Any]) -> Message:
    return Message("user", "Describe:", meta={"parts": list(parts)})


WIRE: list[tuple[str, Any, dict[str, Any], Any]] = [
    ("openai image", openai_content, IMAGE,
     {"type": "image_url", "image_url": {"url": "data:image/png;base64,UE5H", "detail": "low"}}),
    ("openai image by URL", openai_content, IMAGE_URL,
     {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}}),
    ("openai wav", openai_content, WAV, {"type": "input_audio", "input_audio": {"data": "V0FW", "format": "wav"}}),
    ("openai mp3", openai_content, MP3, {"type": "input_audio", "input_audio": {"data": "TVAz", "format": "mp3"}}),
    ("claude image", claude_blocks, IMAGE,
     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "UE5H"}}),
    ("claude image by URL", claude_blocks, IMAGE_URL,
     {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}),
    ("claude pdf", claude_blocks, PDF,
     {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "UERG"}}),
    ("gemini image", gemini_parts, IMAGE, {"inlineData": {"mimeType": "image/png", "data": "UE5H"}}),
    ("gemini audio", gemini_parts, OGG, {"inlineData": {"mimeType": "audio/ogg", "data": "T0dH"}}),
    ("gemini video", gemini_parts, VIDEO, {"inlineData": {"mimeType": "video/mp4", "data": "TVA0"}}),
    ("gemini pdf", gemini_parts, PDF, {"inlineData": {"mimeType": "application/pdf", "data": "UERG"}}),
]
TEXT_WIRE = {openai_content: {"type": "text", "text": "Describe:"},
             claude_blocks: {"type": "text", "text": "Describe:"}, gemini_parts: {"text": "Describe:"}}


@pytest.mark.parametrize(("build", "part", "wire"), [(b, p, w) for _, b, p, w in WIRE], ids=[i for i, *_ in WIRE])
def test_media_in_the_wire_format(build: Any, part: dict[str, Any], wire: Any) -> None:
    assert build(user(TEXT, part)) == [TEXT_WIRE[build], wire]


REFUSED: list[tuple[str, Any, dict[str, Any], str]] = [
    ("openai video", openai_content, VIDEO, "video content not supported"),
    ("openai document", openai_content, PDF, "document content not supported"),
    ("openai ogg", openai_content, OGG, "unsupported audio format for OpenAI: audio/ogg"),
    ("claude audio", claude_blocks, WAV, "claude does not support audio"),
    ("claude video", claude_blocks, VIDEO, "claude does not support video"),
    ("claude non-PDF document", claude_blocks, DOCX, "claude only supports PDF documents"),
    ("gemini without MIME", gemini_parts, {"type": "image", "media": {"data": "UE5H"}}, "missing mime_type"),
]


@pytest.mark.parametrize(("build", "part", "message"), [(b, p, m) for _, b, p, m in REFUSED],
                         ids=[i for i, *_ in REFUSED])
def test_media_a_provider_cannot_take_fails_the_call(build: Any, part: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        build(user(part))
    assert caught.value.kind == "unsupported_media"


@pytest.mark.parametrize("build", [openai_content, claude_blocks, gemini_parts])
def test_text_only_and_assistant_messages_are_unchanged(build: Any) -> None:
    plain = Message("user", "hello")
    reply = Message("assistant", "a logo", meta={"parts": [IMAGE]})  # a mock's reply parts never go back out
    assert build(plain) == ("hello" if build is openai_content else [])
    assert build(reply) == ("a logo" if build is openai_content else [])


def tool_message(*parts: dict[str, Any]) -> Message:
    return Message("tool", '{"title": "chart"}', tool_result=ToolResult("call_1", "render_chart",
                                                                         '{"title": "chart"}', parts=list(parts)))


FUNCTION_RESPONSE = {"functionResponse": {"name": "render_chart", "response": {"title": "chart"}}}
TOOL_WIRE: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    ("openai text only", openai_tool_content, [TEXT], '{"title": "chart"}'),
    ("openai image", openai_tool_content, [TEXT, IMAGE, WAV],
     [{"type": "text", "text": '{"title": "chart"}'}, {"type": "text", "text": "Describe:"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,UE5H"}}]),
    ("claude text only", claude_tool_content, [], '{"title": "chart"}'),
    ("claude image and pdf", claude_tool_content, [IMAGE, PDF, VIDEO],
     [{"type": "text", "text": '{"title": "chart"}'},
      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "UE5H"}},
      {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "UERG"}}]),
    ("claude image URL", claude_tool_content, [IMAGE_URL],
     [{"type": "text", "text": '{"title": "chart"}'},
      {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}]),
]


@pytest.mark.parametrize(("build", "parts", "wire"), [(b, p, w) for _, b, p, w in TOOL_WIRE],
                         ids=[i for i, *_ in TOOL_WIRE])
def test_tool_result_media_as_upstream_sends_it(build: Any, parts: list[dict[str, Any]], wire: Any) -> None:
    assert build(tool_message(*parts)) == wire


@pytest.mark.parametrize(("parts", "inline"), [
    ([], None), ([TEXT], None), ([TEXT, WAV, IMAGE], {"mimeType": "audio/wav", "data": "V0FW"}),
    ([IMAGE_URL, IMAGE], {"mimeType": "image/png", "data": "UE5H"}),
])
def test_gemini_function_response_carries_the_first_media(parts: list[dict[str, Any]], inline: Any) -> None:
    built = gemini_tool_response(tool_message(*parts), FUNCTION_RESPONSE)
    want = {"title": "chart", **({"inlineData": inline} if inline else {})}
    assert built == {"functionResponse": {"name": "render_chart", "response": want}}
