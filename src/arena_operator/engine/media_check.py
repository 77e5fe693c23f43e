"""The loader's media step: every scripted turn's `parts` and every mock tool's `mock_parts` resolved (files and
inline data read, see media.py) in place, or a problem at the part's file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .manifests import Collector, Loaded
from .media import resolve_parts


def _resolve(raw: list[Any], root: Path, where: list[str | int], loaded: Loaded, out: Collector) -> list[Any]:
    parts, problems = resolve_parts(raw, root)
    for path, message in problems:
        out.add(loaded.file, loaded.doc, [*where, *path], message)
    return parts


def check_media(root: Path, scenarios: dict[str, Loaded], tools: dict[str, Loaded], out: Collector) -> None:
    """Resolve `turns[].parts` of each scenario and `mock_parts` of each tool (the specs are updated)."""
    for loaded in scenarios.values():
        for index, turn in enumerate(loaded.spec.turns):
            if turn.parts:
                turn.parts = _resolve(turn.parts, root, [*loaded.prefix, "turns", index, "parts"], loaded, out)
    for loaded in tools.values():
        tool = loaded.spec
        if tool.mock_parts:
            tool.mock_parts = _resolve(tool.mock_parts, root, [*loaded.prefix, "mock_parts"], loaded, out)
