"""Pydantic models of the PromptKit bundle kinds. Unknown keys are kept (forward-compatible).

A bundle is untrusted input: the files it references stay inside it (relative, no `..`; symlinks are checked
where the file is opened, bundle.py), durations are finite, and the sizes it may ask for are bounded."""

from __future__ import annotations

import difflib
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from .durations import parse_duration
from .workflow.spec import SkillSource, WorkflowSpec

MAX_CONCURRENCY = 1000  # defaults.concurrency: runs in flight in `arena run`
MAX_TURNS = 1000  # a self-play turn's generated turns
MAX_EXEC_TIMEOUT_MS = 600_000  # an exec tool's time limit


def _inside_bundle(value: str) -> str:
    path = PurePosixPath(value)
    if not value or "\x00" in value or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{value!r} must be a path inside the bundle: relative, without '..'")
    return value


def _finite_duration(value: str) -> str:
    parse_duration(value, 0.0)  # ValueError: not a duration, or nan / inf / negative
    return value


BundlePath = Annotated[str, AfterValidator(_inside_bundle)]
"""A file the bundle references, relative to its root; it must not climb out of it."""
BundleDuration = Annotated[str, AfterValidator(_finite_duration)]


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FileRef(Model):
    file: BundlePath


class PromptConfigRef(Model):
    id: str | None = None
    file: BundlePath
    vars: dict[str, Any] = Field(default_factory=dict)


class ProviderRef(Model):
    file: BundlePath
    group: str = "default"


class SelfPlayRole(Model):
    id: str
    provider: str


class SelfPlaySettings(Model):
    enabled: bool = True
    personas: list[FileRef] = Field(default_factory=list)
    roles: list[SelfPlayRole] = Field(default_factory=list)


class JudgeRef(Model):
    name: str = ""
    provider: str
    model: str | None = None


class OutputSettings(Model):
    dir: str = "out"
    formats: list[str] = Field(default_factory=lambda: ["json"])
    junit: dict[str, Any] | None = None


class Defaults(Model):
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    concurrency: int = Field(default=6, ge=1, le=MAX_CONCURRENCY)
    run_timeout: BundleDuration = "5m"
    output: OutputSettings = Field(default_factory=OutputSettings)
    verbose: bool = False


class Globals(Model):
    conversation_assertions: list[AssertionSpec] = Field(default_factory=list)


class ArenaSpec(Model):
    prompt_configs: list[PromptConfigRef] = Field(default_factory=list)
    providers: list[ProviderRef] = Field(default_factory=list)
    scenarios: list[FileRef] = Field(default_factory=list)
    tools: list[FileRef] = Field(default_factory=list)
    evals: list[FileRef] = Field(default_factory=list)
    self_play: SelfPlaySettings | None = None
    judges: list[JudgeRef] = Field(default_factory=list)
    judge_specs: dict[str, JudgeRef] = Field(default_factory=dict)  # inline judges: name → {provider}
    judge_defaults: dict[str, Any] = Field(default_factory=dict)
    globals: Globals = Field(default_factory=Globals)
    provider_specs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    scenario_specs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tool_specs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    prompt_specs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    workflow: WorkflowSpec | None = None
    skills: list[SkillSource] = Field(default_factory=list)
    defaults: Defaults


class When(Model):
    tool_called: str | None = None
    tool_called_pattern: str | None = None
    any_tool_called: bool | None = None
    min_tool_calls: int | None = None


class AssertionSpec(Model):
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    when: When | None = None
    pass_threshold: float | None = Field(default=None, ge=0, le=1)  # minimum pass rate across trials
    min_score: float | None = None  # arena-operator's older spelling; upstream puts thresholds in params
    max_score: float | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _none_params(cls, value: Any) -> Any:
        return {} if value is None else value


class Turn(Model):
    role: str
    content: str | None = None
    parts: list[dict[str, Any]] | None = None
    assertions: list[AssertionSpec] = Field(default_factory=list)
    persona: str | None = None
    turns: int = Field(default=1, ge=1, le=MAX_TURNS)
    max_turns: int | None = Field(default=None, ge=1, le=MAX_TURNS)
    streaming: bool | None = None
    # Read by upstream's conversation machinery (next release); loaded and kept here.
    assistant_temp: float | None = None
    user_temp: float | None = None
    seed: int | None = None
    consent_overrides: dict[str, str] | None = None
    perturbations: dict[str, list[str]] | None = None
    chaos: dict[str, Any] | None = None

    @field_validator("turns", mode="before")
    @classmethod
    def _zero_turns(cls, value: Any) -> Any:
        return 1 if value == 0 else value  # upstream treats 0 as the default


class ToolPolicy(Model):
    tool_choice: str | None = None
    max_tool_calls_per_turn: int = Field(default=10, ge=0)
    max_total_tool_calls: int | None = Field(default=None, ge=0)
    blocklist: list[str] = Field(default_factory=list)


class ScenarioSpec(Model):
    id: str | None = None
    description: str
    mode: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    context_metadata: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None
    duplex: dict[str, Any] | None = None
    voice: str | None = None
    seed_memories: list[dict[str, Any]] = Field(default_factory=list)
    task_type: str | None = None
    turns: list[Turn] = Field(default_factory=list)
    conversation_assertions: list[AssertionSpec] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    providers: list[str] | None = None
    provider_group: str | None = None
    streaming: bool = False
    trials: int = Field(default=1, ge=1)
    tool_policy: ToolPolicy = Field(default_factory=ToolPolicy)
    context_policy: dict[str, Any] | None = None
    required_capabilities: list[str] = Field(default_factory=list)


ProviderRole = Literal["llm", "tts", "stt", "embedding", "image", "video", "inference"]
# Every provider type upstream PromptKit registers (which of them run here: providers/registry.py).
PROVIDER_TYPES = ("openai", "claude", "gemini", "ollama", "vllm", "mock", "replay", "imagen", "huggingface",
                  "elevenlabs", "cartesia", "voyageai")


class ProviderDefaults(Model):
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


class Pricing(Model):
    input_cost_per_1k: float = 0.0
    output_cost_per_1k: float = 0.0


class Credential(Model):
    """Where the API key comes from: the name of an environment variable, never the key itself."""

    credential_env: str | None = None
    api_key_env: str | None = None


class RateLimit(Model):
    max_concurrency: int | None = Field(default=None, ge=1)
    rps: float | None = Field(default=None, gt=0)


class ProviderSpec(Model):
    id: str | None = None
    type: str  # which types can run is providers/registry.py's business: any type upstream names loads
    role: ProviderRole = "llm"
    capabilities: list[str] = Field(default_factory=list)
    platform: dict[str, Any] | None = None  # bedrock, vertex, azure: a hosting platform in front of the API

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PROVIDER_TYPES:
            close = difflib.get_close_matches(value, PROVIDER_TYPES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown provider type {value!r}{hint}; upstream knows {', '.join(PROVIDER_TYPES)}")
        return value
    model: str = ""
    base_url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    defaults: ProviderDefaults = Field(default_factory=ProviderDefaults)
    pricing: Pricing | None = None
    credential: Credential = Field(default_factory=Credential)
    additional_config: dict[str, Any] = Field(default_factory=dict)
    timeout: BundleDuration = "60s"
    max_retries: int = Field(default=3, ge=0)


class Variable(Model):
    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    description: str | None = None


class Validator(Model):
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    enabled: bool = True
    fail_on_violation: bool | None = None  # in the PromptPack spec; upstream always enforces

    @field_validator("params", mode="before")
    @classmethod
    def _none_params(cls, value: Any) -> Any:
        return {} if value is None else value


class PromptConfigSpec(Model):
    task_type: str
    version: str | None = None
    description: str | None = None
    system_template: str
    variables: list[Variable] = Field(default_factory=list)
    allowed_tools: list[str] = Field(default_factory=list)
    validators: list[Validator] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)


class HttpToolConfig(Model):
    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int = Field(default=10_000, gt=0)


class ExecToolConfig(Model):
    """Upstream's `exec:` block: a command speaking JSON on stdin/stdout (engine/exec_tools.py)."""

    command: str = Field(min_length=1)
    runtime: Literal["exec", "server"] = "exec"
    args: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)  # names of variables passed through, never values
    timeout_ms: int = Field(default=0, ge=0, le=MAX_EXEC_TIMEOUT_MS)


class ToolSpec(Model):
    name: str = ""  # upstream names a tool by metadata.name (or its inline key); the loader fills this in
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None
    mode: Literal["mock", "live", "mcp", "exec", "client", "a2a"] = "mock"
    mock_result: Any = None
    mock_template: str | None = None
    mock_parts: list[Any] | None = None  # content parts beside the result (media.py)
    http: HttpToolConfig | None = None
    exec: ExecToolConfig | None = None  # mode exec: run in the sandbox (engine/sandbox.py), when enabled


class PersonaStyle(Model):
    verbosity: str | None = None
    challenge_level: str | None = None
    friction_tags: list[str] = Field(default_factory=list)


class PersonaDefaults(Model):
    temperature: float = 0.7
    seed: int = 42


class PersonaSpec(Model):
    id: str | None = None
    description: str = ""
    goals: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    system_template: str | None = None
    system_prompt: str | None = None
    required_vars: list[str] = Field(default_factory=list)
    optional_vars: dict[str, Any] | list[str] = Field(default_factory=dict)
    style: PersonaStyle = Field(default_factory=PersonaStyle)
    defaults: PersonaDefaults = Field(default_factory=PersonaDefaults)


ArenaSpec.model_rebuild()
Globals.model_rebuild()
