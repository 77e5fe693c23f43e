"""planning.py: unit ids, job-over-config selection, limits, batching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena_operator.api.arenaconfig import ArenaConfigSpec
from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.engine.bundle import load_bundle
from arena_operator.runplan.units import PlanTooLarge, WorkUnit, batches, count_units, iter_units, plan_inputs

CONFIG = ArenaConfigSpec.model_validate({"sourceRef": {"name": "s"}, "trials": 2,
                                         "scenarios": {"include": ["order-*", "greeting"]}})


def test_job_scenarios_override_config(quickstart: Path) -> None:
    bundle = load_bundle(quickstart)
    from_config = plan_inputs(CONFIG, ArenaJobSpec.model_validate({"configRef": {"name": "c"}}))
    units = list(iter_units(bundle, from_config))
    assert {u.scenario for u in units} == {"order-status", "greeting"} and len(units) == 4
    job = ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "scenarios": {"exclude": ["escalation"]}})
    units = list(iter_units(bundle, plan_inputs(CONFIG, job)))
    assert len(units) == 5 * 2 and "escalation" not in {u.scenario for u in units}
    assert len({u.id for u in units}) == len(units)
    assert [u.id for u in units] == [u.id for u in iter_units(bundle, plan_inputs(CONFIG, job))]


def test_limit_and_batches(quickstart: Path) -> None:
    bundle = load_bundle(quickstart)
    inputs = plan_inputs(CONFIG.model_copy(update={"trials": 50, "scenarios": None}),
                         ArenaJobSpec.model_validate({"configRef": {"name": "c"}}))
    assert count_units(bundle, inputs) == 300
    with pytest.raises(PlanTooLarge, match="more than 100 work units"):
        count_units(bundle, inputs, limit=100)
    sizes = [len(b) for b in batches(iter_units(bundle, inputs), size=128)]
    assert sizes == [128, 128, 44]


def test_work_unit_round_trips_through_its_queue_form(quickstart: Path) -> None:
    bundle = load_bundle(quickstart)
    inputs = plan_inputs(CONFIG, ArenaJobSpec.model_validate({"configRef": {"name": "c"}}))
    for unit in iter_units(bundle, inputs):
        again = WorkUnit.from_json(json.loads(json.dumps(unit.to_json())))
        assert again == unit and again.combination().run_id == unit.id
    with pytest.raises(ValueError, match="work unit without provider, trial"):
        WorkUnit.from_json({"id": "x", "scenario": "s", "region": "default"})

