"""Errors of the engine: bundle problems that name file, line and field, and run-time failures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BundleProblem:
    """One problem in a bundle: `scenarios/refund.yaml:12:9: turns[2].type: unknown …` (file:line:column, the
    form editors and CI problem matchers jump to)."""

    file: str
    line: int
    field: str
    message: str
    column: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        where += f":{self.column}" if self.line and self.column else ""
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class BundleInvalid(Exception):
    """A bundle that cannot be run; holds every problem found, not just the first."""

    def __init__(self, problems: list[BundleProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ProviderError(Exception):
    """A provider call that failed after retries. `kind` classifies it for reports and metrics."""

    def __init__(self, message: str, kind: str = "provider_error", status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class ToolError(Exception):
    """A tool call that could not be executed; reported back to the model as a tool error. `kind` is
    "validation" when the model's arguments did not match the tool's input_schema."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class TemplateError(ValueError):
    """A template placeholder that could not be resolved."""
