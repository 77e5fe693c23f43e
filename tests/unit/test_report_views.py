"""What report.html says beyond the conversations: failures grouped by reason over every run (also when only a
sample is shown), the providers side by side, prompts and parameters, no values that do not apply, the charts,
and the baseline's changes linked to the runs."""

from __future__ import annotations

import io
import re
from collections import Counter
from typing import Any

from arena_operator.results.report import write_html
from arena_operator.results.report_charts import HEATMAP_ROWS, heatmap, rate_colour
from arena_operator.results.selection import DetailSelection, FailureGroups, failure_reasons
from arena_operator.results.summary import Summary

from .test_report_html import assertion, block, parse, render, reply, run


def failing(scenario: str, provider: str, trial: int, message: str = "expected a ticket number") -> dict[str, Any]:
    return run(scenario, provider, "failed", trial=trial, messages=[
        {"role": "user", "content": "Call me"}, reply("Someone will call.", assertion("regex", False, message))])


def test_failure_reasons() -> None:
    errored = run("s", "p", "error", error="HTTP 401: invalid key " + "x" * 600)
    assert failure_reasons(errored) == [("error", "rate_limited", ("HTTP 401: invalid key " + "x" * 600)[:500])]
    twice = failing("s", "p", 0)
    twice["conversation_assertions"] = block(assertion("regex", False, "expected a ticket number"),
                                             assertion("llm_judge", False, "rude"))
    assert failure_reasons(twice) == [("failed", "regex", "expected a ticket number"), ("failed", "llm_judge", "rude")]
    assert failure_reasons(run("s", "p")) == []
    assert failure_reasons({"Status": "failed"}) == [("failed", "", "no failed assertion recorded")]


def test_identical_failures_are_counted_over_every_run_even_when_few_are_shown() -> None:
    runs = [failing(f"s{i % 3}", f"p{i % 2}", i) for i in range(30)]
    runs += [run("s0", "p0", "error", trial=99, error="connection refused")]
    selection = DetailSelection(per_cell=1, failure_limit=4, failures_per_cell=Counter(
        (r["ScenarioID"], r["ProviderID"]) for r in runs))
    for item in sorted(runs, key=lambda r: (r["ScenarioID"], r["ProviderID"], r["Trial"])):
        selection.offer(item)
    assert len(selection.runs) == 4
    groups = selection.runs.failures.ranked()
    assert [(g.reason, g.runs) for g in groups] == [(("failed", "regex", "expected a ticket number"), 30),
                                                    (("error", "rate_limited", "connection refused"), 1)]
    assert sum(groups[0].cells.values()) == 30 and len(groups[0].cells) == 6
    shown = {r["RunID"] for r in selection.runs}
    assert groups[0].example in shown  # "first such run shown" links to a run in the page

    html = render_selection(selection, runs)
    page = parse(html)
    counts = re.findall(r'<td class="n count">([^<]+)</td>', html)
    assert counts == ["30", "1"]
    assert ("a", {"href": f"#run-{groups[0].example}"}) in page.tags


def render_selection(selection: DetailSelection, every_run: list[dict[str, Any]]) -> str:
    """As the aggregation renders: the selection's runs, the summary of every run."""
    summary = Summary()
    for item in every_run:
        summary.add(item)
    out = io.StringIO()
    write_html(selection.runs, summary.to_dict(), out)
    return out.getvalue()


def test_failure_groups_are_bounded() -> None:
    groups = FailureGroups(limit=3)
    for index in range(10):
        groups.add(failing("s", "p", index, message=f"reason {index % 5}"))
    assert len(groups.groups) == 3 and groups.failed_runs == 10
    assert sum(g.runs for g in groups.groups.values()) == 6 and groups.other_runs == 4


def test_side_by_side_aligns_turns_across_providers() -> None:
    runs = [
        run("greeting", "alpha", messages=[{"role": "user", "content": "Hello"}, reply("Hi from alpha")]),
        run("greeting", "beta", "failed", messages=[
            {"role": "user", "content": "Hello"},
            reply("", tool_calls=[{"id": "c1", "name": "lookup", "args": {"id": 7}}]),
            {"role": "tool", "content": "{}", "tool_result": {"id": "c1", "name": "lookup", "content": "{}"}},
            reply("Go away", assertion("contains", False, "expected 'help'"))]),
        run("greeting", "beta", trial=1, messages=[{"role": "user", "content": "Hello"}, reply("Hi, trial 1")]),
        run("solo", "alpha"),
    ]
    html = render(runs)
    table = html.split('<table class="compare">', 1)[1].split("</table>", 1)[0]
    assert html.count('<table class="compare">') == 1  # one provider only in "solo": nothing to compare
    assert re.findall(r'<th scope="col" data-provider="([^"]+)"', table) == ["alpha", "beta"]
    assert "Hi from alpha" in table and "Go away" in table and "Hi, trial 1" not in table  # trial 0 of each
    assert "→ lookup {&#34;id&#34;: 7}" in table and "✗ contains: expected &#39;help&#39;" in table
    assert table.count(">Hello<") == 1  # the same user message is shown once, in the row header


def details(html: str, element_id: str) -> str:
    found = re.search(rf'<details class="run \w+" id="{element_id}".*?</details>', html, re.S)
    assert found, element_id
    return found.group(0)


def test_prompt_parameters_and_only_values_that_apply() -> None:
    prompt = "You are the assistant of Acme.\nBe brief."
    plain = run("greeting", "mock", messages=[{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": "Hello", "latency_ms": 0.007}])
    plain.update(TTFT=None, Cost={"input_tokens": 0, "output_tokens": 0, "total_cost_usd": 0.0},
                 Params={"model": "gpt-x", "temperature": None, "max_tokens": 300, "streaming": False, "trial": 0,
                         "system_prompt": prompt, "prompt_version": "1.2.0"})
    streamed = run("greeting", "real", trial=0, messages=[{"role": "user", "content": "Hi"},
                                                          reply("Hello", ttft_ms=95.0)])
    streamed["Params"] = {"model": "gpt-y", "streaming": True, "system_prompt": prompt, "prompt_version": "1.2.0"}
    html = render([plain, streamed])
    mock_run = details(html, "run-greeting-mock-0")
    assert "TTFT" not in mock_run and "latency" not in mock_run and "cost <b>" not in mock_run
    assert "tokens <b>" not in mock_run and "trial <b>" not in mock_run  # one run per cell: no trial number
    assert "<dt>Model</dt><dd class=\"mono\">gpt-x</dd><dt>Max tokens</dt><dd class=\"mono\">300</dd>" in mock_run
    assert "Temperature" not in mock_run and "Streaming" not in mock_run
    real_run = details(html, "run-greeting-real-0")
    assert "TTFT <b>95.0 ms</b>" in real_run and "latency <b>700 ms</b>" in real_run
    assert '<dt>Streaming</dt><dd class="mono">on</dd>' in real_run
    # the system prompt is the same for every run of the scenario: shown once, at the scenario, with its version
    assert html.count("You are the assistant of Acme.\nBe brief.") == 1
    assert "System prompt <span class=\"muted\">· prompt version 1.2.0</span>" in html


def test_heatmap_colours_and_sampling() -> None:
    assert rate_colour(0.0) != rate_colour(0.5) != rate_colour(1.0)
    red, green = rate_colour(0.0), rate_colour(1.0)
    assert int(red[1:3], 16) > int(red[3:5], 16) and int(green[3:5], 16) > int(green[1:3], 16)
    scenarios = [f"s{i:02d}" for i in range(HEATMAP_ROWS + 10)]
    matrix = {s: {"p": {"passed": i, "failed": 1, "errors": 0}} for i, s in enumerate(scenarios)}
    svg, note = heatmap(scenarios, ["p"], matrix)
    drawn = re.findall(r'data-scenario="(s\d+)"', svg)
    assert drawn == scenarios[:HEATMAP_ROWS]  # the lowest pass rates, worst first
    assert note == f"Drawn: the {HEATMAP_ROWS} scenarios with the lowest pass rate of {len(scenarios)}, worst first."
    small, none = heatmap(scenarios[:3], ["p", "q"], matrix)
    assert none is None and small.count("<rect") == 6 and "not run" in small


def test_charts_from_the_summary() -> None:
    html = render([run("a", "cheap"), run("a", "dear", "failed")])
    page = parse(html)
    assert [attrs.get("aria-label") for tag, attrs in page.tags if tag == "svg"][1:] == [
        "Run duration percentiles per provider", "Cost per provider"]
    assert "p50 813 ms · p95 813 ms · p99 813 ms" in html and "$0.0012 · 160 tokens" in html
    free = [run("a", "p")]
    free[0]["Cost"] = {}
    assert "No provider recorded any cost" in render(free)


def test_the_baseline_changes_link_to_the_runs_and_mark_them() -> None:
    runs = [failing("greeting", "p", 0), failing("greeting", "p", 1), run("order", "p")]
    comparison = {
        "baseline": {"revision": "v1"}, "regressed": True, "maxPassRateDrop": 0.0,
        "counts": {"newlyFailing": 3, "newlyPassing": 0, "unchanged": 1, "added": 0, "removed": 0},
        "topRegressions": [{"scenario": "greeting", "provider": "p"}],
        "cells": [{"scenario": "greeting", "provider": "p", "baselinePassRate": 1.0, "passRate": 0.0, "delta": -1.0,
                   "baselineP95Ms": 5.0, "p95Ms": 6.0, "baselineCostUsd": 0.0, "costUsd": 0.0,
                   "newlyFailingCount": 3, "newlyFailing": ["greeting-p-0", "greeting-p-1", "elsewhere"],
                   "newlyPassingCount": 0, "newlyPassing": []}],
    }
    html = render(runs, comparison=comparison)
    page = parse(html)
    assert ("a", {"href": "#run-greeting-p-0"}) in page.tags and ("a", {"href": "#run-greeting-p-1"}) in page.tags
    assert "<code>elsewhere</code>" in html and '#run-elsewhere"' not in html  # not in the page: not linked
    assert html.count('data-change="newly failing"') == 2
    assert '<span class="delta down">Δ -100 pts</span>' in html
    assert html.index('id="changes-h"') < html.index('id="failures-h"') < html.index('id="providers-h"')


def test_failures_first() -> None:
    runs = [run("alpha", "p"), run("beta", "p"), failing("beta", "q", 0), run("gamma", "p", "error", error="boom")]
    page = parse(render(runs))
    sections = [attrs["id"] for tag, attrs in page.tags if tag == "section" and attrs.get("class") == "scenario"]
    assert sections == ["scenario-beta", "scenario-gamma", "scenario-alpha"]
    beta = [attrs["data-status"] for tag, attrs in page.tags
            if tag == "details" and attrs.get("data-scenario") == "beta"]
    assert beta == ["failed", "passed"]


def test_rendering_is_deterministic() -> None:
    runs = [failing("s", "p", 0), run("s", "q")]
    assert render(runs) == render(list(reversed(runs)))
