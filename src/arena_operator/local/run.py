"""The embedded default: plan and run a whole bundle in this process — no cluster, no Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine.bundle import Bundle, load_bundle
from ..engine.executor import ConversationExecutor
from ..engine.plan import RunCombination, RunFilters, generate_plan
from ..engine.providers.registry import build_providers
from ..results.formats import FORMATS, jsonl_line
from ..results.summary import Summary
from ..results.writer import JSONL, read_jsonl, write_reports

ALL_FORMATS = ("json", "junit", "csv", "html")


@dataclass
class LocalRunOptions:
    bundle: Path
    out_dir: Path = Path("arena-results")
    filters: RunFilters = field(default_factory=RunFilters)
    concurrency: int | None = None
    mock_provider: bool = False
    mock_config: Path | None = None
    formats: list[str] | None = None
    resume: bool = False
    # Applied to the loaded bundle before planning: how `arena run job.yaml` swaps in the manifests' Providers
    # and ToolRegistries, exactly as the operator does for a distributed job.
    prepare: Callable[[Bundle], None] | None = None


@dataclass
class LocalRunOutcome:
    summary: Summary
    planned: int
    executed: int
    skipped: int
    out_dir: Path
    formats: list[str]


ProgressHook = Callable[[dict[str, Any]], None]


def choose_formats(bundle: Bundle, requested: list[str] | None) -> list[str]:
    """CLI `--formats` wins; then the arena file's `defaults.output.formats` if it sets them; else all."""
    if requested:
        formats = requested
    elif "formats" in bundle.arena.defaults.output.model_fields_set:
        formats = bundle.arena.defaults.output.formats
    else:
        formats = list(ALL_FORMATS)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown output format(s) {unknown}; choose from {', '.join(FORMATS)}")
    return formats


def _done_run_ids(path: Path) -> set[str]:
    return {str(run["RunID"]) for run in read_jsonl(path) if "RunID" in run}


async def _drain(
    executor: ConversationExecutor,
    todo: Iterator[RunCombination],
    concurrency: int,
    sink: Callable[[dict[str, Any]], None],
) -> int:
    """N workers pull from one iterator, so memory stays bounded however large the plan is."""
    executed = 0

    async def worker() -> None:
        nonlocal executed
        for combo in todo:
            result = await executor.execute(combo)
            sink(result.to_dict())
            executed += 1

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return executed


async def run_local(options: LocalRunOptions, on_result: ProgressHook | None = None,
                    on_plan: Callable[[int], None] | None = None) -> LocalRunOutcome:
    """Run the bundle; stream each result to results.jsonl as it finishes, then write the reports."""
    bundle = load_bundle(options.bundle)
    if options.prepare is not None:
        options.prepare(bundle)
    formats = choose_formats(bundle, options.formats)
    plan = generate_plan(bundle, options.filters)
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl_path = out_dir / JSONL
    done = _done_run_ids(jsonl_path) if options.resume else set()
    todo = [c for c in plan.combinations if c.run_id not in done]
    if on_plan:
        on_plan(len(todo))
    providers = build_providers(bundle.providers, bundle.root, options.mock_provider, options.mock_config)
    executor = ConversationExecutor(bundle, providers)
    concurrency = options.concurrency or bundle.arena.defaults.concurrency
    started = datetime.now(UTC)
    mode = "a" if options.resume else "w"
    with jsonl_path.open(mode, encoding="utf-8", buffering=1) as jsonl:

        def sink(run: dict[str, Any]) -> None:
            jsonl.write(jsonl_line(run))
            if on_result:
                on_result(run)

        try:
            executed = await _drain(executor, iter(todo), concurrency, sink)
        finally:
            await executor.aclose()
    order = {c.run_id: i for i, c in enumerate(plan.combinations)}
    latest = {run["RunID"]: run for run in read_jsonl(jsonl_path) if run.get("RunID") in order}
    runs = sorted(latest.values(), key=lambda run: order[run["RunID"]])
    meta = {"bundle": str(options.bundle), "started": started.isoformat(), "planned": len(plan),
            "finished": datetime.now(UTC).isoformat()}
    summary = write_reports(out_dir, runs, formats, meta)
    return LocalRunOutcome(summary, len(plan), executed, len(plan) - len(todo), out_dir, formats)

