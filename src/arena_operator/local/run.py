"""The embedded default: plan and run a whole bundle in this process — no cluster, no Redis.

Each result is written as it finishes to `<out>/units/<run-id>.json` (a DirSink, the layout a distributed job's
workers write), and the run ends with the same streaming aggregation a distributed job ends with, so memory stays
bounded by the aggregation's sort batch and the run's concurrency, whatever the number of runs. `--resume` reuses
the finished runs whose inputs are unchanged (local/resume.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api.arenajob import DataGenSettings
from ..engine.bundle import Bundle, load_bundle
from ..engine.dispatch import RunExecutor
from ..engine.packeval_spec import select as select_pack_evals
from ..engine.plan import RunCombination, RunFilters, iter_plan
from ..engine.providers.registry import build_providers
from ..engine.recording import SessionRecorder, recording_settings
from ..results.aggregate import aggregate
from ..results.compare import Verdict, judge_against
from ..results.dirsink import DirSink
from ..results.failures import FailureDigest
from ..results.formats import DEFAULT_FORMATS, wanted_formats
from .failfast import FailFast
from .inputs import InputHasher, MockFlags
from .resume import InputLog


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
    baseline: str | None = None  # an earlier run's results (directory or s3:// URL) to compare with
    max_pass_rate_drop: float = 0.0
    strict: bool = False  # warnings (unknown keys, spellings upstream would not read) are errors
    temperature: float | None = None  # --temperature: every provider's sampling temperature
    seed: int | None = None  # --seed: the arena's defaults.seed
    # Applied to the loaded bundle before planning: how `arena run job.yaml` swaps in the manifests' Providers
    # and ToolRegistries, exactly as the operator does for a distributed job.
    prepare: Callable[[Bundle], None] | None = None
    job_type: str = "evaluation"  # "datagen": a data generation run (datagen.local), with these dataGen settings
    data_gen: DataGenSettings | None = None
    fail_fast: bool = True  # a provider whose every run so far failed with an infrastructure error runs no more
    skip_pack_evals: bool = False  # --skip-pack-evals
    eval_types: list[str] = field(default_factory=list)  # --eval-types: only pack evals of these types
    record: bool = False  # --record: session recordings in <out>/<defaults.output.recording.dir or recordings>/


@dataclass
class LocalRunOutcome:
    summary: dict[str, Any]  # summary.json's content
    planned: int
    executed: int
    skipped: int
    out_dir: Path
    formats: list[str]
    verdict: Verdict | None = None  # the comparison with --baseline, if one was asked for
    failures: FailureDigest = field(default_factory=FailureDigest)
    interrupted: bool = False  # Ctrl-C: the reports cover what finished; --resume continues
    stops: list[str] = field(default_factory=list)  # providers stopped by fail-fast, or refused by their circuit
    stopped: bool = False  # fail-fast stopped a provider: some runs were not attempted


ProgressHook = Callable[[dict[str, Any]], None]


def choose_formats(bundle: Bundle, requested: list[str] | None) -> list[str]:
    """CLI `--formats` wins; then the arena file's `defaults.output.formats` if it sets them; else DEFAULT_FORMATS."""
    if requested:
        formats = list(requested)
    elif "formats" in bundle.arena.defaults.output.model_fields_set:
        formats = list(bundle.arena.defaults.output.formats)
    else:
        formats = list(DEFAULT_FORMATS)
    wanted_formats(formats)  # ValueError naming the unknown ones
    return formats


def override_sampling(bundle: Bundle, temperature: float | None, seed: int | None) -> None:
    """Upstream's --temperature and --seed: one value for every provider, over the bundle's own."""
    if temperature is not None:
        bundle.arena.defaults.temperature = temperature
        for provider in bundle.providers.values():
            provider.defaults.temperature = temperature
    if seed is not None:
        bundle.arena.defaults.seed = seed


class NothingSelected(ValueError):
    """The filters select no run: an error, never an empty green report."""


def nothing_selected(bundle: Bundle, filters: RunFilters) -> str:
    wanted = {"--scenario": filters.scenarios, "--exclude-scenario": filters.exclude_scenarios,
              "--provider": filters.providers, "--region": filters.regions, "--eval": filters.evals}
    given = "; ".join(f"{flag} {' '.join(globs)}" for flag, globs in wanted.items() if globs) or "no filters"
    evals = f"; evals: {', '.join(sorted(bundle.eval_runs))}" if bundle.eval_runs else ""
    return (f"nothing to run: {given} selects no scenario × provider; scenarios: {', '.join(sorted(bundle.scenarios))}"
            f"; providers: {', '.join(sorted(bundle.providers)) or 'none'}{evals}")


def session_recorder(bundle: Bundle, out_dir: Path, record: bool) -> SessionRecorder | None:
    """Upstream's ConfigureSessionRecordingFromConfig: `defaults.output.recording` (or --record) records into
    <out>/<dir>; the out directory stands for upstream's `output.dir`."""
    enabled, subdir = recording_settings(bundle.arena.defaults.output.model_extra)
    return SessionRecorder(out_dir / subdir) if enabled or record else None


def report_meta(bundle: Path, planned: int) -> dict[str, Any]:
    """The header facts of a local run's report.html (Started/Finished come from the results themselves)."""
    return {"bundle": str(bundle), "planned": planned}


class _UnitWriter:
    """Finished runs into the sink as they come, group-commit style: the run that finds no write in progress
    writes, and keeps writing whatever finished meanwhile until nothing is left — one unit at a time when runs are
    slow (a real provider), batches when they are fast (mocks). At most `limit` runs wait in memory; past that,
    finishing runs wait for the disk."""

    def __init__(self, sink: DirSink, limit: int = 512) -> None:
        self.sink, self.limit = sink, limit
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._writing = False
        self._taken = asyncio.Event()
        self.written = 0

    async def put(self, unit_id: str, run: dict[str, Any]) -> None:
        while self._writing and len(self._pending) >= self.limit:
            self._taken.clear()
            await self._taken.wait()
        self._pending.append((unit_id, run))
        if self._writing:
            return
        self._writing = True
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self._taken.set()
                await self.sink.put_units(batch)
                self.written += len(batch)
        finally:
            self._writing = False
            self._taken.set()

    async def flush(self) -> None:
        """Whatever an interrupted run left waiting (a write cut short is redone: units are idempotent)."""
        if self._pending:
            batch, self._pending = self._pending, []
            await self.sink.put_units(batch)
            self.written += len(batch)


async def _drain(
    executor: RunExecutor,
    todo: Iterator[RunCombination],
    concurrency: int,
    record: Callable[[RunCombination, dict[str, Any]], Awaitable[None]],
) -> int:
    """N workers pull from one iterator, so memory stays bounded however large the plan is."""
    executed = 0

    async def worker() -> None:
        nonlocal executed
        for combo in todo:
            result = await executor.execute(combo)
            await record(combo, result.to_dict())
            executed += 1

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return executed


async def run_local(options: LocalRunOptions, on_result: ProgressHook | None = None,
                    on_plan: Callable[[int], None] | None = None,
                    on_note: Callable[[str], None] | None = None) -> LocalRunOutcome:
    """Run the bundle, each result into `<out>/units/` as it finishes, then aggregate the units into the reports.
    `on_note` gets what a resume decided (runs reused, rerun and why), before anything runs."""
    bundle = load_bundle(options.bundle, strict=options.strict)
    override_sampling(bundle, options.temperature, options.seed)
    bundle.pack_evals = select_pack_evals(bundle.pack_evals, options.skip_pack_evals, options.eval_types)
    if options.prepare is not None:
        options.prepare(bundle)
    formats = choose_formats(bundle, options.formats)
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    sink = DirSink.at(out_dir)
    if not options.resume and sink.units.exists():
        await asyncio.to_thread(shutil.rmtree, sink.units)  # a fresh run: the units of an earlier one go
    await sink.check()

    failfast = FailFast({}, enabled=options.fail_fast)  # told the providers once they are built

    def todo() -> Iterator[RunCombination]:
        """The plan, streamed (never a list: a million runs are a million objects), minus the units on disk and the
        runs of providers fail-fast stopped."""
        for combo in iter_plan(bundle, options.filters):
            if not (options.resume and sink.unit_path(combo.run_id).exists()) and not failfast.skip(combo):
                yield combo

    planned = sum(1 for _ in iter_plan(bundle, options.filters))
    if planned == 0:
        raise NothingSelected(nothing_selected(bundle, options.filters))
    inputs = InputLog(sink.units, InputHasher(bundle, MockFlags(options.mock_provider, options.mock_config)))
    resumed = await asyncio.to_thread(inputs.prepare, iter_plan(bundle, options.filters), options.resume)
    if options.resume and on_note is not None:
        for line in resumed.lines():
            on_note(line)
    pending = sum(1 for _ in todo()) if options.resume else planned
    if on_plan:
        on_plan(pending)
    providers = build_providers(bundle.providers, bundle.root, options.mock_provider, options.mock_config)
    executor = RunExecutor(bundle, providers, session_recorder(bundle, out_dir, options.record))
    concurrency = options.concurrency or bundle.arena.defaults.concurrency
    failfast.providers = providers

    writer = _UnitWriter(sink)

    async def record(combo: RunCombination, run: dict[str, Any]) -> None:
        await writer.put(combo.run_id, run)
        inputs.record(combo, run)
        failfast.observe(run)
        if on_result:
            on_result(run)

    interrupted = False
    try:
        executed = await _drain(executor, todo(), concurrency, record)
    except asyncio.CancelledError:  # Ctrl-C (asyncio.run cancels this task): keep what finished, report it
        interrupted, executed = True, writer.written
    finally:
        await executor.aclose()
    await writer.flush()
    inputs.close()
    verdict = None
    if options.baseline:
        verdict = await judge_against({"url": options.baseline, "revision": None, "job": None}, sink, revision=None,
                                      max_pass_rate_drop=options.max_pass_rate_drop)
    summary = await aggregate(sink, formats, meta=report_meta(options.bundle, planned),
                              comparison=verdict.full if verdict else None)
    failures = FailureDigest()
    async for run in sink.iter_units(ordered=False):
        failures.add(run)
    return LocalRunOutcome(summary, planned, executed, planned - pending, out_dir, formats, verdict, failures,
                           interrupted, failfast.lines(), bool(failfast.stops))
