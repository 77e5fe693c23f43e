"""jobs.py decisions that need no cluster."""

from __future__ import annotations

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.jobs import unsupported_reason


def test_unsupported_job_kinds_are_named() -> None:
    base = {"configRef": {"name": "c"}}
    assert unsupported_reason(ArenaJobSpec.model_validate(base)) is None
    assert "loadtest" in str(unsupported_reason(ArenaJobSpec.model_validate({**base, "type": "loadtest"})))
    nightly = ArenaJobSpec.model_validate({**base, "schedule": {"cron": "0 2 * * *"}})
    assert "schedule" in str(unsupported_reason(nightly))
