"""`arena run --type datagen` (and `arena run job.yaml` for a datagen ArenaJob): the same plan, generation loop and
outputs a distributed job has, in this process — dedupe in memory instead of Redis, the shards one after the
other (each `-j` items at once), so the same seeds and a deterministic provider give the same file every time.

`--out` gets the layout of a job's sink (outputs.py): `shards/`, `units/`, `data.<format>`, `summary.json`."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..api.arenajob import DataGenSettings
from ..engine.bundle import load_bundle
from ..engine.executor import ConversationExecutor
from ..engine.plan import iter_plan
from ..engine.providers.registry import build_providers
from ..local.run import LocalRunOptions
from ..results.dirsink import DirSink
from ..sources.workspace import content_hash
from .dedupe import Dedupe, LocalDedupe, NoDedupe
from .generate import ShardFailed
from .outputs import SHARDS, produce_shard, write_outputs
from .plan import make_plan, templates_of
from .seeded import engine_generator, seeded

EXIT_OK, EXIT_INCOMPLETE = 0, 1


@dataclass
class DataGenOutcome:
    summary: dict[str, Any]
    out_dir: Path


def datagen_settings(base: DataGenSettings | None, *, count: int | None = None, fmt: str | None = None,
                     seed: int | None = None, dedupe: bool | None = None) -> DataGenSettings:
    """The job's dataGen block (or the defaults) with the command line's flags over it."""
    chosen = {"count": count, "format": fmt, "seed": seed, "dedupe": dedupe}
    current = (base or DataGenSettings()).model_dump()
    return DataGenSettings.model_validate({**current, **{k: v for k, v in chosen.items() if v is not None}})


def _revision(root: Path, out_dir: Path) -> str:
    """The bundle's content hash (a workspace source's revision), unless the output is inside the bundle."""
    if out_dir.resolve().is_relative_to(root.resolve()):
        return "unversioned"
    return content_hash(root)


async def run_datagen(options: LocalRunOptions, settings: DataGenSettings,
                      on_progress: Callable[[int, int], None] | None = None) -> DataGenOutcome:
    """Generate `settings.count` items from the bundle into `options.out_dir`; `on_progress(written, count)`."""
    bundle = load_bundle(options.bundle)
    if options.prepare is not None:
        options.prepare(bundle)
    plan = make_plan(settings, bundle.arena.defaults.seed, 1, templates_of(iter_plan(bundle, options.filters)))
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    sink = DirSink.at(out_dir)
    for stale in (sink.units, out_dir / SHARDS):  # a fresh run: an earlier run's shards go
        if stale.exists():
            await asyncio.to_thread(shutil.rmtree, stale)
    await sink.check()
    revision = await asyncio.to_thread(_revision, bundle.root, out_dir)
    executor = ConversationExecutor(bundle, seeded(build_providers(bundle.providers, bundle.root,
                                                                   options.mock_provider, options.mock_config)))
    generate = engine_generator(executor)
    dedupe: Dedupe = LocalDedupe() if plan.dedupe else NoDedupe()
    window = options.concurrency or bundle.arena.defaults.concurrency
    records: dict[str, dict[str, Any]] = {}
    written = 0
    work = Path(tempfile.mkdtemp(prefix="arena-datagen-"))
    try:
        for shard in plan.shards():
            async def progress(items: int, before: int = written) -> None:
                if on_progress is not None:
                    on_progress(before + items, plan.count)

            try:
                stats = await produce_shard(plan, shard, generate, dedupe, sink, work, window=window,
                                            revision=revision, on_progress=progress)
            except ShardFailed as exc:
                records[shard.id] = {"outcome": "failed", "error": exc.message}
                continue
            records[shard.id] = {"outcome": "passed", "result": stats.to_dict()}
            await sink.put_unit(shard.id, stats.to_dict())
            written += shard.size
        summary = await write_outputs(sink, plan, records, work, {"bundle": str(options.bundle),
                                                                  "revision": revision})
    finally:
        await executor.aclose()
        shutil.rmtree(work, ignore_errors=True)
    return DataGenOutcome(summary, out_dir)


def run_datagen_command(console: Console, options: LocalRunOptions, settings: DataGenSettings, quiet: bool) -> int:
    """The CLI's datagen run: a progress bar (items written / count), the summary; exit 1 when incomplete."""
    bar = Progress(TextColumn("[bold]arena datagen"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=quiet or not console.is_terminal, refresh_per_second=8)
    task = bar.add_task("", total=settings.count)
    with bar:
        outcome = asyncio.run(run_datagen(options, settings,
                                          lambda done, total: bar.update(task, completed=done, total=total)))
    summary = outcome.summary
    console.print(f"{summary['items']}/{summary['count']} items → {outcome.out_dir}/{summary['file']} "
                  f"({summary['duplicatesDropped']} duplicates dropped, {summary['filtered']} filtered, "
                  f"{summary['retries']} retries; {summary['generations']} generations, "
                  f"{summary['inputTokens'] + summary['outputTokens']} tokens, ${summary['costUSD']:.4f})",
                  markup=False, highlight=False, soft_wrap=True)
    for failure in summary["failures"]:
        console.print(f"{failure['shard']}: {failure['error']}", style="red", markup=False, highlight=False,
                      soft_wrap=True)
    return EXIT_OK if summary["complete"] else EXIT_INCOMPLETE
