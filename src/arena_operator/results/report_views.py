"""What report.html shows about the runs of one scenario, computed once per scenario: each run's facts (only
those that apply), the prompt it ran with, its change since the baseline, and the providers side by side."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .report_format import compact, run_anchor
from .selection import FailureGroups, run_status

_STATUS_ORDER = {"failed": 0, "error": 1, "passed": 2}
_PARAM_LABELS = {"model": "Model", "temperature": "Temperature", "max_tokens": "Max tokens", "top_p": "Top p",
                 "seed": "Seed"}
_PARAM_HIDDEN = {"system_prompt", "prompt_version", "trial"}  # shown elsewhere in the run's details


def assertions(block: Any) -> list[dict[str, Any]]:
    return list((block or {}).get("results") or []) if isinstance(block, dict) else []


def _params(params: Any) -> list[tuple[str, str]]:
    """Provider parameters worth a line: set ones only; streaming only when on."""
    rows = []
    params = params if isinstance(params, dict) else {}
    for key in [k for k in _PARAM_LABELS if k in params] + sorted(k for k in params if k not in _PARAM_LABELS):
        value = params[key]
        if key in _PARAM_HIDDEN or value is None or value == "" or value is False:
            continue
        text = "on" if value is True else value if isinstance(value, str) else json.dumps(value, default=str)
        rows.append((_PARAM_LABELS.get(key, key.replace("_", " ").capitalize()), text))
    return rows


def _trial(run: dict[str, Any]) -> int:
    try:
        return int(run.get("Trial") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class RunView:
    """One run as the template shows it."""

    run: dict[str, Any]
    status: str
    region: str
    anchor: str
    messages: list[dict[str, Any]]
    failed_assertions: int
    conversation_assertions: list[dict[str, Any]]
    cost: dict[str, Any]
    params: list[tuple[str, str]]
    system_prompt: str
    prompt_version: str
    change: str = ""  # "newly failing" / "newly passing" since the baseline
    show_trial: bool = True
    own_system_prompt: bool = True  # False when the scenario's header shows the same prompt

    @property
    def order(self) -> tuple[int, str, str, int]:
        """Failures first, then provider, region, trial."""
        return _STATUS_ORDER[self.status], str(self.run.get("ProviderID", "")), self.region, _trial(self.run)

    @property
    def tokens(self) -> int:
        return int(self.cost.get("input_tokens") or 0) + int(self.cost.get("output_tokens") or 0)


def run_view(run: dict[str, Any], change: str = "") -> RunView:
    messages = [m for m in run.get("Messages") or [] if isinstance(m, dict)]
    failed = sum(1 for m in messages for a in assertions((m.get("meta") or {}).get("assertions"))
                 if not a.get("passed"))
    conversation = assertions(run.get("conversation_assertions"))
    failed += sum(1 for a in conversation if not a.get("passed"))
    region = str(run.get("Region") or "")
    params = run.get("Params") if isinstance(run.get("Params"), dict) else {}
    return RunView(run=run, status=run_status(run), region="" if region == "default" else region,
                   anchor=run_anchor(run.get("RunID", "")), messages=messages, failed_assertions=failed,
                   conversation_assertions=conversation, cost=run.get("Cost") or {}, params=_params(params),
                   system_prompt=str(params.get("system_prompt") or ""),
                   prompt_version=str(params.get("prompt_version") or ""), change=change)


@dataclass
class Turn:
    """One turn of a conversation: the user's message and what came back until the next one."""

    user: str | None = None
    replies: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    passed: int = 0


def turns(messages: list[dict[str, Any]]) -> list[Turn]:
    out: list[Turn] = []
    for message in messages:
        role = message.get("role")
        if role == "user" or not out:
            out.append(Turn(user=str(message.get("content") or "") if role == "user" else None))
            if role == "user":
                continue
        turn = out[-1]
        if role == "assistant":
            if message.get("content"):
                turn.replies.append(str(message["content"]))
            turn.tool_calls += [f"{c.get('name', '')} {compact(c.get('args', {}), 120)}"
                                for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        for check in assertions((message.get("meta") or {}).get("assertions")):
            if check.get("passed"):
                turn.passed += 1
            else:
                turn.failed.append(f"{check.get('type', '')}: {check.get('message', '')}")
    return out


@dataclass
class SideBySide:
    """The providers' replies to the same scenario, turn by turn: one run per provider (the earliest trial of the
    runs in the page). A row's user message is shown once when every provider got the same one."""

    views: list[RunView]
    rows: list[tuple[int, str | None, list[Turn | None]]]


def side_by_side(views: list[RunView]) -> SideBySide | None:
    first: dict[str, RunView] = {}
    for view in sorted(views, key=lambda v: (v.region, _trial(v.run), v.status)):
        first.setdefault(str(view.run.get("ProviderID", "")), view)
    if len(first) < 2:
        return None
    chosen = [first[p] for p in sorted(first)]
    columns = [turns(v.messages) for v in chosen]
    rows = []
    for index in range(max(len(c) for c in columns)):
        cells = [c[index] if index < len(c) else None for c in columns]
        users = {cell.user for cell in cells if cell is not None}
        rows.append((index + 1, users.pop() if len(users) == 1 else None, cells))
    return SideBySide(chosen, rows)


@dataclass
class ScenarioDetail:
    views: list[RunView]
    compare: SideBySide | None
    system_prompt: str  # the prompt every run of the scenario in the page had, else ""
    prompt_version: str


def scenario_detail(runs: Iterable[dict[str, Any]], cell_runs: dict[str, int],
                    changes: dict[str, str]) -> ScenarioDetail:
    """`cell_runs`: provider → runs of this scenario in the whole job (a trial number is shown when > 1)."""
    views = sorted((run_view(run, changes.get(str(run.get("RunID")), "")) for run in runs), key=lambda v: v.order)
    prompts = {v.system_prompt for v in views}
    common = prompts.pop() if len(prompts) == 1 else ""
    versions = {v.prompt_version for v in views}
    for view in views:
        view.own_system_prompt = bool(view.system_prompt) and view.system_prompt != common
        view.show_trial = cell_runs.get(str(view.run.get("ProviderID", "")), 0) > 1
    return ScenarioDetail(views, side_by_side(views), common, versions.pop() if len(versions) == 1 else "")


def failure_rows(groups: FailureGroups, shown: int) -> list[dict[str, Any]]:
    """The `shown` most frequent failure reasons, as the template lists them."""
    rows = []
    for group in groups.ranked()[:shown]:
        status, kind, message = group.reason
        cells = sorted(group.cells.items(), key=lambda item: (-item[1], item[0]))
        rows.append({"status": status, "kind": kind, "message": message, "runs": group.runs,
                     "cells": cells, "other_cell_runs": group.other_cell_runs,
                     "example": group.example,
                     "data": json.dumps([list(cell) for cell, _ in cells], ensure_ascii=False)})
    return rows
