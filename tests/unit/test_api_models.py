"""The API models as the operator uses them: wire names, defaults, strictness, conditions, durations."""

from __future__ import annotations

import datetime
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from arena_operator.api import (
    API_VERSION,
    ArenaJob,
    ArenaJobSpec,
    ArenaJobStatus,
    ArenaSource,
    Condition,
    ManifestError,
    Provider,
    ToolRegistry,
    get_condition,
    is_true,
    parse_duration,
    parse_object,
    remove_condition,
    render_crds,
    set_condition,
)
from arena_operator.api import conditions as c

T0 = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=1)


def _manifest(kind: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": "x", "namespace": "arena"}, "spec": spec,
            **extra}


def test_arena_job_defaults_follow_the_reference() -> None:
    job = parse_object(_manifest("ArenaJob", {"configRef": {"name": "my-config"},
                                              "loadTest": {}, "dataGen": {}, "workers": {},
                                              "schedule": {"cron": "0 2 * * *"}}))
    assert isinstance(job, ArenaJob)
    spec = job.spec
    assert (spec.type, spec.suspend, spec.max_attempts, spec.output) == ("evaluation", False, 3, None)
    assert spec.load_test is not None and (spec.load_test.ramp_up, spec.load_test.duration) == ("30s", "5m")
    assert spec.data_gen is not None and (spec.data_gen.count, spec.data_gen.format) == (100, "jsonl")
    assert spec.workers is not None and spec.workers.replicas == 1
    assert spec.schedule is not None and (spec.schedule.timezone, spec.schedule.concurrency_policy) == ("UTC", "Forbid")


def test_wire_names_are_camel_case_including_the_documented_acronyms() -> None:
    spec = ArenaJobSpec.model_validate({"configRef": {"name": "c"}, "type": "loadtest",
                                        "loadTest": {"targetRPS": 500}, "ttlSecondsAfterFinished": 60})
    assert spec.load_test is not None and spec.load_test.target_rps == 500
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["loadTest"] == {"rampUp": "30s", "duration": "5m", "targetRPS": 500}
    assert dumped["configRef"] == {"name": "c"} and dumped["ttlSecondsAfterFinished"] == 60
    provider = parse_object(_manifest("Provider", {"type": "vllm", "baseURL": "http://vllm:8000/v1",
                                                   "pricing": {"inputCostPer1K": 0.5, "outputCostPer1K": 1}}))
    assert isinstance(provider, Provider) and provider.spec.base_url == "http://vllm:8000/v1"
    assert provider.spec.pricing is not None and provider.spec.pricing.output_cost_per_1k == 1.0
    # Python names work too (populate_by_name), for code that builds objects.
    assert ArenaJobSpec(config_ref={"name": "c"}, max_attempts=5).max_attempts == 5  # type: ignore[arg-type]


def test_source_defaults_and_type_blocks() -> None:
    source = parse_object(_manifest("ArenaSource", {"type": "oci", "oci": {"url": "oci://registry:5000/bundle:v1"}}))
    assert isinstance(source, ArenaSource)
    assert (source.spec.interval, source.spec.timeout, source.spec.suspend) == ("5m", "60s", False)
    assert source.spec.oci is not None and source.spec.oci.insecure is False
    with pytest.raises(ManifestError, match=r"spec: oci is required when type is 'oci'"):
        parse_object(_manifest("ArenaSource", {"type": "oci"}))


def test_tool_registry_defaults_and_free_form_input_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    registry = parse_object(_manifest("ToolRegistry", {"handlers": [{
        "name": "weather", "type": "http", "tool": {"name": "get_weather", "inputSchema": schema},
        "httpConfig": {"endpoint": "http://weather:8080/weather"}}]}))
    assert isinstance(registry, ToolRegistry)
    [handler] = registry.spec.handlers
    assert handler.http_config is not None and handler.http_config.method == "POST"
    assert handler.timeout == "10s" and handler.tool.input_schema == schema


@pytest.mark.parametrize(("spec", "problem"), [
    ({"configRef": {"name": "c"}, "workers": {"replicas": "5"}}, "spec.workers.replicas: Input should be a valid "
                                                                  "integer"),
    ({"configRef": {"name": "c"}, "suspend": "true"}, "spec.suspend: Input should be a valid boolean"),
    ({"configRef": {"name": "c"}, "schedule": {"cron": "every night"}}, "spec.schedule.cron: invalid cron"),
    ({"configRef": {"name": "c"}, "schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"}},
     "spec.schedule.timezone: unknown time zone 'Mars/Olympus'"),
    ({"configRef": {}}, "spec.configRef.name: Field required"),
    ({"configRef": {"name": "c"}, "workers": {"minReplicas": 3, "maxReplicas": 1}},
     "spec.workers: minReplicas (3) must not be greater than maxReplicas (1)"),
    ({"configRef": {"name": "c"}, "output": {"type": "s3"}}, "spec.output: s3 is required when type is 's3'"),
    ({"configRef": {"name": "c"}, "replicas": 3}, "spec.replicas: unknown field"),
])
def test_invalid_specs_name_the_field(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_object(_manifest("ArenaJob", spec))
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems
    assert problem in str(caught.value)


def test_foreign_api_version_and_unknown_kind() -> None:
    with pytest.raises(ManifestError, match=r"apiVersion: expected 'omnia\.altairalabs\.ai/v1alpha1'"):
        parse_object({"apiVersion": "batch/v1", "kind": "Job", "spec": {}})
    with pytest.raises(ManifestError, match="kind: expected one of ArenaSource, ArenaConfig, ArenaJob"):
        parse_object({"apiVersion": API_VERSION, "kind": "ArenaRun", "spec": {}})


def test_objects_from_the_api_server_parse_with_their_metadata_and_status() -> None:
    stored = _manifest("ArenaJob", {"configRef": {"name": "c"}}, status={
        "phase": "Running", "progress": {"total": 120, "completed": 37, "failed": 1, "pending": 82},
        "progressText": "37/120", "activeWorkers": 4, "startTime": "2025-01-02T03:04:05Z",
        "result": {"summary": {"passRate": 0.97, "byProvider": {"gpt4": {"passed": 10}}}},
        "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing", "message": "",
                        "lastTransitionTime": "2025-01-02T03:04:05Z", "observedGeneration": 2}],
        "resolvedProviders": {"default": ["gpt4-prod"]},
        "resolvedTools": [{"name": "get_weather", "registry": "production-tools", "handler": "weather-handler"}]})
    stored["metadata"].update(uid="u-1", generation=2, resourceVersion="17", managedFields=[{"manager": "kubectl"}])
    job = parse_object(stored)
    assert isinstance(job, ArenaJob) and job.status is not None
    assert job.metadata.generation == 2 and job.metadata.model_extra == {"managedFields": [{"manager": "kubectl"}]}
    assert job.status.start_time == T0 and job.status.result is not None
    assert job.status.result.summary == {"passRate": 0.97, "byProvider": {"gpt4": {"passed": 10}}}
    # What the operator writes back is exactly what the API returned, and valid for the CRD's status schema.
    written = job.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert written == stored["status"]
    schema = render_crds()["arenajobs.omnia.altairalabs.ai"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(written, schema["properties"]["status"])


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("250ms", 0.25), ("2h0m10s", 7210),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "1d", "-1s", "m5"])
def test_parse_duration_rejects_what_the_crd_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_set_condition_moves_the_transition_time_only_when_the_status_changes() -> None:
    first = set_condition(None, c.READY, c.FALSE, c.FETCHING, "cloning", 1, now=T0)
    assert first == [{"type": "Ready", "status": "False", "reason": "Fetching", "message": "cloning",
                      "lastTransitionTime": "2025-01-02T03:04:05Z", "observedGeneration": 1}]
    again = set_condition(first, c.READY, False, c.FETCH_FAILED, "auth failed", 2, now=T1)
    assert again[0]["lastTransitionTime"] == "2025-01-02T03:04:05Z"  # still False: entered at T0
    assert (again[0]["reason"], again[0]["message"], again[0]["observedGeneration"]) == ("FetchFailed",
                                                                                          "auth failed", 2)
    assert first[0]["reason"] == "Fetching"  # the input is never mutated (kopf's status is read-only)
    flipped = set_condition(again, c.READY, True, c.SUCCEEDED, "stored", 2, now=T1)
    assert flipped[0]["lastTransitionTime"] == "2025-01-02T03:05:05Z" and len(flipped) == 1
    both = set_condition(flipped, c.PROGRESSING, c.TRUE, c.WORKERS_RUNNING, now=T1)
    assert [condition["type"] for condition in both] == ["Ready", "Progressing"]
    assert set_condition(both, c.READY, True, c.SUCCEEDED, "stored", 2, now=T0 + T1.resolution) == both
    assert is_true(both, c.READY) and not is_true(both, c.JOB_CREATED)
    assert get_condition(remove_condition(both, c.PROGRESSING), c.PROGRESSING) is None


def test_condition_helpers_accept_models_and_feed_model_statuses() -> None:
    status = ArenaJobStatus()
    status.conditions = set_condition(status.conditions, c.CONFIG_VALID, c.TRUE, c.VALIDATED,
                                      now=T0.replace(microsecond=123))
    assert status.conditions == [Condition(type="ConfigValid", status="True", reason="Validated",
                                           last_transition_time=T0)]
    [written] = status.model_dump(mode="json", by_alias=True, exclude_none=True)["conditions"]
    assert written == {"type": "ConfigValid", "status": "True", "reason": "Validated", "message": "",
                       "lastTransitionTime": "2025-01-02T03:04:05Z"}
    assert is_true(status.conditions, c.CONFIG_VALID)
    with pytest.raises(ValueError, match="True, False or Unknown"):
        set_condition(None, c.READY, "Yes", c.SUCCEEDED)  # type: ignore[arg-type]
    long = set_condition(None, c.READY, False, c.FAILED, "x" * 40000)
    assert len(long[0]["message"]) == c.MAX_MESSAGE


def test_condition_reasons_are_valid_camel_case() -> None:
    reasons = [value for name, value in vars(c).items() if name.isupper() and isinstance(value, str)
               and name not in {"TRUE", "FALSE", "UNKNOWN"}]
    assert len(reasons) > 20
    for reason in reasons:
        Condition(type="Ready", status="True", reason=reason, last_transition_time=T0)  # raises if invalid
    with pytest.raises(ValidationError):
        Condition(type="Ready", status="True", reason="not camel case", last_transition_time=T0)
