"""Inline SVG line charts for the load-test report: no script, no network, readable without the page's CSS."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 30
PALETTE = ("#2563eb", "#d97706", "#dc2626", "#059669", "#7c3aed", "#0891b2", "#6b7280")


def _nice(top: float) -> float:
    """A round upper bound for the y axis (1, 2, 2.5 or 5 × 10^n)."""
    if top <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(top))
    return next(m * exponent for m in (1, 2, 2.5, 5, 10) if m * exponent >= top)


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 10_000 else f"{value / 1000:g}k"


def line_chart(title: str, xs: Sequence[float], series: Sequence[tuple[str, Sequence[float | None]]],
               unit: str = "") -> str:
    """An SVG chart of ``series`` [(name, values)] over ``xs`` (seconds); None values leave a gap."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for _, ys in series for v in ys if v is not None]
    top = _nice(max(values, default=0.0))
    x_max = max(xs[-1] if xs else 1.0, 1.0)

    def px(x: float) -> float:
        return LEFT + plot_w * x / x_max

    def py(y: float) -> float:
        return TOP + plot_h * (1 - y / top)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 22 * len(series)}" '
             f'role="img" aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#d1d5db"/>']
    for i in range(5):
        y = top * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#eee"/>'
                     f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end" font-size="11">'
                     f'{_label(y)}</text>')
    step = _nice(x_max / 8)
    tick = 0.0
    while tick <= x_max + 1e-9:
        parts.append(f'<text x="{px(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11">'
                     f'{_label(tick)}s</text>')
        tick += step
    if unit:
        parts.append(f'<text x="{LEFT}" y="{TOP - 2}" font-size="11" fill="#6b7280">{escape(unit)}</text>')
    for index, (name, ys) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        for run in _runs(xs, ys):
            points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{points}"/>')
        legend_y = HEIGHT + 22 * index + 6
        parts.append(f'<rect x="{LEFT}" y="{legend_y}" width="14" height="4" fill="{color}"/>'
                     f'<text x="{LEFT + 20}" y="{legend_y + 6}" font-size="12">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _runs(xs: Sequence[float], ys: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """The series split at its gaps (None), each piece with at least one point."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=False):
        if y is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x, y))
    return [r for r in runs if r]
