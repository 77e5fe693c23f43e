"""report.html in a real headless Chromium (one browser for the module): it opens offline with no console error
and no request but its own file; typing in the search box, ticking status boxes, choosing a provider and clicking
a matrix cell or a baseline change narrow what is visible; the providers' replies stand side by side; the system
prompt, prompt version and parameters are shown and the not-applicable values are not; a report of 100,000 runs
opens in seconds. A screenshot of the quickstart's report is kept in .artifacts/report.png (a CI artifact)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arena_operator.engine.plan import RunFilters
from arena_operator.local.run import LocalRunOptions, run_local
from arena_operator.results.aggregate import HTML_DETAIL_PER_CELL
from arena_operator.results.report import write_html
from arena_operator.results.selection import HTML_FAILURE_LIMIT, DetailSelection
from arena_operator.results.summary import Summary

from .chromium import Chromium, Page, executable

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
SCREENSHOT = REPO / ".artifacts" / "report.png"
RIVAL = "support-rival"

pytestmark = pytest.mark.skipif(executable() is None, reason="chromium is not installed (scripts/setup.sh --test)")


def rival_bundle(root: Path, greeting: str) -> Path:
    """The quickstart with a second assistant provider, `support-rival`, whose mock gives a ticket number when
    escalating (so it passes where support-assistant fails) and answers the greeting with `greeting`."""
    bundle = root / "bundle"
    shutil.copytree(QUICKSTART, bundle)
    provider = (bundle / "providers" / "assistant.yaml").read_text().replace("support-assistant", RIVAL)
    (bundle / "providers" / "rival.yaml").write_text(provider.replace("mocks/assistant.yaml", "mocks/rival.yaml"))
    mocks = (bundle / "mocks" / "assistant.yaml").read_text()
    mocks = mocks.replace("A member of our team will call you back within the hour.",
                          "Your ticket number AB-1234 is open; a member of our team will call you back.")
    mocks = mocks.replace("Hello! I'm glad you reached out. I can help with your account - what would you like to do?",
                          greeting)
    (bundle / "mocks" / "rival.yaml").write_text(mocks)
    config = bundle / "config.arena.yaml"
    entry = "    - file: providers/assistant.yaml\n      group: default\n"
    config.write_text(config.read_text().replace(entry, entry + entry.replace("assistant.yaml", "rival.yaml")))
    return bundle


def run(bundle: Path, out: Path, **options: Any) -> Path:
    asyncio.run(run_local(LocalRunOptions(bundle=bundle, out_dir=out, **options)))
    return out / "report.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    page = chromium.page()
    yield page
    page.close()
    chromium.close()


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two providers, two trials, compared with a baseline in which the rival's greeting still passed."""
    root = tmp_path_factory.mktemp("compared")
    before = rival_bundle(root / "before", "Hi! Happy to help with your account.")
    run(before, root / "old", filters=RunFilters(trials=2))
    after = rival_bundle(root / "after", "Hey. What now?")
    return run(after, root / "new", filters=RunFilters(trials=2), baseline=str(root / "old"))


def opened(page: Page, report: Path) -> Page:
    page.open(report.resolve().as_uri())
    assert page.problems() == []
    assert page.requests() == [report.resolve().as_uri()]  # nothing else: no CDN, no font, no beacon
    return page


def visible(page: Page, selector: str, attribute: str = "") -> list[str]:
    """The elements matching `selector` that are rendered (not hidden by a filter), by `attribute` or by text."""
    return page.js(f"""[...document.querySelectorAll({json.dumps(selector)})]
        .filter(el => el.getClientRects().length > 0)
        .map(el => {json.dumps(attribute)} ? el.getAttribute({json.dumps(attribute)}) : el.textContent.trim())""")


def runs_visible(page: Page) -> list[tuple[str, str, str]]:
    return [tuple(item) for item in page.js("""[...document.querySelectorAll("details.run")]
        .filter(el => el.getClientRects().length > 0)
        .map(el => [el.dataset.scenario, el.dataset.provider, el.dataset.status])""")]


def test_quickstart_report_opens_offline_and_is_screenshotted(browser: Page, tmp_path: Path) -> None:
    report = run(QUICKSTART, tmp_path / "out")
    page = opened(browser, report)
    assert page.js("document.getElementById('filters').hidden") is False  # the script ran
    assert page.js("document.getElementById('filter-count').value") == "all 6 runs in this page"
    text = page.js("document.querySelector('main').textContent.replace(/\\s+/g, ' ')")
    assert "escalations must give a ticket number" in text
    # mock replies (no simulated latency), nothing streamed: neither a reply latency nor a TTFT applies
    assert "latency 0.0 ms" not in text and "TTFT" not in text
    assert page.js("[...document.querySelectorAll('.msg-head')].some(h => h.textContent.includes('latency'))") is False
    # the failures come first: the failure table, then escalation's section before every passing scenario
    assert visible(page, "#failures tbody tr td.count") == ["1"]
    assert visible(page, "section.scenario", "data-scenario")[0] == "escalation"
    # each run: its system prompt (rendered, variables filled in), prompt version and provider parameters
    page.click("#scenario-escalation details.prompt > summary")
    prompt = visible(page, "#scenario-escalation details.prompt pre")[0]
    assert prompt.startswith("You are the customer support assistant of Acme Widgets.") and "{{" not in prompt
    facts = dict(page.js("""[...document.querySelectorAll('#scenario-escalation details.run dl.facts dt')]
        .map(dt => [dt.textContent, dt.nextElementSibling.textContent])"""))
    assert facts["Prompt pack"] == "quickstart · prompt version 1.0.0"
    assert (facts["Model"], facts["Temperature"], facts["Max tokens"]) == ("gpt-4o-mini", "0.2", "400")
    assert page.js("document.querySelectorAll('svg.heatmap a rect').length") == 6
    page.screenshot(SCREENSHOT)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.stat().st_size > 20_000


def test_search_and_status_filters_change_what_is_visible(browser: Page, compared: Path) -> None:
    page = opened(browser, compared)
    everything = runs_visible(page)
    assert len(everything) == 24 and {p for _, p, _ in everything} == {"support-assistant", RIVAL}
    page.type("input[name=q]", "ticket number")
    assert page.until("document.getElementById('filter-count').value.startsWith('4 of 24')")
    # escalation's runs mention it (support-assistant's failed assertion and the rival's reply) — nothing else
    assert {s for s, _, _ in runs_visible(page)} == {"escalation"}
    assert visible(page, "section.scenario", "data-scenario") == ["escalation"]
    assert len(visible(page, "#failures tbody tr")) == 1
    page.click("button[name=clear]")
    assert len(runs_visible(page)) == 24 and page.js("document.querySelector('input[name=q]').value") == ""
    page.click("input[name=status][value=passed]")
    shown = runs_visible(page)
    assert shown and {status for _, _, status in shown} == {"failed"}
    assert {(s, p) for s, p, _ in shown} == {("escalation", "support-assistant"), ("greeting", RIVAL)}
    assert "escalation" in visible(page, "section.scenario", "data-scenario")
    assert "refund-policy" not in visible(page, "section.scenario", "data-scenario")
    assert page.problems() == []


def test_provider_filter_and_side_by_side(browser: Page, compared: Path) -> None:
    page = opened(browser, compared)
    greeting = "#scenario-greeting table.compare"
    assert visible(page, f"{greeting} thead th[data-provider]", "data-provider") == ["support-assistant", RIVAL]
    replies = visible(page, f"{greeting} tbody tr:first-child td")
    assert "I can help with your account" in replies[0] and "Hey. What now?" in replies[1]
    assert "✗ contains" in replies[1] and "✗" not in replies[0]
    assert "Hi there, I need some help with my account." in visible(page, f"{greeting} tbody th")[0]  # once
    page.type("select[name=provider]", "support-r")  # the keyboard's type-ahead picks the option
    assert page.js("document.querySelector('select[name=provider]').value") == RIVAL
    assert {p for _, p, _ in runs_visible(page)} == {RIVAL}
    assert visible(page, f"{greeting} thead th[data-provider]", "data-provider") == [RIVAL]
    assert all(RIVAL in row or "×" not in row for row in visible(page, "#failures tbody tr"))


def test_matrix_cell_and_baseline_changes_navigate_to_the_runs(browser: Page, compared: Path) -> None:
    page = opened(browser, compared)
    page.click(f'table.matrix td a[data-scenario="order-status"][data-provider="{RIVAL}"]')
    assert set(runs_visible(page)) == {("order-status", RIVAL, "passed")}
    assert page.js("location.hash") == "#scenario-order-status"
    page.click('svg.heatmap a[data-scenario="escalation"][data-provider="support-assistant"] rect')
    assert runs_visible(page) == [("escalation", "support-assistant", "failed")] * 2
    assert page.js("location.hash") == "#scenario-escalation"
    # the comparison: greeting × rival regressed; its newly failing runs are linked and can be filtered to
    assert "Changes since" in visible(page, "#changes-h")[0]
    assert len(visible(page, "table.changes tbody tr")) == 1
    cells = page.js("[...document.querySelectorAll('table.changes tbody td')].map(td => td.textContent.trim())")
    assert cells[:4] == ["greeting", RIVAL, "100.0% → 0.0%", "-100 pts"]
    page.click("table.changes button[data-change]")
    assert page.js("document.querySelector('input[name=changed]').checked") is True
    assert runs_visible(page) == [("greeting", RIVAL, "failed")] * 2
    assert visible(page, "details.run .badge.changed") == ["newly failing"] * 2
    page.click("button[name=clear]")
    page.click("input[name=status][value=failed]")  # hides the failed runs the next link points at …
    target = page.js("document.querySelector('table.changes td a[href^=\"#run-\"]').getAttribute('href')")
    page.click("table.changes td a[href^='#run-']")  # … and following it shows the run, opened
    assert page.js(f"document.querySelector({json.dumps(target)}).getClientRects().length > 0") is True
    assert page.js(f"document.querySelector({json.dumps(target)}).open") is True
    heat = page.js("[...document.querySelectorAll('svg.heatmap a[data-provider] text.v')].map(t => t.textContent)")
    assert len(heat) == 12 and heat.count("0%") == 2 and heat.count("100%") == 10
    assert page.problems() == []


def large_report(out: Path, runs: int) -> Path:
    """The report of `runs` runs as the aggregation writes it (the summary of every run, a DetailSelection offered
    every run in report order) from generated runs: 500 scenarios × 4 providers, one run in eight failing (for
    two reasons), each with a user turn and a reply."""
    trials = runs // 2000

    def cell(index: int) -> tuple[str, str]:
        return f"scenario-{index // (4 * trials):03d}", f"provider-{index // trials % 4}"

    def generated() -> Iterator[dict[str, Any]]:
        for index in range(runs):
            (scenario, provider), failed = cell(index), index % 8 == 0
            yield {"RunID": f"r{index:06d}", "ScenarioID": scenario, "ProviderID": provider, "Region": "default",
                   "Trial": index % trials, "Status": "failed" if failed else "passed", "Duration": 200 + index % 700,
                   "Params": {"model": "m", "system_prompt": "You are terse.", "prompt_version": "2"},
                   "Cost": {"input_tokens": 50, "output_tokens": 20, "total_cost_usd": 0.0001},
                   "Messages": [{"role": "user", "content": f"Question {index} about {scenario}"},
                                {"role": "assistant", "content": f"Answer {index}.", "latency_ms": 180.0,
                                 "meta": {"assertions": {"results": [{
                                     "type": "contains", "passed": not failed,
                                     "message": f"reply mentions {'refunds' if index % 3 else 'returns'}"}]}}}]}

    summary = Summary()
    selection = DetailSelection(HTML_DETAIL_PER_CELL, HTML_FAILURE_LIMIT,
                                Counter(cell(index) for index in range(0, runs, 8)))
    for item in generated():
        summary.add(item)
        selection.offer(item)
    report = out / "report.html"
    with report.open("w", encoding="utf-8") as handle:
        write_html(selection.runs, summary.to_dict(), handle, meta={"runs_shown": selection.note("units/")})
    return report


def test_a_report_of_100k_runs_opens_in_seconds(browser: Page, tmp_path: Path) -> None:
    report = large_report(tmp_path, 100_000)
    size = report.stat().st_size
    assert size < 12_000_000, size
    seconds = browser.open(report.resolve().as_uri())
    assert browser.problems() == []
    assert seconds < 10, seconds
    assert browser.js("document.querySelectorAll('details.run').length") == 2_500
    assert "showing 2,500 of 100,000 runs" in browser.js("document.querySelector('p.note').textContent")
    assert visible(browser, "#failures tbody td.count") == ["8,333", "4,167"]  # counted over all 100,000 runs
    started = time.monotonic()
    browser.type("input[name=q]", "returns")
    assert browser.until("document.getElementById('filter-count').value.includes('of 2500 runs')")
    print(f"report of 100,000 runs: {size:,} bytes, opened in {seconds:.2f} s, "
          f"searched in {time.monotonic() - started:.2f} s")
    assert time.monotonic() - started < 5
    assert visible(browser, "#failures tbody td.count") == ["4,167"]
