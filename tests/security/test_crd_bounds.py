"""What a namespace owner can ask of the operator is bounded at admission: sizes that would exhaust the operator,
Redis or the cluster, a polling interval that is a hot loop, results paths that climb out of their prefix. Each
probe is refused by the model (what the operator enforces) and by the rendered CRD (what the API server enforces:
OpenAPI bounds and patterns, and CEL rules where a pattern cannot say it)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from arena_operator.api import ManifestError, parse_object
from arena_operator.api.common import KEY_PREFIX_PATTERN
from tests.unit.test_api_manifests import HAS_CEL, _job, _object, crd_problems

_SOURCE = {"type": "configmap", "configMap": {"name": "bundle"}}
_CONFIG = {"sourceRef": {"name": "s"}}
BILLION = 10**9

#: (id, manifest, path refused, words of the model's message, enforced in the CRD by CEL only)
HOSTILE: list[tuple[str, dict[str, Any], str, str, bool]] = [
    ("replicas-1e9", _job(workers={"replicas": BILLION}), "spec.workers.replicas", "less than or equal to 1000",
     False),
    ("max-replicas-1e9", _job(workers={"maxReplicas": BILLION}), "spec.workers.maxReplicas", "1000", False),
    ("job-trials-1e9", _job(trials=BILLION), "spec.trials", "less than or equal to 10000", False),
    ("config-trials-1e9", _object("ArenaConfig", {**_CONFIG, "trials": BILLION}), "spec.trials", "10000", False),
    ("config-workers-1e9", _object("ArenaConfig", {**_CONFIG, "workers": BILLION}), "spec.workers", "1000", False),
    ("config-concurrency-1e9", _object("ArenaConfig", {**_CONFIG, "concurrency": BILLION}), "spec.concurrency",
     "1000", False),
    ("load-concurrency-1e9", _job(type="loadtest", loadTest={"concurrency": BILLION}), "spec.loadTest.concurrency",
     "100000", False),
    ("vus-per-worker-1e9", _job(type="loadtest", loadTest={"vusPerWorker": BILLION}), "spec.loadTest.vusPerWorker",
     "10000", False),
    ("target-rps-1e9", _job(type="loadtest", loadTest={"targetRPS": BILLION}), "spec.loadTest.targetRPS", "100000",
     False),
    ("datagen-count-1e9", _job(type="datagen", dataGen={"count": BILLION}), "spec.dataGen.count", "10000000", False),
    ("max-attempts-1e9", _job(maxAttempts=BILLION), "spec.maxAttempts", "100", False),
    ("interval-0s", _object("ArenaSource", {**_SOURCE, "interval": "0s"}), "spec.interval", "must be at least 10s",
     True),
    ("interval-500ms", _object("ArenaSource", {**_SOURCE, "interval": "500ms"}), "spec.interval",
     "must be at least 10s", True),
    ("interval-huge-string", _object("ArenaSource", {**_SOURCE, "interval": "1s" * 1000}), "spec.interval",
     "at most 64", False),
    ("s3-prefix-climbing", _job(output={"type": "s3", "s3": {"bucket": "b", "prefix": "../other-team/"}}),
     "spec.output.s3.prefix", "'..' segment", False),
    ("s3-prefix-inner-dotdot", _job(output={"type": "s3", "s3": {"bucket": "b", "prefix": "runs/../../x"}}),
     "spec.output.s3.prefix", "'..' segment", False),
    ("s3-prefix-backslash-dotdot", _job(output={"type": "s3", "s3": {"bucket": "b", "prefix": "runs\\..\\x"}}),
     "spec.output.s3.prefix", "'..' segment", False),
    ("pvc-subpath-dotdot", _job(output={"type": "pvc", "pvc": {"claimName": "c", "subPath": "a/.."}}),
     "spec.output.pvc.subPath", "'..' segment", False),
    ("pvc-subpath-only-dotdot", _job(output={"type": "pvc", "pvc": {"claimName": "c", "subPath": ".."}}),
     "spec.output.pvc.subPath", "'..' segment", False),
    ("cron-bogus", _job(schedule={"cron": "bogus"}), "spec.schedule.cron", "invalid cron expression", False),
    ("timezone-mars", _job(schedule={"cron": "0 2 * * *", "timezone": "Mars/Olympus"}), "spec.schedule.timezone",
     "unknown time zone", None),
    ("loadtest-without-block", _job(type="loadtest"), "spec", "needs loadTest.targetRPS", True),
]


@pytest.mark.parametrize(("manifest", "path", "words"), [pytest.param(m, p, w, id=i) for i, m, p, w, _ in HOSTILE])
def test_the_model_refuses_it_naming_the_field(manifest: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_object(manifest)
    assert any(p.startswith(f"{path}: ") and words in p for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(("manifest", "path", "words", "by_cel"),
                         [pytest.param(m, p, w, c, id=i) for i, m, p, w, c in HOSTILE if c is not None])
def test_the_crd_refuses_it_at_admission(manifest: dict[str, Any], path: str, words: str, by_cel: bool) -> None:
    if by_cel and not HAS_CEL:
        pytest.skip("cel-python is not installed: this is a CEL rule")
    problems = crd_problems(manifest, cel=by_cel)
    assert any(p.startswith(f"{path}: ") for p in problems), problems
    if by_cel:
        assert any(p.startswith(f"{path}: ") and words in p for p in problems), problems


def test_a_timezone_the_crd_cannot_know_is_left_to_the_operator() -> None:
    """IANA names are not an enum the CRD can hold: the shape passes admission, the model refuses it (the
    operator reports it as a condition)."""
    assert crd_problems(_job(schedule={"cron": "0 2 * * *", "timezone": "Mars/Olympus"}), cel=HAS_CEL) == []


@pytest.mark.parametrize("prefix", ["", "/", "runs/", "/runs/2026/", "a//b/./c", "...", "..a/b..", ".hidden/x",
                                    "a\\b"])
def test_ordinary_prefixes_pass_both_guards(prefix: str) -> None:
    manifest = _job(output={"type": "s3", "s3": {"bucket": "b", "prefix": prefix}},
                    workers={"replicas": 1000, "maxReplicas": 1000}, trials=10_000)
    parse_object(manifest)
    assert crd_problems(manifest, cel=HAS_CEL) == []
    assert re.fullmatch(KEY_PREFIX_PATTERN, prefix)


def test_the_lowest_interval_allowed_passes_both_guards() -> None:
    manifest = _object("ArenaSource", {**_SOURCE, "interval": "10s"})
    parse_object(manifest)
    assert crd_problems(manifest, cel=HAS_CEL) == []
