"""Load-time checks of the arena's MCP server declarations (`mcp_servers`, `runtime.mcp_servers`): a bundle is
untrusted input, so every entry is checked for shape, bounds and paths before anything starts, each problem named
with file:line. Servers themselves start only when a run needs them (:mod:`.mcp`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import spec as s
from .envexpand import BundleEnv, current_env
from .manifests import OUTSIDE_BUNDLE, Collector, escapes, suggest
from .mcp import MAX_CALL_TIMEOUT_MS, MAX_START_TIMEOUT_MS
from .mcp_vars import FIELDS, reference_problems

KEYS = frozenset({"name", "command", "args", "env", "working_dir", "url", "transport", "headers", "timeout_ms",
                  "start_timeout_ms", "tool_filter", "source", "scope", "source_args"})
TRANSPORTS = {"stdio": "command", "sse": "url", "streamable_http": "url"}
ORIGINS = ("command", "url", "source")
FILTER_KEYS = ("allowlist", "blocklist")
TIMEOUTS = {"timeout_ms": MAX_CALL_TIMEOUT_MS, "start_timeout_ms": MAX_START_TIMEOUT_MS}
# Tool names are mcp__<server>__<tool>: a server name with "__" would split in the wrong place.
NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_))*$")
SCALARS = (str, int, float, bool)

Found = list[tuple[list[str | int], str]]


def _kind(value: Any) -> str:
    """What the YAML gave, as its author thinks of it (the loader's line-keeping types are not for users)."""
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, Mapping) else type(value).__name__


def _mapping_problems(entry: Mapping[str, Any], key: str) -> Found:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [([key], f"expected a mapping of names to values, got {_kind(value)}")]
    return [([key, str(k)], f"expected a string, got {_kind(v)}") for k, v in value.items()
            if not isinstance(v, SCALARS)]


def _shape_problems(entry: Mapping[str, Any], root: Path) -> Found:
    found: Found = []
    origins = [key for key in ORIGINS if entry.get(key)]
    if len(origins) != 1:
        found.append(([], "set exactly one of command (stdio), url (HTTP) or source, got "
                          + (" and ".join(origins) or "none")))
    for key in ("command", "url", "working_dir", "transport", "source"):
        if entry.get(key) is not None and not isinstance(entry.get(key), str):
            found.append(([key], f"expected a string, got {_kind(entry[key])}"))
    transport = entry.get("transport")
    if isinstance(transport, str) and transport:
        needs = TRANSPORTS.get(transport)
        if needs is None:
            found.append((["transport"], f"unknown transport {transport!r} (stdio, sse or streamable_http)"))
        elif not entry.get(needs):
            found.append((["transport"], f"transport {transport} needs a {needs}"))
    args = entry.get("args")
    if args is not None and not (isinstance(args, list) and all(isinstance(a, SCALARS) for a in args)):
        found.append((["args"], "expected a list of strings"))
    for key in FIELDS:
        found += _mapping_problems(entry, key)
    working_dir = entry.get("working_dir")
    if isinstance(working_dir, str) and working_dir and escapes(root, working_dir):
        found.append((["working_dir"], f"{working_dir!r} {OUTSIDE_BUNDLE}"))
    for key, limit in TIMEOUTS.items():
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit):
            found.append(([key], f"expected milliseconds between 1 and {limit}, got {value!r}"))
    return found


def _filter_problems(entry: Mapping[str, Any]) -> Found:
    filters = entry.get("tool_filter")
    if filters is None:
        return []
    if not isinstance(filters, Mapping):
        return [(["tool_filter"], "expected a mapping with allowlist and/or blocklist")]
    return [(["tool_filter", key], "expected a list of tool names") for key in FILTER_KEYS
            if filters.get(key) is not None and not (isinstance(filters[key], list)
                                                     and all(isinstance(t, str) for t in filters[key]))]


def entry_problems(entry: Any, root: Path, env: BundleEnv) -> tuple[Found, Found]:
    """(problems, warnings) of one declaration, each with its path inside the entry."""
    if not isinstance(entry, Mapping):
        return [([], f"expected a mapping (name, command or url, …), got {_kind(entry)}")], []
    name = entry.get("name")
    problems: Found = []
    if not isinstance(name, str) or not NAME.match(name):
        problems.append((["name"], f"expected a name of letters, digits, '-' and single '_' (tools are called "
                                   f"mcp__<name>__<tool>), got {name!r}"))
    problems += _shape_problems(entry, root) + _filter_problems(entry)
    problems += [(list(path), message) for path, message in reference_problems(entry, env)]
    warnings: Found = [([str(key)], f"unknown MCP server key {key!r}{suggest(str(key), KEYS)}")
                       for key in entry if key not in KEYS]
    warnings += [([key], "${…} is not expanded here, only in env and headers")
                 for key in ("command", "url", "working_dir") if "${" in str(entry.get(key) or "")]
    return problems, warnings


def check_mcp_servers(arena: s.ArenaSpec, file: str, doc: Any, root: Path, out: Collector) -> None:
    """Every declaration of the arena file, and that no two share a name."""
    extra = arena.model_extra or {}
    runtime = extra.get("runtime") if isinstance(extra.get("runtime"), Mapping) else {}
    env = current_env()
    seen: set[str] = set()
    for prefix, entries in ((["spec", "mcp_servers"], extra.get("mcp_servers")),
                            (["spec", "runtime", "mcp_servers"], runtime.get("mcp_servers"))):
        if entries is None:
            continue
        if not isinstance(entries, list):
            out.add(file, doc, prefix, f"expected a list of MCP servers, got {_kind(entries)}")
            continue
        for index, entry in enumerate(entries):
            where: list[str | int] = [*prefix, index]
            problems, warnings = entry_problems(entry, root, env)
            for path, message in problems:
                out.add(file, doc, where + path, message)
            for path, message in warnings:
                out.warn(file, doc, where + path, message)
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str) and name in seen:
                out.add(file, doc, [*where, "name"], f"duplicate MCP server name {name!r}")
            seen.add(str(name))
