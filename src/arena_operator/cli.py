"""`arena`: run a bundle locally, validate a bundle or manifests, run the operator and workers.

Exit codes: 0 success; 1 failures under --ci (`arena validate`: something invalid); 2 bad input (invalid bundle,
flags or manifests).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from . import __version__
from .datagen.formats import FORMATS as DATAGEN_FORMATS
from .datagen.local import datagen_settings, run_datagen_command
from .engine.bundle import load_bundle
from .engine.errors import BundleInvalid, ProviderError
from .engine.plan import RunFilters
from .engine.sandbox import allow_exec
from .local.diff import diff, print_comparison
from .local.loadtest import run_load_test_command
from .local.manifests import is_job_file, job_options
from .local.progress import RunProgress, print_summary
from .local.run import LocalRunOptions, run_local
from .local.validate import UsageError, validate
from .local.validate import lines as validation_lines
from .results.sinkbase import SinkError
from .runplan.selection import ResolutionError
from .sources.errors import SourceError

EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by SIGINT


def _globs(values: list[str] | None) -> list[str]:
    """`--scenario a,b --scenario c` → [a, b, c]."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def _add_run_parser(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a bundle locally (mock or real providers), write reports")
    run.add_argument("path", nargs="?", help="bundle directory or arena config file")
    run.add_argument("-c", "--config", help="bundle directory or arena config file (upstream flag)")
    run.add_argument("--scenario", action="append", help="scenario id or file glob (repeatable, comma-separated)")
    run.add_argument("--exclude-scenario", action="append", help="scenario glob to leave out")
    run.add_argument("--eval", action="append", help="eval id or file glob (repeatable, comma-separated): run these "
                     "evals over their recordings instead of scenarios (upstream flag)")
    run.add_argument("--record", action="store_true", help="write each scenario run's session recording to "
                     "<out>/<defaults.output.recording.dir: recordings>/<RunID>.jsonl (as its enabled: true)")
    run.add_argument("--provider", action="append", help="provider id glob (repeatable, comma-separated)")
    run.add_argument("--region", action="append", help="region(s) to run (default: default)")
    run.add_argument("--mock-provider", action="store_true", help="replace every provider by a mock of the same id")
    run.add_argument("--mock-config", type=Path, help="mock responses file for --mock-provider")
    run.add_argument("--skip-pack-evals", "--skip-evals", dest="skip_pack_evals", action="store_true",
                     help="do not run the arena's pack_evals (upstream flag)")
    run.add_argument("--eval-types", action="append", help="run only pack evals of these types (repeatable, "
                     "comma-separated; upstream flag)")
    run.add_argument("--formats", help="comma-separated: json,jsonl,junit,csv,markdown,html (html is always written; "
                     "json implies jsonl); default: all")
    run.add_argument("-o", "--out", "--out-dir", dest="out", type=Path, default=Path("arena-results"),
                     help="output directory (upstream: -o/--out-dir)")
    run.add_argument("--temperature", type=float, help="sampling temperature for every provider (upstream flag)")
    run.add_argument("--strict", action="store_true", help="bundle warnings (unknown keys, spellings upstream "
                                                           "would not read) are errors")
    run.add_argument("-j", "--concurrency", type=int, help="parallel runs (default: arena defaults.concurrency)")
    run.add_argument("--ci", action="store_true", help="exit 1 when any run errored or any assertion failed")
    run.add_argument("--allow-exec", action="store_true", help="let the bundle's exec tools run (in the sandbox: no "
                     "network, a scratch directory, a scrubbed environment, time and output limits)")
    run.add_argument("--fail-fast", action=argparse.BooleanOptionalAction, default=True,
                     help="stop a provider whose first runs all failed with an infrastructure error (auth, "
                          "connection, DNS, down): its other runs are not attempted, exit 1 (default: on)")
    run.add_argument("--trials", type=int, help="runs per scenario × provider (overrides scenario trials)")
    run.add_argument("--resume", action="store_true", help="keep <out>/units/ and skip the runs already there")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument("--baseline", help="an earlier run's results (directory or s3:// URL) to compare with; writes "
                                        "comparison.json, and --ci exits 1 on a regression")
    run.add_argument("--max-drop", type=float, default=0.0, help="pass-rate drop per scenario × provider allowed "
                                                                 "before it counts as a regression (0.05 = 5 pts)")
    run.add_argument("--bundle", type=Path, help="with an ArenaJob manifest file: the bundle directory to use "
                     "instead of fetching the ArenaSource")
    run.add_argument("--type", choices=("evaluation", "datagen", "loadtest"), help="evaluation (default); datagen: "
                     "generate --count items into <out>/data.<format>; loadtest: drive the providers at --rps (or "
                     "--vus) for --duration (default: an ArenaJob file's type)")
    run.add_argument("--count", type=int, help="datagen: items to generate (default: dataGen.count, else 100)")
    run.add_argument("--format", choices=DATAGEN_FORMATS, help="datagen: jsonl (default), json or csv")
    run.add_argument("--seed", type=int, help="the arena's defaults.seed (upstream flag); datagen: the base seed "
                                              "(default: dataGen.seed, else defaults.seed)")
    run.add_argument("--no-dedupe", action="store_true", help="datagen: keep items whose content repeats")
    run.add_argument("--rps", type=float, help="loadtest: scenario runs started per second (open model)")
    run.add_argument("--vus", type=int, help="loadtest: virtual users (closed model, without --rps); with --rps, the "
                     "cap on runs in flight")
    run.add_argument("--duration", help="loadtest: e.g. 6s or 5m (default: loadTest.duration, else 60s)")
    run.add_argument("--ramp-up", help="loadtest: from 0 to the target, e.g. 30s (default: loadTest.rampUp, else 0s)")
    run.add_argument("--threshold", action="append", help="loadtest: an SLO such as 'latency_p95<500' (ms) or "
                     "'error_rate<=0.01' (repeatable); under --ci a failed one exits 1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arena", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"arena {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    # -v/-vv after the subcommand too (`arena run -v …`); SUPPRESS keeps a -v given before it.
    _add_parser = commands.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = _add_parser(name, **kwargs)
        sub.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging (-vv: debug)")
        return sub

    commands.add_parser = add_parser  # type: ignore[method-assign]
    _add_run_parser(commands)
    differ = commands.add_parser("diff", help="compare two runs' results (directories or s3:// URLs)")
    differ.add_argument("old", help="the baseline: an earlier run's results")
    differ.add_argument("new", help="the run to judge")
    differ.add_argument("--max-drop", type=float, default=0.0, help="allowed pass-rate drop (0.05 = 5 pts)")
    differ.add_argument("--ci", action="store_true", help="exit 1 when any scenario × provider regressed")
    validate = commands.add_parser("validate", help="check a bundle or Kubernetes manifests; print every problem "
                                   "at once (exit 0 valid, 1 invalid, 2 a path that does not exist)")
    validate.add_argument("path", nargs="+", type=Path, help="bundle directory or arena file; or YAML files (or a "
                          "directory) of ArenaSource/ArenaConfig/ArenaJob/Provider/ToolRegistry manifests")
    validate.add_argument("--strict", action="store_true", help="warnings are errors")
    validate.add_argument("--schema-only", action="store_true", help="each file or document against its schema "
                          "only: no cross-references, no source fetched, no plan")
    validate.add_argument("--bundle", type=Path, help="with manifests: the bundle directory their ArenaSource "
                          "would deliver, instead of fetching it")
    operator = commands.add_parser("operator", help="run the Kubernetes operator (kopf) against the current cluster")
    operator.add_argument("-n", "--namespace", action="append", default=[],
                          help="namespace(s) to watch (repeatable); default: all namespaces")
    operator.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    operator.add_argument("--log-format", choices=("text", "json"), default="text",
                          help="json: one object a line, with the object's namespace/name (kopf) for log pipelines")
    commands.add_parser("worker", help="run one ArenaJob worker (configured by environment; used in worker pods)")
    push = commands.add_parser("push", help="validate a bundle and push it to an OCI registry as an artifact")
    push.add_argument("path", type=Path, help="bundle directory")
    push.add_argument("url", help="oci://host[:port]/repository:tag")
    push.add_argument("--insecure", action="store_true", help="plain HTTP (registries without TLS)")
    push.add_argument("--username", help="registry user; the password is read from $ARENA_REGISTRY_PASSWORD")
    crds = commands.add_parser("crds", help="render the CRDs from the API models into a directory, or --check it")
    crds.add_argument("--out", type=Path, help="directory of the CRD files (default: crds and the Helm chart's "
                      "charts/arena-operator/crds)")
    crds.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files differ from the models")
    return parser


def _report_problems(exc: BundleInvalid) -> int:
    """Every problem on its own unwrapped line on stderr, so editors and CI can jump to file:line."""
    errors = Console(stderr=True, soft_wrap=True)
    for problem in exc.problems:
        errors.print(str(problem), markup=False, highlight=False)
    errors.print(f"{len(exc.problems)} problem(s) found", style="bold red")
    return EXIT_BAD_INPUT


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    """Exit 0 valid, 1 invalid (upstream's `promptarena validate`), 2 a path that does not exist."""
    try:
        findings = validate(args.path, strict=args.strict, schema_only=args.schema_only, bundle_dir=args.bundle)
    except UsageError as exc:
        return _usage_error(str(exc))
    errors = Console(stderr=True, soft_wrap=True)
    for line in validation_lines(findings):
        errors.print(line, markup=False, highlight=False)
    if findings.problems:
        errors.print(f"{len(findings.problems)} problem(s) found", style="bold red")
        return EXIT_FAILURES
    for line in findings.summary():
        console.print(f"ok: {line}", style="green", markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


def _usage_error(message: str) -> int:
    Console(stderr=True, soft_wrap=True).print(f"arena: {message}", style="red", markup=False)
    return EXIT_BAD_INPUT


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    path = args.config or args.path
    if not path:
        return _usage_error("give a bundle directory or arena file (PATH or --config)")
    if args.concurrency is not None and args.concurrency < 1:
        return _usage_error("-j must be at least 1")
    if args.trials is not None and args.trials < 1:
        return _usage_error("--trials must be at least 1")
    if args.count is not None and args.count < 1:
        return _usage_error("--count must be at least 1")
    if args.allow_exec:
        allow_exec()
    filters = RunFilters(scenarios=_globs(args.scenario), exclude_scenarios=_globs(args.exclude_scenario),
                         providers=_globs(args.provider), regions=_globs(args.region), trials=args.trials,
                         evals=_globs(args.eval))
    options = LocalRunOptions(
        bundle=Path(path), out_dir=args.out, filters=filters, concurrency=args.concurrency,
        mock_provider=args.mock_provider, mock_config=args.mock_config,
        formats=_globs([args.formats]) if args.formats else None, resume=args.resume, baseline=args.baseline,
        max_pass_rate_drop=args.max_drop, strict=args.strict, temperature=args.temperature, seed=args.seed,
        fail_fast=args.fail_fast, record=args.record,
    )
    options.skip_pack_evals, options.eval_types = args.skip_pack_evals, _globs(args.eval_types)
    if args.out.exists() and not args.out.is_dir():
        return _usage_error(f"--out {args.out} is a file; give a directory for the reports")
    progress = RunProgress(console, enabled=not args.quiet)
    try:
        if is_job_file(Path(path)):
            options = job_options(Path(path), args.bundle, options)
        if "datagen" in (args.type, options.job_type):
            settings = datagen_settings(options.data_gen, count=args.count, fmt=args.format, seed=args.seed,
                                        dedupe=False if args.no_dedupe else None)
            return run_datagen_command(console, options, settings, args.quiet)
        if "loadtest" in (args.type, options.job_type):
            return run_load_test_command(console, options, args, Path(path) if is_job_file(Path(path)) else None)
        with progress:
            outcome = asyncio.run(run_local(options, on_result=progress.advance, on_plan=progress.start,
                                            on_note=lambda line: console.print(line, markup=False, soft_wrap=True,
                                                                               highlight=False)))
    except BundleInvalid as exc:
        return _report_problems(exc)
    except (ValueError, OSError, ProviderError, SourceError, ResolutionError, SinkError) as exc:
        return _usage_error(str(exc))
    except KeyboardInterrupt:  # a second Ctrl-C while the partial report was being written
        Console(stderr=True).print("arena: interrupted; rerun with --resume to continue", style="yellow")
        return EXIT_INTERRUPTED
    print_summary(console, outcome)
    if outcome.verdict is not None:
        print_comparison(console, outcome.verdict)
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    errors = Console(stderr=True, soft_wrap=True)
    for line in outcome.stops:
        errors.print(f"arena: {line}", style="red", markup=False, highlight=False)
    if outcome.stopped:
        return EXIT_FAILURES
    regressed = bool(outcome.verdict and outcome.verdict.short.get("regressed"))
    if args.ci and (outcome.failures.total or regressed):
        why = [outcome.failures.verdict()] if outcome.failures.total else []
        why += ["a regression against the baseline"] if regressed else []
        Console(stderr=True, soft_wrap=True).print(f"arena: exit {EXIT_FAILURES} (--ci): {'; '.join(why)}",
                                                   style="red", markup=False)
        return EXIT_FAILURES
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace, console: Console) -> int:
    try:
        verdict = asyncio.run(diff(args.old, args.new, args.max_drop))
    except SinkError as exc:
        return _usage_error(str(exc))
    if verdict.full is None:
        return _usage_error(str(verdict.short.get("error")))
    print_comparison(console, verdict)
    return EXIT_FAILURES if args.ci and verdict.short.get("regressed") else EXIT_OK


def _cmd_operator(args: argparse.Namespace, console: Console) -> int:
    from .engine.egress import EgressPolicy, confine_process
    from .engine.sandbox import forbid_exec
    from .kube import load_config
    from .operator.main import run  # kopf is only imported for the operator

    forbid_exec()  # a bundle's commands run in worker pods at most, never next to the operator's credentials
    try:
        confine_process(EgressPolicy.cluster())  # OCI registries and their token realms: the cluster's policy
    except ValueError as exc:  # an egress setting that does not parse
        return _usage_error(str(exc))
    try:
        load_config()
    except Exception as exc:  # no in-cluster account and no kubeconfig: say so once instead of retrying forever
        return _usage_error(f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({exc})")
    run(args.namespace, args.liveness, args.log_format)
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace, console: Console) -> int:
    from .engine import egress
    from .engine.envexpand import cluster_env, confine_process
    from .worker.run import main as worker_main

    confine_process(cluster_env())  # a worker pod's bundle reads only what the job owner granted
    try:
        egress.confine_process(egress.EgressPolicy.cluster())  # and reaches only what the cluster admin allows
    except ValueError as exc:
        return _usage_error(str(exc))
    return worker_main()


def _cmd_push(args: argparse.Namespace, console: Console) -> int:
    from .sources.oci import OCIAuth, push_bundle

    try:
        load_bundle(args.path)
    except BundleInvalid as exc:
        return _report_problems(exc)
    auth = OCIAuth(args.username, os.environ.get("ARENA_REGISTRY_PASSWORD", "")) if args.username else None
    try:
        digest = asyncio.run(push_bundle(args.path, args.url, auth=auth, insecure=args.insecure))
    except SourceError as exc:
        return _usage_error(f"push failed ({exc.reason}): {exc.message}")
    console.print(f"pushed {args.path} to {args.url} ({digest})", markup=False)
    return EXIT_OK


def _cmd_crds(args: argparse.Namespace, console: Console) -> int:
    """Generate crds/ (and the chart's copy) from the pydantic models (the single schema source), or check them."""
    from .api.crds import CRD_DIRS, check_crds, write_crds

    directories = [args.out] if args.out else [Path(directory) for directory in CRD_DIRS]
    if args.check:
        problems = [problem for directory in directories for problem in check_crds(directory)]
        errors = Console(stderr=True, soft_wrap=True)
        for problem in problems:
            errors.print(problem, markup=False, highlight=False)
        where = " ".join(str(directory) for directory in directories)
        if problems:
            errors.print(f"CRDs differ from the API models: run `arena crds{' --out ' + where if args.out else ''}`",
                         style="red", markup=False)
            return EXIT_FAILURES
        console.print(f"ok: {where} match the API models", style="green", markup=False)
        return EXIT_OK
    for directory in directories:
        for path in write_crds(directory):
            console.print(f"wrote {path}", markup=False, highlight=False)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=False)
    handlers = {"run": _cmd_run, "diff": _cmd_diff, "validate": _cmd_validate, "operator": _cmd_operator,
                "crds": _cmd_crds, "push": _cmd_push, "worker": _cmd_worker}
    return handlers[args.command](args, console)


if __name__ == "__main__":
    sys.exit(main())
