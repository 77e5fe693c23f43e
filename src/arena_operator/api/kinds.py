"""The registry of the five kinds: names, printer columns, models — and parsing a manifest into its model.

Everything the CRD renderer needs beyond the schemas lives here, next to the parse function the operator
and the CLI use, so a kind is declared once and its CRD, its plural for API calls and its model agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .arenaconfig import ArenaConfig, ArenaConfigSpec, ArenaConfigStatus
from .arenajob import ArenaJob, ArenaJobSpec, ArenaJobStatus
from .arenasource import ArenaSource, ArenaSourceSpec, ArenaSourceStatus
from .common import API_VERSION, GROUP, ApiModel, ArenaObject
from .provider import Provider, ProviderSpec, ProviderStatus
from .toolregistry import ToolRegistry, ToolRegistrySpec, ToolRegistryStatus

READY_JSONPATH = '.status.conditions[?(@.type=="Ready")].status'
CATEGORIES = ("arena",)


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry: what ``kubectl get`` shows."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def render(self) -> dict[str, Any]:
        """The CRD form (camelCase keys; priority only when non-zero, as kubectl omits it)."""
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = PrinterColumn("AGE", ".metadata.creationTimestamp", "date", "Time since the object was created.")
READY = PrinterColumn("READY", READY_JSONPATH, description="Status of the Ready condition.")


@dataclass(frozen=True)
class Kind:
    """A custom resource kind: its names, models and how ``kubectl get`` prints it."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    model: type[ArenaObject]
    spec: type[ApiModel]
    status: type[ApiModel]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default=(AGE,))

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``, the CRD's metadata.name and its file name stem."""
        return f"{self.plural}.{GROUP}"


KINDS: tuple[Kind, ...] = (
    Kind("ArenaSource", "arenasources", ("asrc",), ArenaSource, ArenaSourceSpec, ArenaSourceStatus,
         "ArenaSource says where a PromptKit bundle lives (git, OCI, ConfigMap or a workspace directory). The "
         "operator polls it, "
         "packages each new revision as a tar.gz artifact and serves it to workers.",
         (PrinterColumn("TYPE", ".spec.type", description="Source type."),
          PrinterColumn("REVISION", ".status.artifact.revision", description="Revision of the latest artifact."),
          READY, AGE)),
    Kind("ArenaConfig", "arenaconfigs", ("acfg",), ArenaConfig, ArenaConfigSpec, ArenaConfigStatus,
         "ArenaConfig says how to test a bundle: its source, providers, workers, timeouts and scenario "
         "filters. The operator validates the bundle at the source's revision.",
         (PrinterColumn("SOURCE", ".spec.sourceRef.name", description="The ArenaSource."),
          PrinterColumn("REVISION", ".status.revision", description="Source revision validated."),
          PrinterColumn("SCENARIOS", ".status.scenarioCount", "integer", "Scenarios selected."),
          READY, AGE)),
    Kind("ArenaJob", "arenajobs", ("ajob",), ArenaJob, ArenaJobSpec, ArenaJobStatus,
         "ArenaJob is one run of an ArenaConfig or an ArenaSource (evaluation, load test or data generation) on a "
         "pool of "
         "workers, or with a schedule a template of recurring runs.",
         (PrinterColumn("TYPE", ".spec.type", description="Job type."),
          PrinterColumn("PHASE", ".status.phase", description="Job phase."),
          PrinterColumn("PROGRESS", ".status.progressText", description="Work units completed/total."),
          PrinterColumn("WORKERS", ".status.activeWorkers", "integer", "Active worker pods."),
          AGE)),
    Kind("Provider", "providers", ("prov",), Provider, ProviderSpec, ProviderStatus,
         "Provider is an LLM endpoint (type, model, base URL, credentials, defaults, pricing) that ArenaJobs "
         "select by label.",
         (PrinterColumn("TYPE", ".spec.type", description="Provider type."),
          PrinterColumn("MODEL", ".spec.model", description="Model name."),
          AGE)),
    Kind("ToolRegistry", "toolregistries", ("treg",), ToolRegistry, ToolRegistrySpec, ToolRegistryStatus,
         "ToolRegistry offers tool handlers (HTTP endpoints) that replace same-name tools of a bundle when an "
         "ArenaJob selects the registry by label.",
         (READY, AGE)),
)

KINDS_BY_NAME: dict[str, Kind] = {kind.kind: kind for kind in KINDS}
KINDS_BY_PLURAL: dict[str, Kind] = {kind.plural: kind for kind in KINDS}


class ManifestError(ValueError):
    """A manifest that is not a valid object of our kinds; ``problems`` are ``path: message`` lines."""

    def __init__(self, problems: list[str], name: str = "manifest") -> None:
        super().__init__(f"{name} is invalid:\n" + "\n".join(f"  {problem}" for problem in problems))
        self.problems = problems


def _path(location: tuple[int | str, ...]) -> str:
    """``('spec', 'handlers', 0, 'name')`` → ``spec.handlers[0].name``, as kubectl prints field paths."""
    text = ""
    for step in location:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "(root)"


def spec_problems(error: ValidationError) -> str:
    """A spec's validation errors as one condition message: `spec.workers.replicas: …; spec.type: …`."""
    problems = (problem.partition(": ") for problem in validation_problems(error))
    return "; ".join(f"spec{'' if path == '(root)' else '.' + path}: {message}" for path, _, message in problems)


def validation_problems(error: ValidationError) -> list[str]:
    """Readable ``path: message`` lines from a pydantic error (paths in wire names, i.e. camelCase)."""
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "literal_error":
            message = f"{message}, got {item['input']!r}"
        problems.append(f"{_path(item['loc'])}: {message}")
    return problems


def parse_object(manifest: Mapping[str, Any]) -> ArenaObject:
    """Validate a manifest (a dict as read from YAML or the API) and return the model of its kind.

    Raises :class:`ManifestError` for a foreign apiVersion, an unknown kind, or invalid fields, with every
    problem on its own line prefixed by the field path (``spec.output: s3 is required when type is 's3'``).
    """
    kind_name = manifest.get("kind")
    name = f"{kind_name or 'object'} {(manifest.get('metadata') or {}).get('name') or ''}".strip()
    if manifest.get("apiVersion") != API_VERSION:
        raise ManifestError([f"apiVersion: expected {API_VERSION!r}, got {manifest.get('apiVersion')!r}"], name)
    kind = KINDS_BY_NAME.get(str(kind_name))
    if kind is None:
        raise ManifestError([f"kind: expected one of {', '.join(KINDS_BY_NAME)}, got {kind_name!r}"], name)
    try:
        return kind.model.model_validate(dict(manifest))
    except ValidationError as exc:
        raise ManifestError(validation_problems(exc), name) from exc
