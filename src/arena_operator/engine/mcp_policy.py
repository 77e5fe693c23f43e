"""Where a bundle's stdio MCP server (its `command`: arbitrary code) may run.

Locally (`arena run`) always: the user wrote or chose the bundle. In the cluster (a process confined by the egress
policy: `arena worker`) two keys must both turn: the cluster admin's gate, ``ARENA_ALLOW_MCP_STDIO=true`` on the
operator (Helm value ``mcp.allowStdio``), which the operator copies into every worker pod; and the job owner's
list, ``spec.mcp.allowStdioCommands`` of the ArenaJob, which the operator writes into that job's worker pods as
``ARENA_MCP_STDIO_COMMANDS`` (a JSON list). A server runs only when its `command`, exactly as the bundle writes it,
is in the list: the owner of the job vouches for what its pods execute, the admin for whether pods may execute
bundle commands at all. The operator always sets both variables, so ``podOverrides.extraEnvFrom`` cannot supply them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from .egress import ALLOW_MCP_STDIO_VARIABLE, confined

#: The ArenaJob's allow-list, as the worker pod receives it (a JSON list of command names).
STDIO_COMMANDS_VARIABLE = "ARENA_MCP_STDIO_COMMANDS"
JOB_FIELD = "spec.mcp.allowStdioCommands"
HELM_VALUE = "mcp.allowStdio"


def admin_allows(environ: Mapping[str, str]) -> bool:
    return environ.get(ALLOW_MCP_STDIO_VARIABLE, "").strip().lower() == "true"


def job_commands(environ: Mapping[str, str]) -> frozenset[str]:
    """The commands the ArenaJob allows; anything but a JSON list of strings allows none."""
    try:
        value = json.loads(environ.get(STDIO_COMMANDS_VARIABLE) or "[]")
    except ValueError:
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()


def encode_commands(commands: list[str] | tuple[str, ...]) -> str:
    """The value of ARENA_MCP_STDIO_COMMANDS for a worker pod."""
    return json.dumps(sorted(set(commands)), separators=(",", ":"))


def stdio_refusal(server: str, command: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the stdio server `server` may not run `command` here (naming what to set), or None when it may."""
    if not confined():
        return None
    environ = os.environ if environ is None else environ
    if not admin_allows(environ):
        return (f"MCP server {server!r}: stdio servers run in the cluster only when the cluster admin allows them "
                f"({ALLOW_MCP_STDIO_VARIABLE}=true on the operator, Helm value {HELM_VALUE}) and the ArenaJob lists "
                f"the command in {JOB_FIELD}")
    allowed = job_commands(environ)
    if command not in allowed:
        shown = ", ".join(repr(c) for c in sorted(allowed)) or "none"
        return (f"MCP server {server!r}: command {command!r} is not allowed by the ArenaJob: add it to {JOB_FIELD} "
                f"(allowed now: {shown})")
    return None
