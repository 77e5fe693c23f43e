"""jobs.py decisions that need no cluster."""

from __future__ import annotations

import pydantic
import pytest

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.api.kinds import spec_problems
from arena_operator.reconcile.arenajob import unsupported_reason


def test_unsupported_job_kinds_are_named() -> None:
    base = {"configRef": {"name": "c"}}
    assert unsupported_reason(ArenaJobSpec.model_validate(base)) is None
    for kind in ({"type": "loadtest", "loadTest": {"targetRPS": 5}}, {"type": "datagen"}):
        assert unsupported_reason(ArenaJobSpec.model_validate({**base, **kind})) is None
    nightly = ArenaJobSpec.model_validate({**base, "schedule": {"cron": "0 2 * * *"}})
    assert unsupported_reason(nightly) is None  # a template: reconcile.template runs it


def test_invalid_spec_message_names_each_field() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "type": "loadtesting", "replicas": 3})
    message = spec_problems(caught.value)
    assert "spec.type: Input should be 'evaluation', 'loadtest' or 'datagen', got 'loadtesting'" in message
    assert "spec.replicas: unknown field" in message
