"""`arena run` end to end (a subprocess) on bundles whose providers are fault servers: a provider that is down ends
fast and says so (circuit breaker), a run whose every run so far failed the same infrastructure way stops early
with one line saying what to fix (fail-fast, exit 1), secrets never printed, and infrastructure errors kept apart
from assertion failures in the terminal, summary.json, junit.xml and report.md."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.fakes.services import free_port
from tests.reliability.faultserver import Fault, FaultServer
from tests.reliability.providerkit import SEEDS, arena_run, figure, write_bundle

THRESHOLD, RETRIES, JOBS = 5, 2, 2  # the breaker's default; the bundle's max_retries; -j
ATTEMPTS = RETRIES + 1


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def resolver_fails_fast() -> None:
    """The DNS case needs a resolver that answers `.invalid` (RFC 6761: never resolves) at once; without one the
    lookups time out, which is the timeout case (covered in test_provider_faults.py), not this one."""
    started = time.monotonic()
    try:
        socket.getaddrinfo("arena-no-such-host.invalid", 80)
    except socket.gaierror:
        if time.monotonic() - started < 1.0:
            return
    pytest.skip("this machine's resolver does not fail `.invalid` names quickly")


def files_text(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


async def test_a_down_provider_finishes_fast_and_says_so_while_the_healthy_one_is_evaluated(
        seed: int, tmp_path: Path) -> None:
    async with FaultServer(seed) as good, FaultServer(seed + 100) as bad:
        bad.default = Fault.error(503, message="upstream down")
        bundle = write_bundle(tmp_path / "bundle", {"good": good.base_url, "down": bad.base_url}, trials=6,
                              concurrency=JOBS, max_retries=RETRIES, failing_scenario=True)

        ran = await arena_run(bundle, tmp_path / "out", "--no-fail-fast")

        assert ran.code == 0, ran.stderr  # errors are reported; only --ci (or a fail-fast stop) fails the exit
        summary = ran.summary()
        down, healthy = summary["providers"]["down"], summary["providers"]["good"]
        assert (down["runs"], down["errors"], down["passed"], down["failed"]) == (12, 12, 0, 0)
        assert (healthy["runs"], healthy["passed"], healthy["failed"], healthy["errors"]) == (12, 6, 6, 0)
        refused = summary["errorKinds"].get("unavailable", 0)
        # Until the circuit opens, at most THRESHOLD + JOBS - 1 runs try (ATTEMPTS each); every later run is refused.
        assert refused >= 12 - (THRESHOLD + JOBS - 1)
        assert len(bad.hits) <= (THRESHOLD + JOBS - 1) * ATTEMPTS < 12 * ATTEMPTS
        line = f"arena: provider 'down' is unavailable: HTTP 503: upstream down (gave up after {ATTEMPTS} attempts); " \
               f"{refused} runs not attempted"
        assert line in ran.stderr.splitlines(), ran.stderr
        assert " ! strict × down" in ran.stdout and " ✗ strict × good ×6: contains: missing patterns: xyzzy" \
            in ran.stdout
        junit = (ran.out / "junit.xml").read_text()
        assert re.search(r'<testsuites name="arena" tests="24" errors="12" failures="6"', junit)
        assert "12 errors" in (ran.out / "report.md").read_text()
        figure("arena run, provider down (503), --no-fail-fast", seed=seed, runs=12, requests=len(bad.hits),
               without_circuit=12 * ATTEMPTS, refused=refused, seconds=round(ran.seconds, 2))


async def test_fail_fast_stops_a_provider_whose_every_run_failed_and_runs_the_others(seed: int,
                                                                                    tmp_path: Path) -> None:
    async with FaultServer(seed) as good, FaultServer(seed + 100) as bad:
        bad.default = Fault.error(503, message="upstream down")
        bundle = write_bundle(tmp_path / "bundle", {"good": good.base_url, "down": bad.base_url}, trials=6,
                              concurrency=JOBS, max_retries=RETRIES, failing_scenario=True)

        ran = await arena_run(bundle, tmp_path / "out")

        assert ran.code == 1
        summary = ran.summary()
        assert summary["providers"]["good"]["runs"] == 12  # the healthy provider ran everything
        tried = summary["providers"]["down"]["runs"]
        assert THRESHOLD <= tried <= THRESHOLD + JOBS - 1
        [line] = [x for x in ran.stderr.splitlines() if x.startswith("arena: provider 'down' stopped")]
        assert re.fullmatch(
            rf"arena: provider 'down' stopped: all {tried} of its runs so far failed: down: HTTP 503: upstream down "
            rf"\(gave up after {ATTEMPTS} attempts\) — the server at http://127\.0\.0\.1:\d+/v1 is failing; check its "
            rf"status, or run again later; its other {12 - tried} runs not attempted \(--no-fail-fast runs them all\)",
            line), line
        assert len(bad.hits) <= tried * ATTEMPTS
        figure("arena run, provider down (503), fail-fast", seed=seed, tried=tried, not_attempted=12 - tried,
               requests=len(bad.hits), seconds=round(ran.seconds, 2))


@pytest.mark.parametrize("key_set", [True, False], ids=["key-refused", "key-unset"])
async def test_a_refused_key_stops_the_run_early_naming_the_variable_never_the_key(
        seed: int, key_set: bool, tmp_path: Path) -> None:
    key = f"sk-arena-reliability-{seed}-5ecret0123456789"
    async with FaultServer(seed) as server:
        message = f"Incorrect API key provided: {key}" if key_set else "You didn't provide an API key."
        server.default = Fault.error(401, message=message)
        bundle = write_bundle(tmp_path / "bundle", {"openai": server.base_url}, trials=12, concurrency=JOBS,
                              max_retries=RETRIES)

        ran = await arena_run(bundle, tmp_path / "out", env={"OPENAI_API_KEY": key} if key_set else {})

        assert ran.code == 1
        tried = ran.summary()["runs"]
        assert THRESHOLD <= tried <= THRESHOLD + JOBS - 1 and len(server.hits) == tried  # a 401 is never retried
        state = "it is set, but the server refused it" if key_set else "it is not set"
        detail = "Incorrect API key provided: ***" if key_set else "You didn't provide an API key."
        expected = (f"arena: stopped early: all {tried} runs so far failed: openai: HTTP 401: {detail} — check the "
                    f"API key env var OPENAI_API_KEY: {state}; {12 - tried} runs not attempted (--no-fail-fast runs "
                    "them all)")
        assert expected in ran.stderr.splitlines(), ran.stderr
        assert key not in ran.stdout + ran.stderr + files_text(ran.out)
        if key_set:
            assert all(hit.authorization == f"Bearer {key}" for hit in server.hits)  # it was sent, only there


@pytest.mark.parametrize("where", ["refused", "dns"])
async def test_an_unreachable_provider_stops_the_run_early_with_its_base_url(seed: int, where: str,
                                                                            tmp_path: Path) -> None:
    if where == "dns":
        resolver_fails_fast()
    url = f"http://127.0.0.1:{free_port()}/v1" if where == "refused" else "http://arena-no-such-host.invalid/v1"
    bundle = write_bundle(tmp_path / "bundle", {"openai": url}, trials=12, concurrency=JOBS + seed,
                          max_retries=RETRIES)

    ran = await arena_run(bundle, tmp_path / "out")

    assert ran.code == 1
    tried = ran.summary()["runs"]
    assert THRESHOLD <= tried <= THRESHOLD + JOBS + seed - 1
    [line] = [x for x in ran.stderr.splitlines() if x.startswith("arena: stopped early")]
    if where == "refused":
        assert f"connection to {url[7:-3]} refused (nothing listening there?)" in line
        assert f"— is the server at {url} running? check base_url;" in line
    else:
        assert "cannot resolve host 'arena-no-such-host.invalid' (DNS:" in line
        assert "— check the host in base_url http://arena-no-such-host.invalid/v1;" in line
    assert line.endswith(f"; {12 - tried} runs not attempted (--no-fail-fast runs them all)")
    figure(f"arena run, provider unreachable ({where})", seed=seed, tried=tried, seconds=round(ran.seconds, 2))
