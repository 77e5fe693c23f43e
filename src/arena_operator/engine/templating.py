"""`{{var}}` substitution. Templates are data: no expressions, no code execution."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import TemplateError

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")
MAX_PASSES = 10


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Substitute placeholders, repeating (at most 10 passes) so variables may reference variables."""
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise TemplateError(f"unresolved placeholder {{{{{name}}}}}")
        return _stringify(variables[name])

    text = template
    for _ in range(MAX_PASSES):
        rendered = _PLACEHOLDER.sub(substitute, text)
        if rendered == text:
            return rendered
        text = rendered
    if _PLACEHOLDER.search(text):
        raise TemplateError(f"placeholders still unresolved after {MAX_PASSES} passes (a variable refers to itself?)")
    return text


def placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)
