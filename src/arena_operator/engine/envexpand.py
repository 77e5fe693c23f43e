"""`${NAME}` / `${NAME:-default}` in provider files, so one bundle runs on mock or a real endpoint."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def expand(text: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise UnsetVariable(name)

    return _REFERENCE.sub(substitute, text)


def expand_tree(node: Any, path: list[str | int], problems: list[tuple[list[str | int], str]]) -> None:
    """Expand every string value in place (keeps line info); unset variables are reported by path."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and "${" in value:
            try:
                node[key] = expand(value)
            except UnsetVariable as exc:
                problems.append(([*path, key], f"environment variable {exc.name} is not set (and has no default)"))
        else:
            expand_tree(value, [*path, key], problems)
