"""The GitOps loop end to end: a template ArenaJob with a source-change trigger runs each pushed revision as a
child, pinned to that revision; a scheduled template creates children on its own."""

from __future__ import annotations

from typing import Any

from tests.e2e.operator_env import NAMESPACE, condition, wait_event
from tests.e2e.test_arenajob import QUICKSTART, finished, job, s3_output
from tests.e2e.test_arenajob import cluster as cluster  # the fixture, re-exported for pytest
from tests.harness.k8s import ARENA_API_VERSION, dig
from tests.harness.k8s import k8s_api as k8s_api  # the fixture, re-exported for pytest

PARENT = "omnia.altairalabs.ai/parent"


def children(api: Any, parent: str) -> list[dict[str, Any]]:
    return [o for o in api.list(ARENA_API_VERSION, "arenajobs", NAMESPACE)
            if (o["metadata"].get("labels") or {}).get(PARENT) == parent]


def test_each_pushed_revision_runs_once_pinned_to_it(cluster: dict[str, Any]) -> None:
    api, git = cluster["api"], cluster["git"]
    source = api.get(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts")
    first_revision = source["status"]["artifact"]["revision"]
    api.create(job("on-push", replicas=2, output=s3_output(cluster["s3_url"]),
                   trigger={"onSourceChange": True, "debounce": "0s"}))
    template = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "on-push",
                            lambda o: dig(o, "status.lastTriggeredRevision") == first_revision, timeout=30)
    assert template["status"]["phase"] == "Scheduled" and condition(template, "Ready")["status"] == "True"
    wait_event(api, "on-push", "Triggered")
    first = children(api, "on-push")
    assert len(first) == 1
    done = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, first[0]["metadata"]["name"], finished,
                        timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["revision"] == first_revision
    assert done["metadata"]["ownerReferences"][0]["name"] == "on-push"

    greeting = (QUICKSTART / "scenarios" / "greeting.yaml").read_text()
    sha = git.commit({"scenarios/greeting.yaml": greeting.replace('patterns: ["help"]', 'patterns: ["abracadabra"]')})
    api.patch(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts",
              {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-12-01T00:00:00Z"}}})
    new_revision = f"main@sha1:{sha}"
    api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "on-push",
                 lambda o: dig(o, "status.lastTriggeredRevision") == new_revision, timeout=30)
    second = [c for c in children(api, "on-push") if c["metadata"]["name"] != first[0]["metadata"]["name"]]
    assert len(second) == 1
    annotations = second[0]["metadata"]["annotations"]
    assert annotations["omnia.altairalabs.ai/pinned-revision"] == new_revision
    done = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, second[0]["metadata"]["name"], finished,
                        timeout=60)
    assert done["status"]["phase"] == "Succeeded" and done["status"]["revision"] == new_revision
    assert done["status"]["artifactDigest"] == annotations["omnia.altairalabs.ai/pinned-digest"]
    regressed = condition(done, "Regressed")
    assert regressed["status"] == "True" and "greeting × mock-a" in regressed["message"], regressed
    comparison = done["status"]["result"]["comparison"]
    assert comparison["baseline"]["revision"] == first_revision and comparison["counts"]["newlyFailing"] == 4
    assert comparison["topRegressions"][0]["scenario"] == "greeting"
    first_done = api.get(ARENA_API_VERSION, "arenajobs", NAMESPACE, first[0]["metadata"]["name"])
    assert condition(first_done, "Regressed") == {}  # the first run had nothing to compare with
    wait_event(api, second[0]["metadata"]["name"], "Regressed", "Warning")
    source = api.get(ARENA_API_VERSION, "arenasources", NAMESPACE, "my-prompts")
    assert source["status"]["lastHandledReconcileAt"] == "2026-12-01T00:00:00Z"
    template = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "on-push",
                            lambda o: dig(o, "status.lastRun.revision") == new_revision, timeout=30)
    assert template["status"]["lastRun"]["phase"] == "Succeeded" and template["status"]["lastSuccessfulTime"]
    assert len(children(api, "on-push")) == 2  # the same revision never runs twice


def test_scheduled_template_creates_runs_on_its_own(cluster: dict[str, Any]) -> None:
    api = cluster["api"]
    api.create(job("every-minute", replicas=1, output=s3_output(cluster["s3_url"]),
                   schedule={"cron": "* * * * *", "timezone": "America/New_York"}))
    template = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "every-minute",
                            lambda o: dig(o, "status.nextScheduleTime") is not None, timeout=30)
    assert template["status"]["phase"] == "Scheduled"
    ready = condition(template, "Ready")
    assert ready["status"] == "True" and "* * * * * (America/New_York)" in ready["message"]
    template = api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "every-minute",
                            lambda o: dig(o, "status.lastScheduleTime") is not None, timeout=75)
    runs = children(api, "every-minute")
    assert len(runs) == 1 and runs[0]["metadata"]["annotations"]["omnia.altairalabs.ai/scheduled-at"] == \
        template["status"]["lastScheduleTime"]
    assert "schedule" not in runs[0]["spec"]
