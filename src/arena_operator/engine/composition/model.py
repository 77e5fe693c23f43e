"""The arena file's `compositions:` (upstream's RFC 0010 step graphs) as models, with the limits a bundle may ask
for. Unknown keys are kept (and warned about by the checks), as everywhere in the bundle models."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..spec import Model

# Limits: a bundle is untrusted input, so what one composition may ask for is bounded.
MAX_COMPOSITIONS = 64  # per arena file
MAX_STEPS = 64  # per composition, parallel branches included
MAX_PARALLEL_BRANCHES = 16
MAX_PREDICATE_DEPTH = 8  # all_of / any_of / not nesting
MAX_AGENT_ROUNDS = 50  # an agent step's termination.max_steps; upstream's default tool-loop bound when unset
MAX_RETRY_ATTEMPTS = 5  # modifiers.retry.max_attempts
MAX_STEP_INPUT_CHARS = 1_000_000  # one step's resolved input text
MAX_SCHEMA_BYTES = 1024 * 1024  # an output_schema file

PROMPT, AGENT, TOOL, BRANCH, PARALLEL = "prompt", "agent", "tool", "branch", "parallel"
KINDS = (PROMPT, AGENT, TOOL, BRANCH, PARALLEL)
LEAF_KINDS = (PROMPT, AGENT, TOOL)
REDUCE_STRATEGIES = ("append", "replace", "barrier")
COMPARE_OPS = ("equals", "not_equals", "in", "not_in", "less_than", "less_than_or_equals", "greater_than",
               "greater_than_or_equals")
ORDERED_OPS = COMPARE_OPS[4:]
LIST_OPS = ("in", "not_in")
# The fields each kind may set (upstream's per-kind legality; depends_on and modifiers are allowed on every kind).
KIND_FIELDS = {
    PROMPT: {"prompt_task", "input", "output_schema"},
    AGENT: {"prompt_task", "input", "output_schema", "tools", "termination"},
    TOOL: {"tool", "args"},
    BRANCH: {"predicate", "then", "else"},
    PARALLEL: {"branches", "reduce"},
}
RESERVED_NAMES = ("workflow__transition", "workflow__set_artifact")
STEP_ID_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
PARALLEL_COMPLETE = "complete"
PARALLEL_FAILED = "failed"


class Termination(Model):
    max_steps: int = Field(default=0, ge=0, le=MAX_AGENT_ROUNDS)
    tool_called: str = ""


class Reducer(Model):
    strategy: str = ""
    into: str = ""


class Retry(Model):
    max_attempts: int = Field(default=1, ge=0, le=MAX_RETRY_ATTEMPTS)


class Modifiers(Model):
    retry: Retry | None = None
    eval: list[str] = Field(default_factory=list)  # pack eval keys, for observability only (upstream too)


class Predicate(Model):
    """Exactly one variant: compare (path, op, value), exists (path, exists), all_of, any_of or not."""

    path: str = ""
    op: str = ""
    value: Any = None
    exists: bool | None = None
    all_of: list[Predicate] | None = None
    any_of: list[Predicate] | None = None
    not_: Predicate | None = Field(default=None, alias="not")


class Step(Model):
    id: str
    kind: str
    depends_on: list[str] = Field(default_factory=list)
    modifiers: Modifiers | None = None
    prompt_task: str = ""
    input: Any = None
    output_schema: str = ""
    tools: list[str] = Field(default_factory=list)
    termination: Termination | None = None
    tool: str = ""
    args: dict[str, Any] | None = None
    predicate: Predicate | None = None
    then: str = ""
    else_: str = Field(default="", alias="else")
    branches: list[Step] = Field(default_factory=list)
    reduce: Reducer | None = None

    def set_fields(self) -> set[str]:
        """The kind-specific fields this step sets (upstream's presentKindFields)."""
        present = {"prompt_task": bool(self.prompt_task), "input": self.input is not None,
                   "output_schema": bool(self.output_schema), "tools": bool(self.tools),
                   "termination": self.termination is not None, "tool": bool(self.tool), "args": bool(self.args),
                   "predicate": self.predicate is not None, "then": bool(self.then), "else": bool(self.else_),
                   "branches": bool(self.branches), "reduce": self.reduce is not None}
        return {name for name, here in present.items() if here}

    @property
    def attempts(self) -> int:
        retry = self.modifiers.retry if self.modifiers else None
        return max(1, retry.max_attempts) if retry else 1


class Composition(Model):
    version: int = 0
    description: str = ""
    input_schema: str = ""
    output_schema: str = ""
    output: str = ""  # a step id; unset: the last step that produced an output
    steps: list[Step] = Field(default_factory=list)
    engine: dict[str, Any] = Field(default_factory=dict)  # opaque runtime-specific settings (unused)

    def all_steps(self) -> list[Step]:
        """Every step, parallel branches right after their parallel step."""
        return [s for top in self.steps for s in (top, *top.branches)]


Predicate.model_rebuild()
Step.model_rebuild()
