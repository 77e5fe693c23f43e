"""Media parts: what the loader accepts and refuses (table), the run-time URL fetch against a real loopback server,
and MediaOutputs as upstream's CollectMediaOutputs shapes them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from arena_operator.engine import egress, media
from arena_operator.engine.bundle import load_bundle
from arena_operator.engine.errors import BundleInvalid
from arena_operator.engine.types import Message
from arena_operator.results.media_rows import media_stats
from arena_operator.results.report_format import filesize

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")
PNG_B64 = base64.b64encode(PNG).decode()
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "media-parts"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "media").mkdir(parents=True)
    (bundle / "media" / "dot.png").write_bytes(PNG)
    (bundle / "media" / "clip.wav").write_bytes(b"RIFF0000WAVE")
    (bundle / "media" / "notes.bin").write_bytes(b"\x00\x01")
    (tmp_path / "secret.png").write_bytes(PNG)
    (bundle / "media" / "out.png").symlink_to(tmp_path / "secret.png")
    return bundle


ACCEPTED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("text", {"type": "text", "text": "hi"}, {"type": "text", "text": "hi"}),
    ("image file, MIME from the extension", {"type": "image", "media": {"file_path": "media/dot.png"}},
     {"type": "image", "media": {"file_path": "media/dot.png", "mime_type": "image/png", "data": PNG_B64,
                                 "size_bytes": len(PNG)}}),
    ("explicit MIME and metadata kept", {"type": "audio", "media": {"file_path": "media/clip.wav",
                                                                    "mime_type": "audio/wav", "duration": 3}},
     {"type": "audio", "media": {"file_path": "media/clip.wav", "mime_type": "audio/wav", "duration": 3,
                                 "data": base64.b64encode(b"RIFF0000WAVE").decode(), "size_bytes": 12}}),
    ("data: URI", {"type": "image", "media": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "high"}},
     {"type": "image", "media": {"mime_type": "image/png", "detail": "high", "data": PNG_B64,
                                 "size_bytes": len(PNG)}}),
    ("inline image data defaults to JPEG", {"type": "image", "media": {"data": PNG_B64}},
     {"type": "image", "media": {"mime_type": "image/jpeg", "data": PNG_B64, "size_bytes": len(PNG)}}),
    ("http URL kept for the run", {"type": "image", "media": {"url": "https://example.test/a.png"}},
     {"type": "image", "media": {"url": "https://example.test/a.png", "mime_type": ""}}),
    ("unknown extension", {"type": "document", "media": {"file_path": "media/notes.bin"}},
     {"type": "document", "media": {"file_path": "media/notes.bin", "mime_type": "application/octet-stream",
                                    "data": "AAE=", "size_bytes": 2}}),
]


@pytest.mark.parametrize(("raw", "want"), [(r, w) for _, r, w in ACCEPTED], ids=[i for i, _, _ in ACCEPTED])
def test_accepted_parts_resolve(root: Path, raw: dict[str, Any], want: dict[str, Any]) -> None:
    parts, problems = media.resolve_parts([raw], root)
    assert problems == []
    assert parts == [want]


REFUSED: list[tuple[str, Any, list[str | int], str]] = [
    ("not a mapping", "image.png", [0], "must be a mapping"),
    ("unknown type", {"type": "hologram"}, [0, "type"], "unsupported content part type 'hologram'"),
    ("empty text", {"type": "text", "text": ""}, [0, "text"], "empty text content"),
    ("no media", {"type": "image"}, [0, "media"], "needs media:"),
    ("no source", {"type": "image", "media": {"mime_type": "image/png"}}, [0, "media"], "no URL, data, or file_path"),
    ("climbs out", {"type": "image", "media": {"file_path": "../secret.png"}}, [0, "media", "file_path"],
     "must be a path inside the bundle"),
    ("absolute", {"type": "image", "media": {"file_path": "/etc/passwd"}}, [0, "media", "file_path"],
     "must be a path inside the bundle"),
    ("symlink out", {"type": "image", "media": {"file_path": "media/out.png"}}, [0, "media", "file_path"],
     "leads outside the bundle"),
    ("missing file", {"type": "image", "media": {"file_path": "media/nope.png"}}, [0, "media", "file_path"],
     "file not found"),
    ("bad base64", {"type": "image", "media": {"data": "%%%"}}, [0, "media", "data"], "not valid base64"),
    ("audio data without MIME", {"type": "audio", "media": {"data": "AAE="}}, [0, "media", "mime_type"],
     "mime_type is missing"),
    ("MIME of another kind", {"type": "image", "media": {"file_path": "media/clip.wav"}}, [0, "media", "mime_type"],
     "cannot have mime_type 'audio/wav'"),
    ("data: URI not base64", {"type": "image", "media": {"url": "data:image/png,abc"}}, [0, "media", "url"],
     "data:<mime>;base64"),
    ("unsupported scheme", {"type": "image", "media": {"url": "file:///etc/passwd"}}, [0, "media", "url"],
     "unsupported URL scheme"),
    ("storage reference", {"type": "image", "media": {"storage_reference": "ref-1"}},
     [0, "media", "storage_reference"], "media store"),
]


@pytest.mark.parametrize(("raw", "where", "message"), [(r, w, m) for _, r, w, m in REFUSED],
                         ids=[i for i, _, _, _ in REFUSED])
def test_refused_parts_name_the_field(root: Path, raw: Any, where: list[str | int], message: str) -> None:
    parts, problems = media.resolve_parts([{"type": "text", "text": "ok"}, raw], root)
    assert parts == [{"type": "text", "text": "ok"}]
    assert len(problems) == 1
    path, text = problems[0]
    assert path == [1, *where[1:]] and message in text


def test_size_limit_applies_to_files_and_inline_data(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "MAX_MEDIA_BYTES", len(PNG) - 1)
    _, problems = media.resolve_parts([{"type": "image", "media": {"file_path": "media/dot.png"}}], root)
    assert "a media file may be at most" in problems[0][1]
    big = base64.b64encode(b"x" * (len(PNG) * 3)).decode()
    _, problems = media.resolve_parts([{"type": "image", "media": {"data": big}}], root)
    assert "exceeds" in problems[0][1]


def test_a_bad_part_is_a_load_error_at_its_line(tmp_path: Path) -> None:
    import shutil
    bundle = tmp_path / "b"
    shutil.copytree(FIXTURE, bundle)
    scenario = bundle / "scenarios" / "media-inputs.scenario.yaml"
    scenario.write_text(scenario.read_text().replace("file_path: media/square.png", "file_path: ../square.png"))
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(bundle)
    problem = next(p for p in caught.value.problems if "square.png" in p.message)
    assert problem.file == "scenarios/media-inputs.scenario.yaml"
    assert problem.line == scenario.read_text().splitlines().index("            file_path: ../square.png") + 1
    assert problem.field == "turns[0].parts[1].media.file_path"


def test_mock_parts_of_a_tool_resolve_at_load() -> None:
    bundle = load_bundle(FIXTURE)
    parts = bundle.tools["render_chart"].mock_parts
    assert [p["type"] for p in parts] == ["text", "image"]
    assert parts[1]["media"]["data"] == base64.b64encode((FIXTURE / "media" / "chart.png").read_bytes()).decode()
    assert parts[1]["media"]["width"] == 8 and parts[1]["media"]["caption"] == "Signups chart"


async def test_urls_are_fetched_when_the_turn_runs() -> None:
    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def missing(_: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/dot", image)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        parts = [{"type": "text", "text": "look"}, {"type": "image", "media": {"url": f"http://127.0.0.1:{port}/dot",
                                                                                "mime_type": ""}}]
        fetched = await media.fetch_urls(parts)
        assert fetched[1]["media"] == {"url": f"http://127.0.0.1:{port}/dot", "mime_type": "image/png",
                                       "data": PNG_B64, "size_bytes": len(PNG)}
        assert "data" not in parts[1]["media"]  # the bundle's own parts are shared by runs: untouched
        with pytest.raises(media.MediaFetchError, match="HTTP 404") as caught:
            await media.fetch_urls([{"type": "image", "media": {"url": f"http://127.0.0.1:{port}/missing"}}])
        assert caught.value.kind == "media"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a.png", "http://169.254.169.254/latest/meta-data"])
async def test_media_urls_follow_the_clusters_egress_policy(url: str) -> None:
    egress.confine_process(egress.EgressPolicy.cluster({}))
    try:
        with pytest.raises(media.MediaFetchError, match="refused") as caught:
            await media.fetch_urls([{"type": "image", "media": {"url": url, "mime_type": "image/png"}}])
    finally:
        egress.confine_process(None)
    assert caught.value.kind == "media" and url in str(caught.value)


def test_media_outputs_and_stats_as_upstream() -> None:
    messages = [
        Message("user", "hi", meta={"parts": [{"type": "image", "media": {"mime_type": "image/png", "data": "AA=="}}]}),
        Message("assistant", "here", meta={"parts": [
            {"type": "text", "text": "here"},
            {"type": "image", "media": {"mime_type": "image/png", "data": PNG_B64, "width": 1, "height": 1}},
            {"type": "audio", "media": {"mime_type": "audio/mpeg", "url": "mock://a.mp3", "duration": 2}}]}),
        Message("tool", "{}", meta={"parts": [{"type": "video", "media": {"mime_type": "video/mp4",
                                                                          "data": "A" * (media.THUMBNAIL_MAX_B64 + 4),
                                                                          "file_path": "v.mp4"}}]}),
    ]
    outputs = media.media_outputs(messages)
    assert outputs == [
        {"type": "image", "mime_type": "image/png", "size_bytes": len(PNG_B64) * 3 // 4, "width": 1, "height": 1,
         "thumbnail": PNG_B64, "message_index": 1, "part_index": 1},
        {"type": "audio", "mime_type": "audio/mpeg", "size_bytes": 0, "duration": 2, "message_index": 1,
         "part_index": 2},
        {"type": "video", "mime_type": "video/mp4", "size_bytes": (media.THUMBNAIL_MAX_B64 + 4) * 3 // 4,
         "file_path": "v.mp4", "message_index": 2, "part_index": 0},
    ]
    stats = media_stats(outputs)
    assert stats == {"total": 3, "image_count": 1, "audio_count": 1, "video_count": 1,
                     "total_size_bytes": sum(o["size_bytes"] for o in outputs),
                     "by_type": {"image": 1, "audio": 1, "video": 1}}


@pytest.mark.parametrize(("size", "shown"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.50 KB"),
                                             (5 * 1024 * 1024, "5.00 MB"), (3 << 30, "3.00 GB"), ("x", "0 B")])
def test_filesize_as_upstream(size: Any, shown: str) -> None:
    assert filesize(size) == shown
