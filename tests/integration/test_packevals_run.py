"""Pack evals and media through `arena run` and its reports: eval_results on every run, non-gating (the run's
status is its assertions'), `--skip-pack-evals` / `--eval-types`, report.md's and junit.xml's pack eval sections,
and report.html opened in headless Chromium: the pack eval rows apart from the assertions and the media outputs'
thumbnails rendered under the page's CSP."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml

from arena_operator import cli

from .chromium import Chromium, Page, executable

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "tests" / "fixtures" / "bundles"


def arena_run(out: Path, bundle: str, *flags: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code = cli.main(["run", str(BUNDLES / bundle), "--out", str(out), "-q", "--ci", *flags])
    runs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return code, {r["ScenarioID"]: r for r in runs}


def evals_of(run: dict[str, Any]) -> list[tuple[str, int, bool]]:
    return [(e["eval_id"], e["turn_index"], e["passed"]) for e in run.get("eval_results", [])]


def test_pack_evals_observe_every_run_without_gating(tmp_path: Path) -> None:
    code, runs = arena_run(tmp_path / "out", "pack-evals", "--formats", "json,markdown,junit")
    assert code == 1  # the gated scenario's own assertion fails; nothing else does
    assert (runs["booking"]["Status"], runs["gated"]["Status"]) == ("passed", "failed")
    assert evals_of(runs["booking"]) == [
        ("polite", 0, True), ("every-sampled-turn", 0, True), ("only-with-tools", 0, True),
        ("polite", 1, False), ("every-sampled-turn", 1, True), ("only-with-tools", 1, True),
        ("short-session", 3, False)]
    polite = runs["booking"]["eval_results"][3]
    assert (polite["type"], polite["trigger"], polite["score"], polite["explanation"]) == (
        "content_includes", "every_turn", 0.0, "missing patterns: thank")
    assert polite["session_id"] == runs["booking"]["RunID"]
    assert runs["booking"]["eval_results"][2]["skip_reason"] == "no tool calls in turn"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| polite | pack_eval:content_includes | 3 | 2 | 1 | 0 |" in markdown
    assert "| short-session | pack_eval:max_length | 2 | 0 | 2 | 0 |" in markdown
    junit = tmp_path / "out" / "junit.xml"
    xmlschema.XMLSchema(str(REPO / "tests/fixtures/junit.xsd")).validate(str(junit))
    text = junit.read_text()
    assert "booking × mock-concierge trial 0: pack_eval:content_includes polite: failed: missing patterns: thank" \
        in text
    assert 'failures="1"' in text.split("\n")[1]  # the gated run only: pack evals are not failures


@pytest.mark.parametrize(("flags", "kept"), [
    (["--skip-pack-evals"], set()),
    (["--skip-evals"], set()),
    (["--eval-types", "max_length"], {"every-sampled-turn", "short-session"}),
    (["--eval-types", "content_includes", "--eval-types", "min_length"], {"polite", "only-with-tools"}),
])
def test_flags_choose_which_pack_evals_run(tmp_path: Path, flags: list[str], kept: set[str]) -> None:
    code, runs = arena_run(tmp_path / "out", "pack-evals", "--formats", "json", *flags)
    assert code == 1
    assert {e["eval_id"] for r in runs.values() for e in r.get("eval_results", [])} == kept
    if not kept:  # upstream's omitempty: no key at all
        assert all("eval_results" not in r for r in runs.values())


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    if executable() is None:
        pytest.skip("chromium is not installed")
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    page = chromium.page()
    yield page
    page.close()
    chromium.close()


def test_report_shows_pack_evals_apart_and_media_thumbnails(browser: Page, tmp_path: Path) -> None:
    arena_run(tmp_path / "evals", "pack-evals", "--formats", "json,html")
    report = (tmp_path / "evals" / "report.html").resolve()
    browser.open(report.as_uri())
    assert browser.problems() == []
    tables = browser.js("""[...document.querySelectorAll('details.run[data-scenario="booking"] table.assertions')]
        .map(t => [t.caption.textContent, [...t.querySelectorAll('tbody tr')].map(r => [r.className,
                   r.querySelector('code').textContent])])""")
    captions = [caption for caption, _ in tables]
    assert captions[-1].startswith("Pack evals") and "Turn assertions" in captions
    rows = tables[-1][1]
    assert ["ko", "pack_eval:content_includes"] in rows and ["ok", "pack_eval:max_length"] in rows
    assert all(kind.startswith("pack_eval:") for _, kind in rows)
    assert not any(kind.startswith("pack_eval:") for _, table in tables[:-1] for _, kind in table)

    arena_run(tmp_path / "media", "media-parts", "--formats", "json,html")
    report = (tmp_path / "media" / "report.html").resolve()
    browser.open(report.as_uri())
    assert browser.problems() == []  # a CSP violation (an image not allowed) would be logged here
    thumbs = browser.js("""[...document.querySelectorAll('details.run[data-scenario="media-tool"] img.thumbnail')]
        .map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])""")
    assert thumbs == [[True, 8, 6, "image in message 2, part 1"]]
    heading = browser.js("""document.querySelector('details.run[data-scenario="media-replies"] .media-outputs h4')
        .textContent""")
    assert heading == "Media outputs (2: 1 image, 1 audio, 0 video · 0 B)"
    outputs = browser.js("""[...document.querySelectorAll(
        'details.run[data-scenario="media-replies"] li.media-output')]
        .map(li => li.textContent.replace(/\\s+/g, ' ').trim())""")
    assert outputs == ["image image/png · 0 B · 512×512 · message 1, part 1",
                       "audio audio/mpeg · 0 B · 2 s · message 1, part 2"]
    assert all(url == report.as_uri() or url.startswith("data:image/png;base64,") for url in browser.requests())


def test_eval_mode_runs_session_pack_evals_over_recordings(tmp_path: Path) -> None:
    """As upstream's eval executor: session-triggered pack evals on each recorded conversation, no turn ones."""
    bundle = tmp_path / "eval-replay"
    shutil.copytree(BUNDLES / "eval-replay", bundle)
    config = bundle / "config.arena.yaml"
    data = yaml.safe_load(config.read_text())
    data["spec"]["pack_evals"] = [
        {"id": "has-reply", "type": "min_length", "trigger": "on_session_complete", "params": {"min_characters": 1}},
        {"id": "per-turn", "type": "min_length", "trigger": "every_turn", "params": {"min_characters": 1}}]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    cli.main(["run", str(bundle), "--out", str(tmp_path / "out"), "-q", "--formats", "json"])
    runs = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assessed = [r for r in runs if not r["Error"]]
    assert assessed and all(r["ProviderID"] == "eval" for r in runs)
    assert all([(e["eval_id"], e["trigger"], e["session_id"]) for e in r["eval_results"]]
               == [("has-reply", "on_session_complete", r["RunID"])] for r in assessed)
