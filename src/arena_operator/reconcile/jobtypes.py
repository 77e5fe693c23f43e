"""Where an ArenaJob's type changes its reconcile pass (reconcile.arenajob does the rest for every type): the
plan — what the type adds to the job config, the work units it enqueues and its progress total — and the observe
step. An evaluation has no plan of its own (its units are scenario × provider × trial) and the default observe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..api.arenajob import ArenaJobSpec
from ..engine.bundle import Bundle
from ..runplan.units import PlanInputs
from .datagen import plan_datagen
from .loadtest import observe_load_test, plan_load_test
from .outcome import Outcome

if TYPE_CHECKING:
    from .jobcontext import JobContext

StepFn = Callable[["JobContext", Outcome], Awaitable[None]]


def plan_for_type(spec: ArenaJobSpec, bundle: Bundle, inputs: PlanInputs, total: int,
                  workers: int) -> tuple[Any | None, int]:
    """(the type's plan: ``to_config()``, ``batches()``, ``describe()``; the progress total), or (None, ``total``
    units) for an evaluation. Raises runplan.selection.ResolutionError when the job cannot run."""
    if spec.type == "loadtest":
        return plan_load_test(spec, bundle, inputs)
    return plan_datagen(spec, bundle, inputs, total, workers)


def observe_for_type(default: StepFn) -> StepFn:
    """The observe step of the job's type: a load test's own (live metrics, thresholds), else ``default``."""

    async def observe(ctx: JobContext, out: Outcome) -> None:
        return await (observe_load_test if ctx.spec.type == "loadtest" else default)(ctx, out)

    observe.__doc__ = default.__doc__
    return observe
