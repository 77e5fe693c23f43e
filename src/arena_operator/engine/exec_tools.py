"""Exec tools (`mode: exec` with an `exec:` block), upstream's one-shot exec protocol, run in the sandbox.

The command gets ``{"args": {...}}`` on stdin and answers one JSON object on stdout: ``{"result": ...}`` (the tool's
result), ``{"error": "..."}`` (a tool error), or any other JSON (the result as is). A non-zero exit, output that is
not JSON, the time limit (``exec.timeout_ms``, else 30 s) or too much output is a tool error. A command or argument
starting with ``./`` names a file of the bundle (it must stay inside it); the sandbox's working directory is an
empty scratch directory. ``runtime: server`` (upstream's long-lived JSON-RPC mode) is refused clearly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import sandbox
from .envexpand import current_env
from .errors import ToolError
from .manifests import OUTSIDE_BUNDLE, escapes
from .spec import ToolSpec

DEFAULT_TIMEOUT_MS = 30_000


def _resolve(root: Path, value: str, tool: str) -> str:
    if not value.startswith("./"):
        return value
    if escapes(root, value):
        raise ToolError(f"{tool}: {value!r} {OUTSIDE_BUNDLE}")
    return str((root / value).resolve())


def argv(tool: ToolSpec, root: Path) -> list[str]:
    assert tool.exec is not None
    return [_resolve(root, v, tool.name) for v in (tool.exec.command, *tool.exec.args)]


def _env(tool: ToolSpec) -> dict[str, str]:
    assert tool.exec is not None
    env = current_env()
    return {n: v for n in tool.exec.env if env.readable(n) and (v := env.get(n)) is not None}


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


async def run_exec_tool(tool: ToolSpec, args: dict[str, Any], root: Path) -> str:
    """The tool's result text; ToolError for every failure (kind `exec_disabled` when exec may not run here)."""
    config = tool.exec
    if config is None:
        raise ToolError(f"{tool.name}: mode exec needs an exec block (command, args, env, timeout_ms)")
    if config.runtime != "exec":
        raise ToolError(f"{tool.name}: exec runtime {config.runtime!r} is not supported (one-shot exec only)")
    timeout_ms = config.timeout_ms or DEFAULT_TIMEOUT_MS
    try:
        outcome = await sandbox.run(argv(tool, root), json.dumps({"args": args}).encode(), timeout_ms / 1000,
                                    _env(tool))
    except sandbox.SandboxRefused as exc:
        raise ToolError(f"{tool.name}: {exc}", exc.kind) from None
    except OSError as exc:
        raise ToolError(f"{tool.name}: cannot start {config.command!r}: {exc.strerror or exc}") from None
    if outcome.returncode is None:
        raise ToolError(f"{tool.name}: timed out after {timeout_ms} ms", "timeout")
    if outcome.truncated:
        raise ToolError(f"{tool.name}: output larger than {sandbox.MAX_OUTPUT_BYTES} bytes")
    if outcome.returncode != 0:
        detail = f" (stderr: {outcome.stderr})" if outcome.stderr else ""
        raise ToolError(f"{tool.name}: exited with status {outcome.returncode}{detail}")
    try:
        reply = json.loads(outcome.stdout)
    except ValueError:
        raise ToolError(f"{tool.name}: returned invalid JSON: {outcome.stdout[:200].decode('utf-8', 'replace')!r}"
                        ) from None
    if isinstance(reply, dict) and reply.get("error"):
        raise ToolError(f"{tool.name}: {reply['error']}")
    if isinstance(reply, dict) and "result" in reply:
        return _as_text(reply["result"])
    return outcome.stdout.decode("utf-8", "replace")
