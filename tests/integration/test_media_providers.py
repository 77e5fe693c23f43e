"""Media parts end to end: `arena run` of a bundle whose turns carry an image file, an image URL (fetched from a
loopback server), a WAV file and a PDF, against one real local server speaking the OpenAI, Anthropic and Gemini
wire formats. Each request must carry the media in that API's own shape; media an API does not take must fail
the run with kind unsupported_media, as upstream, not vanish from the request."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from arena_operator import cli
from tests.fakes.llm_servers import FakeCall, FakeLLMServer, Recorded, Reply

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "media-parts"
KEY_ENV = "ARENA_TEST_MEDIA_KEY"
PROVIDERS = {"openai": "gpt-4o-audio-test", "claude": "claude-test", "gemini": "gemini-test"}
TEXT = {"wire-image": "Describe the images.", "wire-audio": "Describe the audio.", "wire-pdf": "Describe the PDF."}


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def scenario(name: str, parts: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "promptkit.altairalabs.ai/v1alpha1", "kind": "Scenario",
                       "metadata": {"name": name},
                       "spec": {"id": name, "task_type": "media", "description": name, "turns": [
                           {"role": "user", "parts": [{"type": "text", "text": TEXT[name]}, *parts],
                            "assertions": [{"type": "content_includes",
                                            "params": {"patterns": [f"echo: {TEXT[name]}"]}}]}]}})


def wire_bundle(root: Path, llm: FakeLLMServer, image_url: str) -> Path:
    bundle = root / "bundle"
    shutil.copytree(FIXTURE, bundle)
    providers = []
    for kind, model in PROVIDERS.items():
        spec = {"type": kind, "model": model, "credential": {"api_key_env": KEY_ENV}, "max_retries": 0,
                "base_url": llm.openai_url if kind == "openai" else llm.url}
        (bundle / "providers" / f"{kind}.yaml").write_text(json.dumps(
            {"apiVersion": "promptkit.altairalabs.ai/v1alpha1", "kind": "Provider", "metadata": {"name": kind},
             "spec": spec}))
        providers.append({"file": f"providers/{kind}.yaml"})
    (bundle / "scenarios" / "wire-image.yaml").write_text(scenario("wire-image", [
        {"type": "image", "media": {"file_path": "media/square.png", "detail": "low"}},
        {"type": "image", "media": {"url": image_url, "mime_type": "image/png"}}]))
    (bundle / "scenarios" / "wire-audio.yaml").write_text(scenario("wire-audio", [
        {"type": "audio", "media": {"file_path": "media/beep.wav", "mime_type": "audio/wav"}}]))
    (bundle / "scenarios" / "wire-pdf.yaml").write_text(scenario("wire-pdf", [
        {"type": "document", "media": {"file_path": "media/brief.pdf"}}]))
    config = {"apiVersion": "promptkit.altairalabs.ai/v1alpha1", "kind": "Arena", "metadata": {"name": "wire"},
              "spec": {"prompt_configs": [{"id": "media-analyst", "file": "prompts/media-analyst.prompt.yaml"}],
                       "providers": providers, "tools": [{"file": "tools/render-chart.tool.yaml"}],
                       "scenarios": [*({"file": f"scenarios/{n}.yaml"} for n in TEXT),
                                     {"file": "scenarios/media-tool.scenario.yaml"}],
                       "defaults": {"temperature": 0, "max_tokens": 50, "concurrency": 1}}}
    (bundle / "config.arena.yaml").write_text(json.dumps(config))
    return bundle


@pytest.fixture
async def chart_url() -> AsyncIterator[str]:
    """A loopback server with one image: a turn's `url` part, fetched when the turn runs."""
    async def chart(_: web.Request) -> web.Response:
        return web.Response(body=(FIXTURE / "media" / "chart.png").read_bytes(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/chart.png", chart)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/chart.png"  # type: ignore[union-attr]
    await runner.cleanup()


def request_for(llm: FakeLLMServer, api: str, text: str) -> dict[str, Any]:
    found = [r for r in llm.requests if r.api == api and text in json.dumps(r.body)]
    assert len(found) == 1, f"{api}: {len(found)} requests with {text!r}"
    return found[0].body


def user_content(api: str, body: dict[str, Any]) -> Any:
    if api == "gemini":
        return [c for c in body["contents"] if c["role"] == "user"][-1]["parts"]
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


async def test_media_reaches_each_provider_in_its_wire_format(tmp_path: Path, chart_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-media-test")
    square, chart = b64(FIXTURE / "media" / "square.png"), b64(FIXTURE / "media" / "chart.png")
    wav, pdf = b64(FIXTURE / "media" / "beep.wav"), b64(FIXTURE / "media" / "brief.pdf")
    async with FakeLLMServer() as llm:
        bundle = wire_bundle(tmp_path, llm, chart_url)
        out = tmp_path / "out"
        code = await asyncio.to_thread(cli.main, ["run", str(bundle), "--out", str(out), "--formats", "json", "-q",
                                                  "--no-fail-fast", "--ci"])
        runs = {(r["ScenarioID"], r["ProviderID"]): r for r in
                (json.loads(line) for line in (out / "results.jsonl").read_text().splitlines())}

        assert user_content("openai", request_for(llm, "openai", TEXT["wire-image"])) == [
            {"type": "text", "text": TEXT["wire-image"]},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{square}", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{chart}"}}]
        assert user_content("anthropic", request_for(llm, "anthropic", TEXT["wire-image"])) == [
            {"type": "text", "text": TEXT["wire-image"]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": square}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": chart}}]
        assert user_content("gemini", request_for(llm, "gemini", TEXT["wire-image"])) == [
            {"text": TEXT["wire-image"]}, {"inlineData": {"mimeType": "image/png", "data": square}},
            {"inlineData": {"mimeType": "image/png", "data": chart}}]

        assert user_content("openai", request_for(llm, "openai", TEXT["wire-audio"]))[1] == {
            "type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}
        assert user_content("gemini", request_for(llm, "gemini", TEXT["wire-audio"]))[1] == {
            "inlineData": {"mimeType": "audio/wav", "data": wav}}
        assert user_content("anthropic", request_for(llm, "anthropic", TEXT["wire-pdf"]))[1] == {
            "type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}
        assert user_content("gemini", request_for(llm, "gemini", TEXT["wire-pdf"]))[1] == {
            "inlineData": {"mimeType": "application/pdf", "data": pdf}}
        refused = [r for r in llm.requests if (r.api == "anthropic" and TEXT["wire-audio"] in json.dumps(r.body))
                   or (r.api == "openai" and TEXT["wire-pdf"] in json.dumps(r.body))]
        assert refused == []  # never sent without the media

    assert code == 1
    outcome = {key: (r["Status"], r["ErrorKind"]) for key, r in runs.items() if key[0] in TEXT}
    assert outcome == {
        ("wire-image", "openai"): ("passed", ""), ("wire-image", "claude"): ("passed", ""),
        ("wire-image", "gemini"): ("passed", ""), ("wire-audio", "openai"): ("passed", ""),
        ("wire-audio", "gemini"): ("passed", ""), ("wire-audio", "claude"): ("error", "unsupported_media"),
        ("wire-pdf", "claude"): ("passed", ""), ("wire-pdf", "gemini"): ("passed", ""),
        ("wire-pdf", "openai"): ("error", "unsupported_media")}
    assert "claude does not support audio content" in runs[("wire-audio", "claude")]["Error"]
    # the turn's parts are in the results as sent, the fetched URL's bytes included
    user = runs[("wire-image", "gemini")]["Messages"][0]
    assert [p["media"].get("data") for p in user["meta"]["parts"][1:]] == [square, chart]
    assert user["meta"]["parts"][2]["media"]["url"] == chart_url


async def test_an_unreachable_media_url_errors_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-media-test")
    async with FakeLLMServer() as llm:
        bundle = wire_bundle(tmp_path, llm, "http://127.0.0.1:9/gone.png")  # discard port: nothing listens
        out = tmp_path / "out"
        await asyncio.to_thread(cli.main, ["run", str(bundle), "--out", str(out), "--formats", "json", "-q",
                                           "--scenario", "wire-image", "--provider", "gemini"])
        assert not [r for r in llm.requests if isinstance(r, Recorded) and TEXT["wire-image"] in json.dumps(r.body)]
    run = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert (run["Status"], run["ErrorKind"]) == ("error", "media")
    assert "http://127.0.0.1:9/gone.png: connection failed" in run["Error"]


def tool_result_of(api: str, body: dict[str, Any]) -> Any:
    """What the second request carries back for the tool call."""
    if api == "openai":
        return next(m["content"] for m in body["messages"] if m["role"] == "tool")
    if api == "anthropic":
        return next(b["content"] for m in body["messages"] if m["role"] == "user" and isinstance(m["content"], list)
                    for b in m["content"] if b.get("type") == "tool_result")
    return next(p["functionResponse"]["response"] for c in body["contents"] for p in c["parts"]
                if "functionResponse" in p)


@pytest.mark.parametrize(("provider", "api"), [("openai", "openai"), ("claude", "anthropic"), ("gemini", "gemini")])
async def test_a_tool_results_media_goes_back_to_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           provider: str, api: str) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-media-test")
    chart = b64(FIXTURE / "media" / "chart.png")
    result = '{"title": "Signups per week"}'
    async with FakeLLMServer() as llm:
        llm.script(Reply(tool_calls=[FakeCall("render_chart", {"metric": "signups"})]), Reply("Signups grew."))
        bundle = wire_bundle(tmp_path, llm, "http://127.0.0.1:9/unused.png")
        out = tmp_path / "out"
        await asyncio.to_thread(cli.main, ["run", str(bundle), "--out", str(out), "--formats", "json", "-q",
                                           "--scenario", "media-tool", "--provider", provider])
        assert len(llm.requests) == 2
        sent = tool_result_of(api, llm.requests[1].body)
    expected: dict[str, Any] = {
        "openai": [{"type": "text", "text": result}, {"type": "text", "text": "Signups per week, 6 points"},
                   {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{chart}"}}],
        "anthropic": [{"type": "text", "text": result}, {"type": "text", "text": "Signups per week, 6 points"},
                      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": chart}}],
        "gemini": {"title": "Signups per week", "inlineData": {"mimeType": "image/png", "data": chart}},
    }
    assert sent == expected[api]
    run = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert run["Status"] == "passed"  # tools_called, tool_result_has_media, tool_result_media_type
    assert [(o["type"], o["mime_type"], o["file_path"]) for o in run["MediaOutputs"]] == [
        ("image", "image/png", "media/chart.png")]
