"""`arena run job.yaml`: the same ArenaJob manifests a cluster runs, run here — no cluster, no Redis.

The file holds an ArenaJob plus what it references: its ArenaConfig (or, in the Go operator's form, none: the job
names its ArenaSource with sourceRef), Providers, ToolRegistries, and the ArenaSource (fetched with the operator's
own fetchers; a `configmap` source reads a ConfigMap from the same file, a `workspace` source a directory
relative to the file) unless `--bundle DIR` points at a checkout. Both forms are read as one model
(runplan.forms), providers and tools are resolved and the plan is made with the same code the operator uses, so
the manifests behave the same in both places. What only concerns worker pods (podOverrides, verbose) does
nothing here."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..api.arenasource import ArenaSourceSpec
from ..api.common import GROUP
from ..engine.bundle import Bundle
from ..runplan.apply import apply_to_bundle
from ..runplan.forms import effective_config, unsupported_fields
from ..runplan.providers import bundle_groups, resolve_providers
from ..runplan.tools import resolve_tools
from ..runplan.units import plan_inputs
from ..sources.fetchers import fetcher_for
from .run import LocalRunOptions


class ManifestProblem(ValueError):
    """The manifests do not describe a runnable job; says which object and field."""


@dataclass
class JobManifests:
    job: dict[str, Any]
    config: dict[str, Any] | None  # None for a job with sourceRef
    source: dict[str, Any] | None
    providers: list[dict[str, Any]]
    registries: list[dict[str, Any]]
    config_maps: dict[str, dict[str, Any]]
    directory: Path | None = None  # where the file is: a workspace source's path is relative to it


def is_job_file(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        return any(_ours(d) and d.get("kind") == "ArenaJob" for d in yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError:
        return False


def _ours(doc: Any) -> bool:
    return isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(GROUP + "/")


def read_manifests(path: Path) -> JobManifests:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(str(doc.get("kind")), []).append(doc)
    jobs = [d for d in by_kind.get("ArenaJob", []) if _ours(d)]
    if len(jobs) != 1:
        raise ManifestProblem(f"{path}: expected exactly one ArenaJob, found {len(jobs)}")
    job = jobs[0]
    spec = job.get("spec") or {}
    config = None
    if "sourceRef" in spec:  # the Go operator's form: no ArenaConfig
        source_name = (spec.get("sourceRef") or {}).get("name")
    else:
        config_name = (spec.get("configRef") or {}).get("name")
        configs = {d["metadata"]["name"]: d for d in by_kind.get("ArenaConfig", [])}
        if config_name not in configs:
            raise ManifestProblem(f"{path}: ArenaJob {job['metadata']['name']}: spec.configRef {config_name!r} has "
                                  f"no ArenaConfig in this file (found: {sorted(configs) or 'none'})")
        config = configs[config_name]
        source_name = (config.get("spec") or {}).get("sourceRef", {}).get("name")
    sources = {d["metadata"]["name"]: d for d in by_kind.get("ArenaSource", [])}
    return JobManifests(job, config, sources.get(source_name), by_kind.get("Provider", []),
                        by_kind.get("ToolRegistry", []),
                        {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}, path.parent)


async def fetch_source(manifests: JobManifests, dest: Path) -> Path:
    """The bundle the ArenaSource points at, fetched here with the operator's fetchers (public sources)."""
    if manifests.source is None:
        whose = "the ArenaConfig's" if manifests.config is not None else "the ArenaJob's"
        raise ManifestProblem(f"{whose} sourceRef has no ArenaSource in the file: add it, or pass --bundle")
    spec = ArenaSourceSpec.model_validate(manifests.source["spec"])

    async def read_config_map(name: str) -> tuple[dict[str, str], str]:
        if name not in manifests.config_maps:
            raise ManifestProblem(f"ConfigMap {name} (the source's configMap) is not in the file")
        return dict(manifests.config_maps[name].get("data") or {}), "local"

    await fetcher_for(spec, None, read_config_map, workspace_root=manifests.directory).fetch(dest)
    return dest


def job_options(path: Path, bundle_dir: Path | None, base: LocalRunOptions) -> LocalRunOptions:
    """LocalRunOptions for the job in `path`: bundle, scenario selection, trials, formats, provider swap."""
    manifests = read_manifests(path)
    job = ArenaJobSpec.model_validate(manifests.job["spec"])
    config = effective_config(job, ArenaConfigSpec.model_validate(manifests.config["spec"])
                              if manifests.config is not None else None)
    if job.type not in ("evaluation", "datagen", "loadtest"):
        raise ManifestProblem(f"ArenaJob type {job.type!r} runs only in a cluster for now")
    unsupported = unsupported_fields(job)
    if unsupported:
        raise ManifestProblem(unsupported)
    if bundle_dir is None:
        bundle_dir = asyncio.run(fetch_source(manifests, Path(tempfile.mkdtemp(prefix="arena-bundle-"))))
    if config.arena_file:
        bundle_dir = bundle_dir / config.arena_file
    inputs = plan_inputs(config, job)
    filters = base.filters
    filters.scenarios = filters.scenarios or inputs.include
    filters.exclude_scenarios = filters.exclude_scenarios or inputs.exclude
    filters.trials = filters.trials or inputs.trials

    def prepare(bundle: Bundle) -> None:
        namespace = (manifests.job.get("metadata") or {}).get("namespace")
        resolved = resolve_providers(bundle_groups(bundle), config, job, manifests.providers, namespace)
        apply_to_bundle(bundle, resolved, resolve_tools(job, manifests.registries),
                        mock_dir=Path(tempfile.mkdtemp(prefix="arena-mocks-")))

    formats = base.formats or (list(job.evaluation.output_formats) if job.evaluation and
                               job.evaluation.output_formats else None)
    return replace(base, bundle=bundle_dir, filters=filters, concurrency=base.concurrency or config.concurrency,
                   formats=formats, prepare=prepare, job_type=job.type, data_gen=job.data_gen)
