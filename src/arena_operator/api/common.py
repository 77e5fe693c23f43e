"""Building blocks shared by every kind: base models, durations, times, references, selectors, conditions.

The pydantic models in ``api/`` are the single source of truth for the five custom resources: the operator
parses objects with them and ``api/crds.py`` renders the CRD schemas from them. So every choice here shows in
both places: camelCase aliases (the wire names), ``extra="forbid"`` (a typo is an error with its path, as
the API server's strict field validation reports it), strict types (``replicas: "5"`` is rejected here as the
CRD schema rejects it), and a ``description`` on every field (it becomes ``kubectl explain`` text).
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

GROUP = "omnia.altairalabs.ai"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
REQUESTED_AT_ANNOTATION = f"{GROUP}/reconcile-requested-at"
"""Set to any new value (e.g. the current time) to ask for an immediate reconcile, as Flux's
``reconcile.fluxcd.io/requestedAt``; the value handled last is recorded in ``status.lastHandledReconcileAt``."""
FLUX_REQUESTED_AT_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
"""Flux's own manual-trigger annotation (`flux reconcile`), honoured the same way."""
FINALIZER = f"{GROUP}/finalizer"
ANNOTATION_PREFIX = GROUP  # kopf's progress and diff-base annotations live under the group
LABEL_ARENAJOB = f"{GROUP}/arenajob"
"""On a worker batch/v1 Job and its pods: the owning ArenaJob's name (the operator's index selects by it)."""
LABEL_PARENT = f"{GROUP}/parent"
"""On a child ArenaJob: the template (schedule or trigger) that created it."""
LABEL_RUN_CAUSE = f"{GROUP}/run-cause"
"""On a child ArenaJob: schedule or source-change."""
LABEL_REVISION_HASH = f"{GROUP}/revision-hash"
"""On a child created by a source change: a hash of the revision it runs (revisions are not label-safe)."""
ANNOTATION_SCHEDULED_AT = f"{GROUP}/scheduled-at"
ANNOTATION_PINNED_REVISION = f"{GROUP}/pinned-revision"
ANNOTATION_PINNED_DIGEST = f"{GROUP}/pinned-digest"
"""On a child created by a source change: the revision and artifact digest it must run, whatever comes later."""
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
"""JSON-schema key that marks a free-form object; ``crds.py`` refuses free-form objects without it."""
INT_OR_STRING = "x-kubernetes-int-or-string"
"""JSON-schema key of a value that is an integer or a string (a resource quantity); such a node has no type."""
ANY_JSON = "x-arena-any-json"
"""Our own JSON-schema marker (``crds.py`` consumes it): a node that holds any JSON value, an array or an object,
rendered untyped with ``x-kubernetes-preserve-unknown-fields`` (the structural-schema exception). The model
validates the value; the API server keeps it as written."""
MAX_PATH = 1024
"""Longest relative path a spec may name (bounds the CEL cost of the traversal rule)."""
# Upper bounds a namespace owner may ask for: far above any real run, far below what exhausts the operator, Redis or
# the cluster (the plan itself is bounded by ARENA_MAX_UNITS, counted without being built).
MAX_WORKERS = 1000
MAX_TRIALS = 10_000
MAX_CONCURRENCY = 1000  # work units one worker runs at once
MAX_LOAD_VUS = 100_000
MAX_VUS_PER_WORKER = 10_000
MAX_TARGET_RPS = 100_000
MAX_DATAGEN_COUNT = 10_000_000
MAX_ATTEMPTS = 100
MAX_MCP_STDIO_COMMANDS = 32  # spec.mcp.allowStdioCommands: commands a job's worker pods may run as MCP servers
MAX_COMMAND_LENGTH = 256
MIN_SOURCE_INTERVAL = "10s"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ApiModel(BaseModel):
    """Base of every spec and status model: wire names in camelCase, unknown fields and loose types rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        validate_assignment=True,
    )


def rfc3339(value: datetime.datetime) -> str:
    """Kubernetes ``metav1.Time`` is RFC 3339 with second precision and a ``Z``: write exactly that."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> datetime.datetime | None:
    """A status timestamp back to a datetime; None when absent or unreadable (then treated as "not set")."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


Time = Annotated[datetime.datetime, Field(strict=False), PlainSerializer(rfc3339, when_used="json")]
"""A timestamp: parsed from RFC 3339 strings (as the API returns them), written back as ``…Z`` seconds."""

MAX_DURATION_LENGTH = 64
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=MAX_DURATION_LENGTH)]
"""A Go-style duration string such as ``30s``, ``5m``, ``1h30m`` or ``1.5s`` (units ms, s, m, h)."""


def utcnow() -> datetime.datetime:
    """The current time truncated to seconds, so a value read back from the API compares equal."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def parse_duration(value: str) -> datetime.timedelta:
    """``"1h30m"`` → ``timedelta(hours=1, minutes=30)``; raises ``ValueError`` on anything the CRD rejects."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: use a number with a unit (ms, s, m, h), e.g. 30s, 5m, 1h30m")
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(value))
    return datetime.timedelta(seconds=seconds)


def duration_at_least(minimum: str) -> Any:
    """A :data:`Duration` refused below ``minimum`` (e.g. ``interval: 0s``, a hot loop): by the model, and in the CRD
    by a CEL rule (CEL's ``duration()`` reads Go durations, a superset of ours)."""
    floor = parse_duration(minimum)
    message = f"must be at least {minimum}"

    def check(value: str) -> str:
        if parse_duration(value) < floor:
            raise ValueError(f"{value!r} {message}")
        return value

    return Annotated[Duration, AfterValidator(check), Field(json_schema_extra={"x-kubernetes-validations": [
        {"rule": f"duration(self) >= duration('{minimum}')", "message": message}]})]


def free_form(description: str) -> Any:
    """A ``Field`` for an object whose content the operator does not constrain (e.g. a JSON schema).

    Only fields built with this helper carry ``x-kubernetes-preserve-unknown-fields`` in the CRDs, so the
    API server keeps (rather than prunes) their content while every other field stays structural.
    """
    return Field(None, description=description, json_schema_extra={PRESERVE_UNKNOWN: True})


FreeObject = Annotated[dict[str, Any], WithJsonSchema({"type": "object", PRESERVE_UNKNOWN: True})]
"""A list item whose content the operator does not constrain (e.g. a core/v1 Volume), kept as written."""


def any_json(description: str) -> Any:
    """The JSON schema of a field that is an array or an object (see :data:`ANY_JSON`)."""
    return WithJsonSchema({ANY_JSON: True, PRESERVE_UNKNOWN: True, "description": description})


_QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$")


def _quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a resource quantity (e.g. 500m, 2, 1Gi)")
    return value


Quantity = Annotated[int | str, AfterValidator(_quantity), WithJsonSchema({INT_OR_STRING: True})]
"""A Kubernetes resource quantity: ``2``, ``500m``, ``1Gi``."""


def _relative_path(value: str) -> str:
    parts = value.split("/")
    if not value or value.startswith("/") or ".." in parts or "\x00" in value or "\\" in value:
        raise ValueError(f"{value!r} must be a relative path inside the root: no leading '/', no '..', no "
                         "backslash")
    return value


RELATIVE_PATH_RULE = {
    "rule": "!self.startsWith('/') && self != '..' && !self.startsWith('../') && !self.endsWith('/..') && "
            "!self.contains('/../')",
    "message": "must be a relative path inside the root: no leading '/', no '..'",
}
RelativePath = Annotated[str, Field(max_length=MAX_PATH), AfterValidator(_relative_path), WithJsonSchema({
    "type": "string", "minLength": 1, "maxLength": MAX_PATH, "x-kubernetes-validations": [RELATIVE_PATH_RULE]})]
"""A path relative to some root (a bundle, a volume), refused when absolute or when it climbs out with ``..``."""


# One segment of a key prefix that is not "..": empty, ".", or anything else without a separator. RE2 (the API
# server's regex engine) has no lookahead, so "not '..'" is spelled out.
_SEGMENT = r"([^./\\][^/\\]*|\.[^./\\][^/\\]*|\.\.[^/\\]+|\.?)"
KEY_PREFIX_PATTERN = rf"^{_SEGMENT}([/\\]{_SEGMENT})*$"


def _key_prefix(value: str) -> str:
    if "\x00" in value or ".." in value.replace("\\", "/").split("/"):
        raise ValueError(f"{value!r} must not contain a '..' segment (nor a NUL): results stay under the prefix")
    return value


KeyPrefix = Annotated[str, Field(max_length=MAX_PATH), AfterValidator(_key_prefix), WithJsonSchema({
    "type": "string", "maxLength": MAX_PATH, "pattern": KEY_PREFIX_PATTERN})]
"""An S3 key prefix or a directory inside a volume: segments split by ``/`` (or ``\\``), none of them ``..``;
leading, trailing and doubled slashes are allowed (the sinks normalise them)."""


def type_block_rules(blocks: dict[str, str], type_field: str = "type") -> list[dict[str, str]]:
    """CEL rules like ``self.type != 'git' || has(self.git)``: the block matching ``type`` must be present.

    ``blocks`` maps each value of the type field to the wire name of its block. The API server enforces
    these rules; :func:`check_type_block` is the pydantic twin with the same message.
    """
    return [{"rule": f"self.{type_field} != '{value}' || has(self.{block})",
             "message": f"{block} is required when {type_field} is '{value}'"} for value, block in blocks.items()]


def check_type_block(model: BaseModel, blocks: dict[str, str], type_field: str = "type") -> None:
    """Raise ``ValueError`` when the block that ``type_field`` selects is missing (see :func:`type_block_rules`)."""
    value = getattr(model, type_field)
    block = blocks.get(value)
    if block is None:
        return
    attribute = next(name for name, field in type(model).model_fields.items() if (field.alias or name) == block)
    if getattr(model, attribute) is None:
        raise ValueError(f"{block} is required when {type_field} is '{value}'")


class LocalObjectReference(ApiModel):
    """A reference by name to an object in the same namespace (``{name: …}``, as in core Kubernetes)."""

    name: str = Field(min_length=1, description="Name of the referenced object, in the same namespace.")


class SecretReference(ApiModel):
    """A Secret in the same namespace; which keys are read is documented where it is used."""

    name: str = Field(min_length=1, description="Name of the Secret, in the same namespace.")


class LabelSelectorRequirement(ApiModel):
    """One ``matchExpressions`` term of a Kubernetes label selector.

    The values/operator rule is checked here but not as a CEL rule in the CRD: the term sits in a list inside
    a map (``providerOverrides``), and the API server's static cost estimate for a rule there exceeds its
    budget unless both are bounded, which real selectors are not. The operator reports it as ConfigValid=False.
    """

    key: str = Field(min_length=1, description="The label key the requirement applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the label's value relates to values: In, NotIn, Exists or DoesNotExist.")
    values: list[str] | None = Field(
        None, description="Label values for In and NotIn (must be non-empty then); empty for Exists and "
                          "DoesNotExist.")

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        needs_values = self.operator in ("In", "NotIn")
        if needs_values != bool(self.values):
            raise ValueError("values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist")
        return self


class LabelSelector(ApiModel):
    """A standard Kubernetes label selector (``metav1.LabelSelector``); all terms are ANDed."""

    match_labels: dict[str, str] | None = Field(
        None, description="Labels that must all be present with exactly these values.")
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        None, description="Set-based requirements (In, NotIn, Exists, DoesNotExist); all must hold.")


class Condition(ApiModel):
    """One observation of the object's state, in the shape of the standard metav1.Condition."""

    type: str = Field(min_length=1, max_length=316,
                      description="Type of condition in CamelCase, e.g. Ready. Unique within the list.")
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition: True, False or "
                                                                    "Unknown.")
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024,
                        description="Machine-readable CamelCase reason for the last transition, e.g. "
                                    "FetchFailed.")
    message: str = Field("", max_length=32768, description="Human-readable details about the last transition.")
    last_transition_time: Time = Field(description="When the condition last changed from one status to "
                                                   "another.")
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the condition was set for; older than the object's "
                                "generation means the condition may be stale.")


CONDITIONS_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
"""Server-side merge semantics of ``metav1.Condition`` lists: one entry per ``type``."""


def conditions_field(types: str) -> Any:
    """The ``conditions`` field of a status; ``types`` names the condition types the kind uses."""
    return Field(default_factory=list, json_schema_extra=CONDITIONS_LIST,
                 description=f"Current state of the object as standard conditions: {types}. Each carries the "
                             "generation it was computed for.")


def observed_generation_field() -> Any:
    """``status.observedGeneration``: the generation whose spec was fully handled."""
    return Field(None, ge=0, description="The metadata.generation of the spec the controller last finished "
                                         "handling; smaller than metadata.generation while a change is pending.")


class ObjectMeta(BaseModel):
    """The part of ``metadata`` the operator reads; everything else the API server sets is kept as-is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = Field(None, description="Name of the object, unique per kind within its namespace.")
    generate_name: str | None = Field(None, description="Prefix for a server-generated name.")
    namespace: str | None = Field(None, description="Namespace of the object.")
    labels: dict[str, str] | None = Field(None, description="Labels, used by selectors.")
    annotations: dict[str, str] | None = Field(None, description="Annotations.")
    uid: str | None = Field(None, description="Server-assigned unique id.")
    generation: int | None = Field(None, description="Server-incremented on every spec change.")
    resource_version: str | None = Field(None, description="Server-assigned version for optimistic concurrency.")


class ArenaObject(BaseModel):
    """Base of the five top-level kinds: apiVersion/kind/metadata envelope around a spec and a status.

    Unknown top-level keys are ignored rather than rejected: the API server itself owns that level.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    api_version: Literal["omnia.altairalabs.ai/v1alpha1"] = Field(API_VERSION, description="API group/version.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
