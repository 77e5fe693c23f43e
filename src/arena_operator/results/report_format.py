"""How report.html writes numbers and names: counts, milliseconds, dollars, percentages, JSON, anchors."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

DASH = "\u2013"  # en dash: a value that is unknown


def anchor(scenario_id: str) -> str:
    """The id of a scenario's section: `scenario-<id>`, whitespace (not allowed in ids) turned into `_`."""
    return "scenario-" + re.sub(r"\s+", "_", scenario_id)


def run_anchor(run_id: Any) -> str:
    """The id of a run's details: `run-<RunID>`."""
    return "run-" + re.sub(r"\s+", "_", str(run_id))


def href(element_id: str) -> str:
    return "#" + quote(element_id, safe="-_.~!$&'()*+,;=:@/")


def scenario_href(scenario_id: str) -> str:
    return href(anchor(scenario_id))


def num(value: Any) -> str:
    try:
        return f"{int(value or 0):,}"
    except (TypeError, ValueError):
        return str(value)


def ms(value: Any) -> str:
    """Milliseconds for people: `843 ms`, `12.4 ms`, `3.21 s`; a dash when unknown."""
    try:
        millis = float(value)
    except (TypeError, ValueError):
        return DASH
    if millis >= 10_000:
        return f"{millis / 1000:,.1f} s"
    if millis >= 1_000:
        return f"{millis / 1000:.2f} s"
    return f"{millis:.0f} ms" if millis >= 100 else f"{millis:.1f} ms"


def measured_ms(value: Any) -> bool:
    """Whether a per-reply latency is a measurement worth showing: a mock reply without a simulated latency takes
    microseconds, which says nothing about a model (no provider answers in under a millisecond)."""
    try:
        return float(value) >= 1
    except (TypeError, ValueError):
        return False


def usd(value: Any) -> str:
    amount = float(value or 0)
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def pct(rate: Any) -> str:
    return f"{float(rate or 0) * 100:.1f}%"


def pretty(value: Any) -> str:
    """JSON for tool arguments and assertion details (indented when long); strings as they are."""
    if isinstance(value, str):
        return value
    compact = json.dumps(value, ensure_ascii=False, default=str)
    return compact if len(compact) <= 100 else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def compact(value: Any, limit: int = 160) -> str:
    """One line of JSON (or the string), cut at `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def filesize(value: Any) -> str:
    """Upstream's FormatFileSize: 512 B, 1.50 KB, 2.00 MB, 1.00 GB."""
    size = int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"
