"""`arena run --type loadtest` (or `arena run job.yaml` of a loadtest job): the load-test engine in this process,
one worker, no Redis — the same scheduler, measurements, thresholds and reports as a distributed job."""

from __future__ import annotations

import argparse
import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ..api.arenajob import ArenaJobSpec, LoadTestSettings
from ..api.common import parse_duration
from ..engine.bundle import load_bundle
from ..loadtest.coord import LocalCoordinator
from ..loadtest.metrics import percentiles_ms
from ..loadtest.profile import LoadProfile, check_profile, profile_from_spec
from ..loadtest.reports import timeseries, verdict_lines, write_reports
from ..loadtest.run import mix_of, prepare, run_share
from ..loadtest.summary import WorkerInfo, build_summary, test_end, verdict
from ..loadtest.thresholds import parse_threshold
from .manifests import read_manifests
from .run import LocalRunOptions


@dataclass
class LoadOutcome:
    summary: dict[str, Any]
    files: list[Path]

    @property
    def passed(self) -> bool:
        return verdict(self.summary)[0] and not self.summary.get("stopped")


def _seconds(text: str, flag: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def cli_profile(args: argparse.Namespace, load: LoadTestSettings | None, trials: int | None,
                mix_size: int) -> LoadProfile:
    """The job file's loadTest block (if any) with the command line's flags over it."""
    if load is not None:
        profile = profile_from_spec(load, trials, mix_size)
    elif args.rps is None and args.vus is None:
        raise ValueError("--type loadtest needs --rps N (open model) or --vus N (closed model)")
    else:
        profile = LoadProfile(model="open" if args.rps is not None else "closed", duration=60.0)
    changes: dict[str, Any] = {}
    if args.rps is not None:
        changes.update(model="open", target_rps=float(args.rps))
    if args.vus is not None:
        changes["vus_per_worker"] = args.vus
    if args.duration is not None:
        changes["duration"] = _seconds(args.duration, "--duration")
    if args.ramp_up is not None:
        changes["ramp_up"] = _seconds(args.ramp_up, "--ramp-up")
    if args.threshold:
        changes["thresholds"] = (*profile.thresholds, *(parse_threshold(t) for t in args.threshold))
    profile = profile.with_changes(**changes)
    check_profile(profile)
    return profile


async def run_load_test_local(options: LocalRunOptions, args: argparse.Namespace, load: LoadTestSettings | None,
                              trials: int | None, console: Console | None = None) -> LoadOutcome:
    bundle = load_bundle(options.bundle)
    if options.prepare is not None:
        options.prepare(bundle)
    mix = mix_of(bundle, options.filters)
    profile = cli_profile(args, load, trials, len(mix))
    prepared = prepare(bundle, profile, mix, mock=options.mock_provider, mock_config=options.mock_config)
    coordinator = LocalCoordinator()
    recorder = prepared.recorder
    status = console.status("load test starting") if console is not None else None

    def tick() -> None:
        if status is not None:
            c = recorder.total.counts
            lat = percentiles_ms(recorder.total, "lat")
            status.update(f"{recorder.clock():.0f}s/{profile.duration:g}s  started {c['started']:.0f}  dropped "
                          f"{c['dropped']:.0f}  requests {c['requests']:.0f}  p95 {lat['p95']:g} ms  errors "
                          f"{c['requests'] - c['successful_requests']:.0f}")

    if status is not None:
        status.start()
    try:
        await run_share(prepared, profile, mix, coordinator, tick)
    finally:
        if status is not None:
            status.stop()
    elapsed = test_end(profile, coordinator.reason, recorder.ended)
    worker = WorkerInfo(coordinator.worker, 0.0, elapsed, "finished", recorder.total)
    summary = build_summary(profile, recorder.total, elapsed=elapsed, workers=[worker], stop=coordinator.reason,
                            unpriced=prepared.unpriced)
    buckets = {int(second): [encoded] for second, encoded in coordinator.buckets.items()}
    meta = {"job": Path(options.bundle).name, "bundle": str(options.bundle)}
    files = write_reports(options.out_dir, summary, timeseries(buckets, profile, elapsed), meta)
    return LoadOutcome(summary, files)


def print_load_summary(console: Console, outcome: LoadOutcome) -> None:
    s = outcome.summary
    lat, ttft, lag = s["latency_ms"], s["ttft_ms"], s["scheduling_lag_ms"]
    target = f" (target {s['target_rps']:g}/s)" if s.get("target_rps") else ""
    first_token = f", TTFT p95 {ttft['p95']:g} ms" if ttft["count"] else ""
    say = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
    say(f"load test: {s['runs']['started']} runs at {s['achieved_rps']:g}/s{target}, {s['requests']} requests, "
        f"{s['dropped']} dropped, error rate {s['error_rate']:.2%}")
    say(f"latency p50/p95/p99 {lat['p50']:g}/{lat['p95']:g}/{lat['p99']:g} ms{first_token}, scheduling lag p99 "
        f"{lag['p99']:g} ms, cost ${s['cost_usd']:.4f}")
    if s.get("stopped"):
        say(f"stopped: {s['stopped']['reason']}: {s['stopped']['message']}", style="red")
    for line in verdict_lines(s):
        say(line, style="green" if line.startswith("PASS") else "red")
    say(f"reports: {', '.join(str(p) for p in outcome.files)}")


def job_load_test(job_file: Path | None) -> tuple[LoadTestSettings | None, int | None]:
    """The loadTest block and spec.trials of the ArenaJob in ``job_file`` (None, None without a file)."""
    if job_file is None:
        return None, None
    spec = ArenaJobSpec.model_validate(read_manifests(job_file).job["spec"])
    return (spec.load_test if spec.type == "loadtest" else None), spec.trials


def run_load_test_command(console: Console, options: LocalRunOptions, args: argparse.Namespace,
                          job_file: Path | None) -> int:
    """The CLI's load-test path; 1 when a threshold failed (or the budget stopped it) under --ci, else 0."""
    load, trials = job_load_test(job_file)
    outcome = asyncio.run(run_load_test_local(options, args, load, trials, None if args.quiet else console))
    print_load_summary(console, outcome)
    return 1 if args.ci and not outcome.passed else 0
