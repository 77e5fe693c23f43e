"""A hostile bundle costs the operator a condition, not its memory or its event loop: validation of a fetched
bundle runs in a child process with a time and memory budget (sources/bounded.py)."""

from __future__ import annotations

import itertools
import resource
import shutil
import time
from pathlib import Path

import pytest

from arena_operator.api.common import REQUESTED_AT_ANNOTATION
from arena_operator.reconcile import arenasource as rc
from arena_operator.sources.bounded import Budget, validate_bounded
from arena_operator.sources.errors import SourceError
from tests.unit.test_source_reconcile import FakeFetcher, make_ctx

REPO = Path(__file__).resolve().parents[2]
LEVELS = "abcdefghi"


def alias_bomb() -> str:
    """A billion strings from a few hundred bytes: each level lists the previous one ten times."""
    lines = ['  bomb_a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, level in itertools.pairwise(LEVELS):
        lines.append(f"  bomb_{level}: &{level} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def bundle_with(tmp_path: Path, provider_extra: str) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "examples" / "quickstart", bundle)
    provider = bundle / "providers" / "assistant.yaml"
    provider.write_text(provider.read_text().replace("  defaults:\n", provider_extra + "  defaults:\n", 1))
    return bundle


@pytest.fixture(autouse=True)
def _parse_limits_relaxed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The YAML parse limits refuse an alias bomb before it costs anything (test_bundle_limits.py); relaxed here
    (the spawned child inherits the environment) so that what stops it is the budget, the last line of defence."""
    monkeypatch.setenv("ARENA_MAX_YAML_NODES", str(10**12))


async def test_a_yaml_alias_bomb_fails_within_the_budget_and_costs_the_operator_nothing(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, alias_bomb())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        await validate_bounded(bundle, Budget(timeout=8, memory=400 * 2**20))
    assert time.monotonic() - started < 20
    assert caught.value.reason == "ValidationBudgetExceeded" and "nothing of it was used" in caught.value.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: the parent did not load it


async def test_a_good_bundle_passes_and_a_bad_one_names_file_and_line(tmp_path: Path) -> None:
    await validate_bounded(REPO / "examples" / "quickstart", Budget(timeout=60))
    broken = bundle_with(tmp_path, "  temperature_typo: [unclosed\n")
    with pytest.raises(SourceError) as caught:
        await validate_bounded(broken, Budget(timeout=60))
    assert caught.value.reason == "InvalidBundle" and "providers/assistant.yaml:" in caught.value.message


async def test_the_source_reports_it_and_keeps_serving_the_last_good_artifact(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    good = FakeFetcher(REPO / "examples" / "quickstart")

    async def build(ctx: rc.SourceContext, timeout: float) -> FakeFetcher:
        return good

    monkeypatch.setattr(rc, "build_fetcher", build)
    first = await rc.reconcile_source(make_ctx(tmp_path))
    assert first.status["phase"] == "Ready"
    good.bundle, good.revision = bundle_with(tmp_path, alias_bomb()), "main@sha1:" + "b" * 40
    ctx = make_ctx(tmp_path, {**first.status}, annotations={REQUESTED_AT_ANNOTATION: "now"})
    ctx.validation_budget = Budget(timeout=8, memory=400 * 2**20)
    out = await rc.reconcile_source(ctx)
    assert out.conditions["SourceValid"].status is False
    assert out.conditions["SourceValid"].reason == "ValidationBudgetExceeded"
    assert out.conditions["ArtifactAvailable"].reason == "LastGoodArtifact"
    assert out.conditions["Ready"].status is False and "artifact" not in out.status
