"""report.html's charts as inline SVG, drawn here from summary.json's numbers (no script, no network): the pass
rate per scenario × provider as a heat-map, latency percentiles per provider, cost per provider."""

from __future__ import annotations

import colorsys
import math
from typing import Any

from markupsafe import Markup, escape

from .report_format import anchor, href, ms, num, pct, usd

HEATMAP_ROWS = 50  # scenarios drawn; with more, the ones with the lowest pass rate (the matrix lists all)
HEATMAP_COLUMNS = 40
_CELL_W, _CELL_H, _CHAR_W = 64, 22, 7.0
_PLOT_W, _ROW_H = 300, 26


def _attr(value: Any) -> str:
    return str(escape(str(value)))


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _label_width(labels: list[str], chars: int) -> int:
    return int(min(max((len(label) for label in labels), default=4), chars) * _CHAR_W) + 12


def rate_colour(rate: float) -> str:
    """Red (0 %) through amber to green (100 %), light enough for dark text."""
    red, green, blue = colorsys.hls_to_rgb(max(0.0, min(1.0, rate)) / 3, 0.72, 0.65)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def _cell_rate(cell: dict[str, int] | None) -> tuple[float | None, int]:
    total = sum(int(v) for v in (cell or {}).values())
    return (int((cell or {}).get("passed", 0)) / total if total else None), total


def _worst_rate(row: dict[str, dict[str, int]]) -> float:
    rates = [rate for rate, _ in map(_cell_rate, row.values()) if rate is not None]
    return min(rates, default=1.0)


def heatmap(scenarios: list[str], providers: list[str],
            matrix: dict[str, dict[str, dict[str, int]]]) -> tuple[Markup, str | None]:
    """The SVG and, when not every scenario or provider is drawn, the sentence saying which are."""
    note = []
    rows = scenarios
    if len(rows) > HEATMAP_ROWS:
        rows = sorted(rows, key=lambda s: (_worst_rate(matrix.get(s) or {}), s))[:HEATMAP_ROWS]
        note.append(f"the {HEATMAP_ROWS} scenarios with the lowest pass rate of {len(scenarios):,}, worst first")
    columns = providers[:HEATMAP_COLUMNS]
    if len(providers) > len(columns):
        note.append(f"the first {len(columns)} of {len(providers):,} providers")
    left = _label_width(rows, 36)
    longest = min(max((len(p) for p in columns), default=4), 24) * _CHAR_W
    top = int(longest * 0.6) + 18
    width, height = left + _CELL_W * len(columns) + int(longest * 0.82), top + _CELL_H * len(rows) + 4
    out = [f'<svg class="chart heatmap" aria-labelledby="heatmap-h" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    for index, provider in enumerate(columns):
        x = left + _CELL_W * index + _CELL_W / 2
        out.append(f'<text class="col" transform="translate({x:.0f},{top - 6}) rotate(-35)">'
                   f'{_attr(_short(provider, 24))}<title>{_attr(provider)}</title></text>')
    for row_index, scenario in enumerate(rows):
        y = top + _CELL_H * row_index
        out.append(f'<a href="{_attr(href(anchor(scenario)))}"><text class="row" x="{left - 8}" y="{y + 15}">'
                   f'{_attr(_short(scenario, 36))}<title>{_attr(scenario)}</title></text></a>')
        row = matrix.get(scenario) or {}
        for index, provider in enumerate(columns):
            rate, total = _cell_rate(row.get(provider))
            x = left + _CELL_W * index
            if rate is None:
                out.append(f'<rect class="none" x="{x + 1}" y="{y + 1}" width="{_CELL_W - 2}" '
                           f'height="{_CELL_H - 2}"><title>{_attr(scenario)} × {_attr(provider)}: not run</title>'
                           f'</rect>')
                continue
            cell = row[provider]
            title = (f"{scenario} × {provider}: {cell.get('passed', 0)} of {total} passed ({pct(rate)}), "
                     f"{cell.get('failed', 0)} failed, {cell.get('errors', 0)} errors")
            out.append(f'<a href="{_attr(href(anchor(scenario)))}" data-filter="" data-scenario="{_attr(scenario)}" '
                       f'data-provider="{_attr(provider)}"><rect x="{x + 1}" y="{y + 1}" width="{_CELL_W - 2}" '
                       f'height="{_CELL_H - 2}" rx="3" fill="{rate_colour(rate)}"/>'
                       f'<text class="v" x="{x + _CELL_W / 2:.0f}" y="{y + 15}">{rate * 100:.0f}%</text>'
                       f'<title>{_attr(title)}</title></a>')
    out.append("</svg>")
    return Markup("".join(out)), ("Drawn: " + "; ".join(note) + ".") if note else None


def _axis(peak: float) -> list[float]:
    """Round ticks from 0 to an end at or above `peak` (1, 2, 2.5 or 5 × 10ⁿ, in steps of a round size)."""
    if peak <= 0:
        return [0.0, 1.0]
    magnitude = 10.0 ** math.floor(math.log10(peak))
    step, parts = next((s, n) for s, n in ((1, 5), (2, 4), (2.5, 5), (5, 5), (10, 5))
                       if peak <= s * magnitude * (1 + 1e-9))
    return [step * magnitude * i / parts for i in range(parts + 1)]


def _frame(rows: int, left: int, label: str, ticks: list[tuple[float, str]]) -> tuple[list[str], int]:
    width, height = left + _PLOT_W + 270, _ROW_H * rows + 30
    out = [f'<svg class="chart" role="img" aria-label="{_attr(label)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    for fraction, text in ticks:
        x = left + _PLOT_W * fraction
        out.append(f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 20}"/>'
                   f'<text class="tick" x="{x:.1f}" y="{height - 6}">{_attr(text)}</text>')
    return out, height


def latency_chart(providers: list[str], summaries: dict[str, dict[str, Any]]) -> Markup | None:
    """Per provider's run durations: a dot at p50, a box from p50 to p95 and a whisker on to p99."""
    rows = [(p, (summaries.get(p) or {}).get("latencyMs") or {}) for p in providers
            if (summaries.get(p) or {}).get("runs")]
    if not rows:
        return None
    ticks = _axis(max(float(lat.get("p99") or 0) for _, lat in rows))
    end = ticks[-1]
    left = _label_width([p for p, _ in rows], 28)
    out, _ = _frame(len(rows), left, "Run duration percentiles per provider", [(t / end, ms(t)) for t in ticks])
    for index, (provider, lat) in enumerate(rows):
        y = _ROW_H * index + 4
        p50, p95, p99 = (float(lat.get(k) or 0) for k in ("p50", "p95", "p99"))
        x50, x95, x99 = (left + _PLOT_W * min(v / end, 1.0) for v in (p50, p95, p99))
        out.append(f'<text class="row" x="{left - 8}" y="{y + 13}">{_attr(_short(provider, 28))}'
                   f'<title>{_attr(provider)}</title></text>'
                   f'<line class="whisker" x1="{x50:.1f}" y1="{y + 9}" x2="{x99:.1f}" y2="{y + 9}"/>'
                   f'<line class="whisker" x1="{x99:.1f}" y1="{y + 3}" x2="{x99:.1f}" y2="{y + 15}"/>'
                   f'<rect class="box" x="{x50:.1f}" y="{y + 3}" width="{max(x95 - x50, 1.5):.1f}" height="12"/>'
                   f'<circle class="dot" cx="{x50:.1f}" cy="{y + 9}" r="4"/>'
                   f'<text class="val" x="{left + _PLOT_W + 10}" y="{y + 13}">p50 {_attr(ms(p50))} · p95 '
                   f'{_attr(ms(p95))} · p99 {_attr(ms(p99))}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def cost_chart(providers: list[str], summaries: dict[str, dict[str, Any]]) -> Markup | None:
    """A bar per provider of its total cost, with its tokens; None when nothing cost anything."""
    rows = [(p, summaries.get(p) or {}) for p in providers]
    peak = max((float(s.get("costUSD") or 0) for _, s in rows), default=0.0)
    if peak <= 0:
        return None
    ticks = _axis(peak)
    end = ticks[-1]
    left = _label_width(providers, 28)
    out, _ = _frame(len(rows), left, "Cost per provider", [(t / end, usd(t)) for t in ticks])
    for index, (provider, data) in enumerate(rows):
        y = _ROW_H * index + 4
        cost = float(data.get("costUSD") or 0)
        tokens = int(data.get("inputTokens") or 0) + int(data.get("outputTokens") or 0)
        out.append(f'<text class="row" x="{left - 8}" y="{y + 13}">{_attr(_short(provider, 28))}'
                   f'<title>{_attr(provider)}</title></text>'
                   f'<rect class="bar" x="{left}" y="{y + 2}" width="{max(_PLOT_W * cost / end, 1):.1f}" '
                   f'height="14"/><text class="val" x="{left + _PLOT_W + 10}" y="{y + 13}">{_attr(usd(cost))} · '
                   f'{_attr(num(tokens))} tokens</text>')
    out.append("</svg>")
    return Markup("".join(out))
