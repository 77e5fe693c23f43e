"""Media and pack evals in the cluster's runtime: the fixture bundles as an artifact over HTTP, a real redis-server
queue and one worker writing units to a PVC output — the units carry MediaOutputs (a mock tool's image, read from
the bundle the worker fetched) and eval_results, and statuses stay the assertions' (pack evals do not gate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arena_operator.runplan.units import PlanInputs
from tests.integration.test_eval_recording import _run_job

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
OUTPUT = {"type": "pvc", "pvc": {"claimName": "results", "subPath": "team"}}


def units(tmp_path: Path, job: str) -> dict[str, dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in (tmp_path / "pvc" / "team" / "ns" / job / "units").glob("*.json")]
    return {u["ScenarioID"]: u for u in found}


@pytest.mark.parametrize("bundle", ["media-parts", "pack-evals"])
async def test_the_worker_runs_media_and_pack_evals(tmp_path: Path, redis_server: Any, bundle: str) -> None:
    (tmp_path / "pvc").mkdir()
    await _run_job(tmp_path, redis_server.url, OUTPUT, BUNDLES / bundle, bundle, PlanInputs([], [], 1))
    ran = units(tmp_path, bundle)
    if bundle == "media-parts":
        assert {s: u["Status"] for s, u in ran.items()} == {
            "media-inputs": "passed", "media-replies": "passed", "media-tool": "passed",
            "media-wrong-format": "failed"}
        [chart] = ran["media-tool"]["MediaOutputs"]
        assert (chart["type"], chart["file_path"], chart["size_bytes"]) == (
            "image", "media/chart.png", (BUNDLES / bundle / "media" / "chart.png").stat().st_size)
        parts = ran["media-inputs"]["Messages"][0]["meta"]["parts"]
        assert [p["type"] for p in parts] == ["text", "image", "image"] and parts[1]["media"]["data"]
    else:
        assert {s: u["Status"] for s, u in ran.items()} == {"booking": "passed", "gated": "failed"}
        assert [(e["eval_id"], e["passed"]) for e in ran["booking"]["eval_results"]
                if not e.get("skipped")] == [("polite", True), ("every-sampled-turn", True), ("polite", False),
                                             ("every-sampled-turn", True), ("short-session", False)]
