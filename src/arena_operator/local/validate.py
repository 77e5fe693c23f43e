"""`arena validate PATH…`: a bundle (directory or arena file), or Kubernetes manifests of the five kinds
(multi-document YAML files, or a directory of them).

Manifests are checked in two stages. The schema: every document of our group against the API models
(manifest_schema). Then, unless `--schema-only`: what the objects name (a job's ArenaConfig, a config's
ArenaSource and Providers, ToolRegistries) among the documents given — a name that is not there is a warning,
since it may already exist in the cluster — and, for each job or config whose ArenaSource is given (or with
`--bundle DIR`), the bundle it would run: fetched with the operator's fetchers, loaded, its scenario selection,
providers and tools resolved and its runs counted, exactly as `arena run job.yaml` and the operator would."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from ..api.arenaconfig import ArenaConfigSpec
from ..api.arenajob import ArenaJobSpec
from ..api.arenasource import ArenaSourceSpec
from ..engine.bundle import Bundle, find_arena_file, load_bundle
from ..engine.errors import BundleInvalid, BundleProblem
from ..engine.plan import iter_plan
from ..engine.yamlsrc import YamlSyntaxError, load_yaml_documents
from ..runplan.forms import effective_config
from ..runplan.providers import bundle_groups, resolve_providers
from ..runplan.selection import ResolutionError, selector_matches
from ..runplan.tools import resolve_tools
from ..runplan.units import DEFAULT_MAX_UNITS, plan_inputs
from ..sources.errors import SourceError
from ..sources.fetchers import fetcher_for
from .manifest_schema import Findings, check_document, is_ours, plain, problem, suggest

YAML_SUFFIXES = (".yaml", ".yml")


class UsageError(ValueError):
    """The command cannot check what it was given at all (a path that does not exist)."""


@dataclass
class Obj:
    """A valid object of the files given, with where it was read."""

    file: str
    doc: Any  # line-numbered, for positions
    body: dict[str, Any]  # plain

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name") or "")

    @property
    def namespace(self) -> str | None:
        return (self.body.get("metadata") or {}).get("namespace")


def count_runs(bundle: Bundle, filters: Any = None) -> str:
    counted = sum(1 for _ in islice(iter_plan(bundle, filters), DEFAULT_MAX_UNITS + 1))  # never a list
    return f"more than {DEFAULT_MAX_UNITS}" if counted > DEFAULT_MAX_UNITS else str(counted)


def validate_bundle(path: Path, strict: bool, schema_only: bool, out: Findings) -> None:
    try:
        bundle = load_bundle(path, strict=strict, schema_only=schema_only, log_warnings=False)
    except BundleInvalid as exc:
        out.problems.extend(exc.problems)
        return
    out.warnings.extend(bundle.warnings)
    runs = "" if schema_only else f", {count_runs(bundle)} runs planned"
    evals = f", {len(bundle.eval_runs)} evals" if bundle.eval_runs else ""
    out.checked.append(f"{path}: bundle: {len(bundle.scenarios)} scenarios{evals}, {len(bundle.providers)} "
                       f"providers{runs}")


def _manifest_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())


def _documents(path: Path, out: Findings) -> list[Any] | None:
    try:
        return load_yaml_documents(path.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        out.problems.append(BundleProblem(str(path), exc.line, "", str(exc), exc.column))
    except (OSError, UnicodeDecodeError) as exc:
        out.problems.append(BundleProblem(str(path), 0, "", f"cannot read file: {exc}"))
    return None


def classify(path: Path, out: Findings) -> list[tuple[Path, list[Any]]] | None:
    """The manifest files (with their documents) `path` stands for, or None when it is a bundle."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    if path.is_dir():
        try:
            find_arena_file(path)
            return None
        except BundleInvalid:
            files = [(f, docs) for f in _manifest_files(path) if (docs := _documents(f, Findings())) is not None]
            return files if any(is_ours(d) for _, docs in files for d in docs) else None
    docs = _documents(path, out)
    if docs is None:
        return []  # unreadable: already a problem, whatever it was meant to be
    return [(path, docs)] if any(is_ours(d) for d in docs) else None


def validate(paths: list[Path], *, strict: bool = False, schema_only: bool = False,
             bundle_dir: Path | None = None) -> Findings:
    """Every problem of every path at once. Raises UsageError for a path that does not exist."""
    out = Findings()
    objects: list[Obj] = []
    others: list[dict[str, Any]] = []
    for path in paths:
        files = classify(path, out)
        if files is None:
            validate_bundle(path, strict, schema_only, out)
            continue
        for file, docs in files:
            for doc in docs:
                if is_ours(doc):
                    if check_document(doc, str(file), out):
                        objects.append(Obj(str(file), doc, plain(doc)))
                elif isinstance(doc, dict):
                    others.append(plain(doc))
    if objects and not schema_only:
        References(objects, others, bundle_dir, out).check()
    if strict:
        out.problems.extend(out.warnings)
        out.warnings = []
    out.problems.sort(key=lambda p: (p.file, p.line, p.column))  # stable: a line's problems keep their order
    return out


class References:
    """The cross-object checks of manifests (see the module docstring)."""

    def __init__(self, objects: list[Obj], others: list[dict[str, Any]], bundle_dir: Path | None,
                 out: Findings) -> None:
        self.objects, self.bundle_dir, self.out = objects, bundle_dir, out
        self.config_maps = {str((d.get("metadata") or {}).get("name")): d for d in others
                            if d.get("kind") == "ConfigMap"}
        self._bundles: dict[str, Bundle | None] = {}
        self._fetched: dict[str, Path | None] = {}
        self.unresolved = False  # some object names one that is not in the files given

    def of(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.kind == kind]

    def find(self, kind: str, name: str, near: Obj) -> Obj | None:
        return next((o for o in self.of(kind) if o.name == name and o.namespace in (near.namespace, None)), None)

    def ref(self, obj: Obj, path: list[str | int], kind: str, name: str) -> Obj | None:
        """The object `obj` names at `path`; a warning when the files given do not hold it."""
        found = self.find(kind, name, obj)
        if found is None:
            self.unresolved = True
            where = f"namespace {obj.namespace}" if obj.namespace else "its namespace"
            hint = suggest(name, [o.name for o in self.of(kind)])
            self.out.warnings.append(problem(obj.file, obj.doc, path, f"{kind} {name!r} is not in the files given"
                                             f"{hint}; it must exist in {where} when this is applied"))
        return found

    def selector(self, obj: Obj, path: list[str | int], kind: str, selector: dict[str, Any]) -> None:
        candidates = [o for o in self.of(kind) if o.namespace in (obj.namespace, None)]
        if candidates and not any(selector_matches(selector, (o.body.get("metadata") or {}).get("labels"))
                                  for o in candidates):
            self.out.warnings.append(problem(obj.file, obj.doc, path, f"the selector matches none of the {kind} "
                                             f"objects given ({', '.join(o.name for o in candidates)})"))

    def check(self) -> None:
        """References first (a missing one makes provider resolution undecidable here), then what would run."""
        for config in self.of("ArenaConfig"):
            self._config_refs(config)
        jobs = [(job, self._job_refs(job)) for job in self.of("ArenaJob")]
        used = {id(config) for _, config in jobs}
        jobs += [(None, config) for config in self.of("ArenaConfig") if id(config) not in used]
        for job, config in jobs:
            self.runnable(job, config)

    def _config_refs(self, config: Obj) -> None:
        spec = config.body["spec"]
        self.ref(config, ["spec", "sourceRef", "name"], "ArenaSource", spec["sourceRef"]["name"])
        if spec.get("providerRef"):
            self.ref(config, ["spec", "providerRef", "name"], "Provider", spec["providerRef"]["name"])
        for group, refs in (spec.get("providers") or {}).items():
            for index, item in enumerate(refs or []):
                self.ref(config, ["spec", "providers", group, index, "name"], "Provider", item["name"])

    def _job_refs(self, job: Obj) -> Obj | None:
        spec = job.body["spec"]
        config = None
        if spec.get("configRef"):
            config = self.ref(job, ["spec", "configRef", "name"], "ArenaConfig", spec["configRef"]["name"])
        if spec.get("sourceRef"):
            self.ref(job, ["spec", "sourceRef", "name"], "ArenaSource", spec["sourceRef"]["name"])
        for group, entries in (spec.get("providers") or {}).items():
            items = entries.items() if isinstance(entries, dict) else enumerate(entries or [])
            for key, entry in items:
                if isinstance(entry, dict) and isinstance(entry.get("providerRef"), dict):
                    self.ref(job, ["spec", "providers", group, key, "providerRef", "name"], "Provider",
                             entry["providerRef"]["name"])
        for group, override in (spec.get("providerOverrides") or {}).items():
            self.selector(job, ["spec", "providerOverrides", group, "selector"], "Provider", override["selector"])
        for index, item in enumerate(spec.get("toolRegistries") or []):
            self.ref(job, ["spec", "toolRegistries", index, "name"], "ToolRegistry", item["name"])
        if spec.get("toolRegistryOverride"):
            self.selector(job, ["spec", "toolRegistryOverride", "selector"], "ToolRegistry",
                          spec["toolRegistryOverride"]["selector"])
        return config

    def runnable(self, job: Obj | None, config: Obj | None) -> None:
        """The bundle a job (or a config alone) runs: selection, providers and tools resolved, runs counted."""
        owner = job or config
        assert owner is not None
        job_spec = (ArenaJobSpec.model_validate(job.body["spec"]) if job is not None else
                    ArenaJobSpec.model_validate({"configRef": {"name": owner.name}}))
        if job_spec.source_ref is None and config is None:
            return  # its ArenaConfig is in the cluster: nothing more to check here
        config_spec = effective_config(job_spec, ArenaConfigSpec.model_validate(config.body["spec"])
                                       if config is not None else None)
        bundle = self.bundle_of(owner, config, config_spec)
        if bundle is None:
            return
        inputs = plan_inputs(config_spec, job_spec)
        chosen = job if job is not None and job.body["spec"].get("scenarios") is not None else config or job
        runs = count_runs(bundle, inputs.filters())
        if runs == "0":
            self.out.problems.append(problem(chosen.file, chosen.doc, ["spec", "scenarios"],
                                             f"selects no scenario of the bundle (scenarios: "
                                             f"{', '.join(sorted(bundle.scenarios))})"))
            return
        if self._resolves(owner, bundle, config_spec, job_spec):
            self.out.checked.append(f"{owner.kind} {owner.name}: {len(bundle.scenarios)} scenarios in its bundle, "
                                    f"{runs} runs planned")

    def _resolves(self, owner: Obj, bundle: Bundle, config: ArenaConfigSpec, job: ArenaJobSpec) -> bool:
        providers = [o.body for o in self.of("Provider")]
        registries = [o.body for o in self.of("ToolRegistry")]
        try:
            resolve_providers(bundle_groups(bundle), config, job, providers, owner.namespace)
            resolve_tools(job, registries)
        except ResolutionError as exc:
            if self.unresolved:  # it names a Provider or ToolRegistry of the cluster: not decidable here
                return False
            self.out.problems.append(problem(owner.file, owner.doc, ["spec"], f"{exc.reason}: {exc.message}"))
            return False
        return True

    def bundle_of(self, owner: Obj, config: Obj | None, config_spec: ArenaConfigSpec) -> Bundle | None:
        """The bundle of the config's ArenaSource (fetched once per source), or of --bundle DIR."""
        source = self.find("ArenaSource", config_spec.source_ref.name, owner)
        if self.bundle_dir is not None:
            root, label = self.bundle_dir, str(self.bundle_dir)
        elif source is not None:
            key = f"{source.file}#{source.name}"
            if key not in self._fetched:
                self._fetched[key] = self._fetch(source)
            root, label = self._fetched[key], f"arenasource/{source.name}"
        else:
            return None  # already warned: the source is in the cluster
        if root is None:
            return None
        arena = root
        if config_spec.arena_file:
            arena = root / config_spec.arena_file
            if not arena.is_file():
                where = owner if owner.body["spec"].get("arenaFile") or config is None else config
                self.out.problems.append(problem(where.file, where.doc, ["spec", "arenaFile"],
                                                 f"{config_spec.arena_file}: no such file in {label}"))
                return None
        if str(arena) not in self._bundles:
            self._bundles[str(arena)] = self._load(arena, label)
        return self._bundles[str(arena)]

    def _load(self, path: Path, label: str) -> Bundle | None:
        def located(found: list[BundleProblem]) -> list[BundleProblem]:
            return [BundleProblem(f"{label}/{p.file}", p.line, p.field, p.message, p.column) for p in found]

        try:
            bundle = load_bundle(path, log_warnings=False)
        except BundleInvalid as exc:
            self.out.problems.extend(located(exc.problems))
            return None
        self.out.warnings.extend(located(bundle.warnings))
        return bundle

    def _fetch(self, source: Obj) -> Path | None:
        spec = ArenaSourceSpec.model_validate(source.body["spec"])

        async def read_config_map(name: str) -> tuple[dict[str, str], str]:
            if name not in self.config_maps:
                raise SourceError("ConfigMapNotFound", f"ConfigMap {name} is not in the files given")
            return dict(self.config_maps[name].get("data") or {}), "local"

        dest = Path(tempfile.mkdtemp(prefix="arena-validate-"))
        try:
            asyncio.run(fetcher_for(spec, None, read_config_map, workspace_root=Path(source.file).parent)
                        .fetch(dest))
        except SourceError as exc:
            self.out.problems.append(problem(source.file, source.doc, ["spec", spec.type], f"fetch failed "
                                             f"({exc.reason}): {exc.message}; pass --bundle DIR to check a "
                                             "checkout instead, or --schema-only"))
            return None
        return dest


def lines(findings: Findings) -> Iterator[str]:
    """What the command prints on stderr, problems first."""
    yield from (str(p) for p in findings.problems)
    yield from (f"warning: {w}" for w in findings.warnings)
