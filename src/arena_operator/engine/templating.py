"""`{{var}}` substitution. Templates are data: no expressions, no code execution, and bounded: at most
MAX_PASSES rounds of variables naming variables, and at most MAX_RENDERED_CHARS of output however the variables
multiply (a chain of variables each doubling the previous one grows exponentially in a few passes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import TemplateError

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")
MAX_PASSES = 10
MAX_RENDERED_CHARS = 1_000_000


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Substitute placeholders, repeating (at most 10 passes) so variables may reference variables."""
    grown = 0

    def substitute(match: re.Match[str]) -> str:
        nonlocal grown
        name = match.group(1)
        if name not in variables:
            raise TemplateError(f"unresolved placeholder {{{{{name}}}}}")
        value = _stringify(variables[name])
        grown += len(value) - len(match.group(0))
        if len(text) + grown > MAX_RENDERED_CHARS:
            raise TemplateError(f"the rendered text would exceed {MAX_RENDERED_CHARS:,} characters (variables that "
                                "expand into each other?)")
        return value

    text = template
    for _ in range(MAX_PASSES):
        grown = 0
        rendered = _PLACEHOLDER.sub(substitute, text)
        if rendered == text:
            return rendered
        text = rendered
    if _PLACEHOLDER.search(text):
        raise TemplateError(f"placeholders still unresolved after {MAX_PASSES} passes (a variable refers to itself?)")
    return text


def placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)
