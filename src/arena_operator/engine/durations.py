"""Durations in bundle files ('90s', '5m', '1h', '250ms' or plain seconds), as upstream PromptKit writes them.

The engine keeps its own parser (it knows nothing of the Kubernetes API models, whose Duration type is stricter)."""

from __future__ import annotations

import math


def parse_duration(text: str | int | float | None, default: float) -> float:
    """'90s', '5m', '1h', '250ms' or a number of seconds → seconds; ValueError for anything else, including
    nan, inf and negative times (`run_timeout: nan` would otherwise switch the time limit off)."""
    if text is None or text == "":
        return default
    seconds = _seconds(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {text!r}: must be a finite, non-negative time (e.g. 30s, 5m)")
    return seconds


def _seconds(text: str | int | float) -> float:
    if isinstance(text, int | float):
        return float(text)
    value = text.strip()
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if value.endswith(suffix):
            try:
                return float(value[: -len(suffix)]) * factor
            except ValueError:
                break
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h)") from None
