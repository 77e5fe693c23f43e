"""ArenaJob: one run (or, with ``schedule``, a template of recurring runs) of an ArenaConfig or an ArenaSource.

Every field of the documented ArenaJob reference is here with its documented default, so manifests written
for the documented system apply unchanged. Two fields are ours: ``suspend`` (how a running job is
cancelled without deleting it) and ``maxAttempts`` (how often a failing work unit is retried). The fields of
the Go operator's current form (``sourceRef`` + ``arenaFile`` instead of ``configRef``, ``trials``,
``providers``, ``toolRegistries``, ``workers.podOverrides``, ``cancelled``, ``verbose``, ``sessionRecording``,
the load-test block) are accepted too (``compat.py``); ``runplan/forms.py`` maps both onto one model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .arenaconfig import ScenarioFilter
from .common import (
    MAX_ATTEMPTS,
    MAX_COMMAND_LENGTH,
    MAX_DATAGEN_COUNT,
    MAX_LOAD_VUS,
    MAX_MCP_STDIO_COMMANDS,
    MAX_TARGET_RPS,
    MAX_TRIALS,
    MAX_VUS_PER_WORKER,
    MAX_WORKERS,
    ApiModel,
    ArenaObject,
    Condition,
    Duration,
    KeyPrefix,
    LabelSelector,
    LocalObjectReference,
    RelativePath,
    SecretReference,
    Time,
    check_type_block,
    conditions_field,
    free_form,
    observed_generation_field,
    type_block_rules,
)
from .compat import LoadThreshold, ProviderGroup, RampSettings
from .pods import PodOverrides
from .templates import CompareSpec, LastRun, ScheduleSpec, TriggerSpec

JobType = Literal["evaluation", "loadtest", "datagen"]
JobPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled", "Scheduled"]
OutputFormat = Literal["junit", "json", "csv"]
OUTPUT_BLOCKS: dict[str, str] = {"s3": "s3", "pvc": "pvc"}
LOAD_TARGET_MISSING = ("type loadtest needs loadTest.targetRPS (open model) or loadTest.concurrency / "
                       "loadTest.vusPerWorker (closed model)")


class EvaluationSettings(ApiModel):
    """Settings for type evaluation."""

    output_formats: list[OutputFormat] | None = Field(
        None, description="Result formats to write besides the summary: junit, json, csv. Defaults to all.")


class LoadTestSettings(ApiModel):
    """Settings for type loadtest: with targetRPS an open model (scenario runs started per second, whatever the
    provider's latency: arrivals that cannot start are counted as dropped), else a closed model of concurrency /
    vusPerWorker virtual users running scenarios back to back (the Go operator's form)."""

    ramp_up: Duration = Field("30s", description="Time to ramp the arrival rate up from zero to targetRPS.")
    duration: Duration = Field("5m", description="Total test duration, ramp-up included.")
    target_rps: int | None = Field(None, alias="targetRPS", ge=1, le=MAX_TARGET_RPS,
                                   description="Target scenario runs started per second across all workers.")
    concurrency: int | None = Field(None, ge=1, le=MAX_LOAD_VUS,
                                    description="Go form: virtual users (runs in flight) across all workers; with "
                                                "targetRPS, the cap on runs in flight.")
    vus_per_worker: int | None = Field(None, ge=1, le=MAX_VUS_PER_WORKER,
                                       description="Go form: virtual users per worker pod; with targetRPS, the cap on "
                                                   "runs in flight per worker.")
    ramp: RampSettings | None = Field(None, description="Go form: ramp-up and ramp-down.")
    budget_limit: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?$",
                                     description="Go form: cost (in budgetCurrency) at which the test stops, "
                                                 "failing with reason BudgetExceeded (results are kept).")
    budget_currency: str | None = Field(None, description="Go form: currency of budgetLimit, e.g. USD.")
    thresholds: list[LoadThreshold] | None = Field(None, description="Go form: SLOs checked after the test.")


class DataGenSettings(ApiModel):
    """Settings for type datagen."""

    count: int = Field(100, ge=1, le=MAX_DATAGEN_COUNT,
                       description="Number of items to generate (exactly this many are written).")
    format: Literal["json", "jsonl", "csv"] = Field("jsonl", description="Output format: json, jsonl or csv.")
    dedupe: bool = Field(True, description="Drop items whose normalised content was already generated (checked "
                                           "across all workers) and generate replacements.")
    seed: int | None = Field(None, ge=0, description="Base seed of the items' seeds (each item records its own); "
                                                     "defaults to the arena file's defaults.seed, else 42.")


class WorkerSettings(ApiModel):
    """The worker pool; replicas for a fixed size, minReplicas/maxReplicas for autoscaling."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must not be greater than maxReplicas",
    }]})

    replicas: int = Field(1, ge=1, le=MAX_WORKERS, description="Number of worker pods.")
    min_replicas: int | None = Field(None, ge=1, le=MAX_WORKERS, description="Minimum worker pods when autoscaling.")
    max_replicas: int | None = Field(None, ge=1, le=MAX_WORKERS, description="Maximum worker pods when autoscaling.")
    pod_overrides: PodOverrides | None = Field(None, description="Scheduling, identity and injection settings "
                                                                 "merged into every worker pod.")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> WorkerSettings:
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not be greater than maxReplicas "
                             f"({self.max_replicas})")
        return self


StdioCommand = Annotated[str, Field(min_length=1, max_length=MAX_COMMAND_LENGTH, pattern=r"^\S+$")]


class McpSettings(ApiModel):
    """The bundle's MCP servers in this job's worker pods."""

    allow_stdio_commands: list[StdioCommand] | None = Field(
        None, max_length=MAX_MCP_STDIO_COMMANDS,
        description="Commands the bundle's stdio MCP servers may run inside the worker pods, exactly as the "
                    "bundle's mcp_servers[].command writes them (e.g. npx, python, /opt/mcp/server). A stdio "
                    "server whose command is not listed fails its runs (error kind mcp_start), as do all of them "
                    "unless the cluster admin allows stdio MCP servers (Helm value mcp.allowStdio). Default: "
                    "none. HTTP servers (url) need no entry: the egress policy applies to them.")


class ExecSettings(ApiModel):
    """The bundle's exec tools in this job's worker pods."""

    allow_tools: bool | None = Field(
        None, description="Let the bundle's exec tools (and tool_exec assertions through them) run in the worker "
                          "pods, each in a sandbox (no network, a scratch directory, a scrubbed environment, time "
                          "and output limits). They run only when the cluster admin allows exec tools too (Helm "
                          "value exec.allowTools); otherwise each call fails (exec_disabled). Default: false.")


class ProviderOverride(ApiModel):
    """Providers for one group, chosen at run time from Provider objects by label."""

    selector: LabelSelector = Field(description="Label selector for Provider objects in the job's namespace.")


class ToolRegistryOverride(ApiModel):
    """Tools from ToolRegistry objects that replace same-name tools of the bundle."""

    selector: LabelSelector = Field(description="Label selector for ToolRegistry objects in the job's namespace.")


class S3Output(ApiModel):
    """An S3 (or S3-compatible) bucket for results."""

    bucket: str = Field(min_length=1, description="Bucket name.")
    prefix: KeyPrefix | None = Field(None, description="Key prefix; results go to <prefix><namespace>/<job>/. No "
                                                       "'..' segment.")
    region: str | None = Field(None, description="Region, e.g. us-west-2.")
    endpoint: str | None = Field(None, description="Endpoint URL of an S3-compatible store (MinIO, Ceph, ...).")
    secret_ref: SecretReference | None = Field(
        None, description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally "
                          "AWS_SESSION_TOKEN); defaults to the worker's ambient credentials.")


class PVCOutput(ApiModel):
    """A PersistentVolumeClaim for results, mounted by the workers."""

    claim_name: str = Field(min_length=1, description="Name of the PersistentVolumeClaim, in the job's namespace.")
    sub_path: KeyPrefix | None = Field(None, description="Directory inside the volume; no '..' segment.")


class OutputSpec(ApiModel):
    """Where results go; the block matching type must be set."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": type_block_rules(OUTPUT_BLOCKS)})

    type: Literal["s3", "pvc"] = Field(description="Destination: s3 or pvc. The block of the same name must be "
                                                   "set.")
    s3: S3Output | None = Field(None, description="S3 settings, for type s3.")
    pvc: PVCOutput | None = Field(None, description="PVC settings, for type pvc.")

    @model_validator(mode="after")
    def _block_for_type(self) -> OutputSpec:
        check_type_block(self, OUTPUT_BLOCKS)
        return self


class ArenaJobSpec(ApiModel):
    """Desired state of an ArenaJob."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "has(self.configRef) != has(self.sourceRef)",
        "message": "set exactly one of configRef and sourceRef"}, {
        "rule": "!has(self.type) || self.type != 'loadtest' || (has(self.loadTest) && (has(self.loadTest.targetRPS) "
                "|| has(self.loadTest.concurrency) || has(self.loadTest.vusPerWorker)))",
        "message": LOAD_TARGET_MISSING}]})

    config_ref: LocalObjectReference | None = Field(None, description="The ArenaConfig to run (or sourceRef).")
    source_ref: LocalObjectReference | None = Field(
        None, description="The ArenaSource to run directly, without an ArenaConfig (the Go operator's form): the "
                          "job waits for its artifact and validates the bundle itself (condition SourceValid).")
    arena_file: RelativePath | None = Field(
        None, description="Arena file inside the bundle. With sourceRef it defaults to config.arena.yaml; with "
                          "configRef it overrides the ArenaConfig's arenaFile.")
    trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="Runs per scenario × provider; overrides the "
                                                                      "ArenaConfig's trials (default 1).")
    type: JobType = Field("evaluation", description="Job type: evaluation (run scenarios and assertions), "
                                                    "loadtest (drive providers at a target rate) or datagen "
                                                    "(generate synthetic data).")
    scenarios: ScenarioFilter | None = Field(None, description="Overrides the ArenaConfig's scenario selection.")
    evaluation: EvaluationSettings | None = Field(None, description="Settings for type evaluation.")
    load_test: LoadTestSettings | None = Field(None, description="Settings for type loadtest.")
    data_gen: DataGenSettings | None = Field(None, description="Settings for type datagen.")
    workers: WorkerSettings | None = Field(None, description="Worker pool; defaults to the ArenaConfig's workers, "
                                                             "else one replica.")
    provider_overrides: dict[str, ProviderOverride] | None = Field(
        None, description="Providers per group (group name → selector) chosen from Provider objects at run "
                          "time; '*' matches every group not listed.")
    providers: dict[str, ProviderGroup] | None = Field(
        None, description="Go form: Provider objects per group (group → list of {providerRef} entries, or group → "
                          "map of bundle provider id → entry). For a group it names, it wins over "
                          "providerOverrides (condition SpecWarning says so).")
    tool_registry_override: ToolRegistryOverride | None = Field(
        None, description="ToolRegistry objects whose tools replace same-name tools of the bundle.")
    tool_registries: list[LocalObjectReference] | None = Field(
        None, description="Go form: ToolRegistry objects by name, whose tools replace same-name tools of the "
                          "bundle. Wins over toolRegistryOverride when both are set (condition SpecWarning).")
    output: OutputSpec | None = Field(None, description="Where detailed results are written (S3 or a PVC). The "
                                                        "summary is always recorded in status.result.")
    schedule: ScheduleSpec | None = Field(None, description="Run on a cron schedule; each trigger creates a child "
                                                            "ArenaJob from this one.")
    trigger: TriggerSpec | None = Field(None, description="Create a child run when the source's revision changes.")
    compare: CompareSpec | None = Field(None, description="Compare each finished run with a baseline (default: "
                                                          "the template's last Succeeded run).")
    successful_jobs_history_limit: int = Field(3, ge=0, description="Succeeded children a template keeps.")
    failed_jobs_history_limit: int = Field(1, ge=0, description="Failed or Cancelled children a template keeps.")
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the job this many seconds after it finished (results in the output "
                                "are kept).")
    suspend: bool = Field(False, description="Set to true to cancel a running job (it ends Cancelled), or to "
                                             "pause a schedule.")
    cancelled: bool | None = Field(None, description="Go form of suspend: true cancels a running job (or pauses "
                                                     "a schedule), exactly as suspend: true does.")
    verbose: bool | None = Field(None, description="Debug logging in the worker pods (ARENA_LOG_LEVEL=DEBUG).")
    mcp: McpSettings | None = Field(None, description="The bundle's MCP servers: which stdio server commands the "
                                                      "worker pods may run.")
    exec: ExecSettings | None = Field(None, description="The bundle's exec tools: whether the worker pods may run "
                                                        "them.")
    session_recording: bool | None = Field(
        None, description="Go form: accepted and kept; this operator has no session API, and every run's "
                          "transcript is in the results (units/<id>.json) whatever its value.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="The run fails DeadlineExceeded (workers stopped, partial results kept) once this "
                                "many seconds have passed since the job was created, whatever it is waiting for.")
    max_attempts: int = Field(3, ge=1, le=MAX_ATTEMPTS,
                              description="Attempts per work unit before it is recorded as failed.")

    @model_validator(mode="after")
    def _config_or_source(self) -> ArenaJobSpec:
        if (self.config_ref is None) == (self.source_ref is None):
            raise ValueError("set exactly one of configRef and sourceRef")
        load = self.load_test
        if self.type == "loadtest" and not (load and (load.target_rps or load.concurrency or load.vus_per_worker)):
            raise ValueError(LOAD_TARGET_MISSING)
        return self

    @property
    def cancel_requested(self) -> bool:
        """suspend: true or (Go form) cancelled: true."""
        return bool(self.suspend or self.cancelled)


class JobProgress(ApiModel):
    """Work-unit counters, read from the queue's exactly-once counters."""

    total: int = Field(0, ge=0, description="Work units planned (type datagen: items to generate).")
    completed: int = Field(0, ge=0, description="Work units finished (passed or with failed assertions); type "
                                                "datagen: items written.")
    failed: int = Field(0, ge=0, description="Work units that errored on every attempt (type datagen: the items "
                                             "of shards that failed).")
    pending: int = Field(0, ge=0, description="Work units not finished yet (type datagen: items).")


class JobResult(ApiModel):
    """Where the results are and what they say."""

    url: str | None = Field(None, description="Location of the detailed results: s3://bucket/prefix/... or "
                                              "pvc://claim/path/...")
    comparison: dict[str, Any] | None = free_form("The comparison with the baseline run: counts per change "
                                                  "and the top regressions.")
    summary: dict[str, Any] | None = free_form("Aggregated metrics (totals, pass rate, latency, cost, per "
                                               "provider); free-form, its keys depend on the job type.")


class ResolvedTool(ApiModel):
    """A bundle tool replaced by a ToolRegistry handler."""

    name: str = Field(description="Tool name, as the bundle and the model call it.")
    registry: str = Field(description="The ToolRegistry it came from.")
    handler: str | None = Field(None, description="The handler within that registry.")
    endpoint: str | None = Field(None, description="The endpoint calls are sent to.")


class ArenaJobStatus(ApiModel):
    """Observed state of an ArenaJob."""

    phase: JobPhase | None = Field(None, description="Pending, Running, Succeeded, Failed or Cancelled; "
                                                     "Scheduled for a template (schedule or trigger).")
    message: str | None = Field(None, description="Human-readable explanation of the phase.")
    progress: JobProgress | None = Field(None, description="Work-unit counters, updated while the job runs.")
    progress_text: str | None = Field(
        None, description="completed/total (e.g. 37/120), written by the operator with progress so that "
                          "kubectl get can show it (printer columns cannot compute).")
    result: JobResult | None = Field(None, description="Results, once the job finished.")
    conditions: list[Condition] = conditions_field("Ready, ConfigValid, JobCreated, Progressing")
    start_time: Time | None = Field(None, description="When the job started running.")
    completion_time: Time | None = Field(None, description="When the job finished (any final phase).")
    last_schedule_time: Time | None = Field(None, description="When the schedule last created a run.")
    next_schedule_time: Time | None = Field(None, description="When the schedule will next create a run.")
    active_workers: int | None = Field(None, ge=0, description="Worker pods currently running.")
    active: list[str] | None = Field(None, description="A template's children that have not finished.")
    last_successful_time: Time | None = Field(None, description="When a template's child last Succeeded.")
    last_run: LastRun | None = Field(None, description="A template's last finished child.")
    last_triggered_revision: str | None = Field(None, description="The source revision a trigger last ran.")
    seen_revision: str | None = Field(None, description="A new source revision waiting out the trigger's "
                                                        "debounce.")
    seen_time: Time | None = Field(None, description="When seenRevision was first seen.")
    artifact_digest: str | None = Field(None, description="sha256 of the bundle artifact this run was planned "
                                                          "from (with status.revision: what exactly ran).")
    observed_generation: int | None = observed_generation_field()
    resolved_providers: dict[str, list[str]] | None = Field(
        None, description="Provider names per group as resolved when the job started (overrides applied), for "
                          "reproducibility.")
    resolved_tools: list[ResolvedTool] | None = Field(
        None, description="Bundle tools replaced by ToolRegistry handlers when the job started.")


class ArenaJob(ArenaObject):
    """An ArenaJob object as stored by the API server."""

    kind: Literal["ArenaJob"] = Field("ArenaJob", description="Kind.")
    spec: ArenaJobSpec = Field(description="Desired state.")
    status: ArenaJobStatus | None = Field(None, description="Observed state.")
