"""Which earlier run a finished evaluation is compared with: ``spec.compare.baseline`` (a job of the namespace or
a results location), else the last Succeeded run of the same template. The workers read it and compare."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..api.arenajob import ArenaJobSpec


def choose_baseline(spec: ArenaJobSpec, name: str, parent: str | None,
                    jobs: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """{url, revision, job} of the baseline, {reason} when one was asked for but cannot be used, or None when
    there is nothing to compare with (a one-off run without spec.compare)."""
    wanted = spec.compare.baseline if spec.compare else None
    if wanted is not None and wanted.url:
        return {"url": wanted.url, "revision": None, "job": None}
    candidates = [j for j in jobs if j.get("name") != name and j.get("phase") == "Succeeded"]
    if wanted is not None and wanted.job_name:
        named = next((j for j in jobs if j.get("name") == wanted.job_name), None)
        if named is None or named.get("phase") != "Succeeded" or not (named.get("result") or {}).get("url"):
            return {"reason": f"spec.compare.baseline.jobName {wanted.job_name!r} is not a Succeeded ArenaJob with "
                              "results in this namespace"}
        return _ref(named)
    if not parent:
        return None
    siblings = [j for j in candidates if j.get("parent") == parent and (j.get("result") or {}).get("url")]
    if not siblings:
        return None
    return _ref(max(siblings, key=lambda j: str(j.get("completionTime") or "")))


def _ref(job: Mapping[str, Any]) -> dict[str, Any]:
    return {"url": (job.get("result") or {}).get("url"), "revision": job.get("revision"), "job": job.get("name")}
