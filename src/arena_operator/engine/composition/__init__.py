"""Compositions (upstream's RFC 0010): named multi-step prompt pipelines in the arena file — prompt, agent and
tool steps, branches and parallel fan-outs — that answer a user turn when the workflow is in a state with
`orchestration: composition`. model.py: the spec and its limits; check.py: load-time checks; scope.py:
references, predicates, reducers; runner.py: running one; record.py: what assertions and reports read."""

from .check import Compositions, check_compositions
from .record import SNAPSHOT_KEY, CompositionOutcome, StepRecord, composition_metadata
from .runner import COMPOSITION_ERROR, CallSettings, CompositionError, CompositionRunner

__all__ = ["COMPOSITION_ERROR", "SNAPSHOT_KEY", "CallSettings", "CompositionError", "CompositionOutcome",
           "CompositionRunner", "Compositions", "StepRecord", "check_compositions", "composition_metadata"]
