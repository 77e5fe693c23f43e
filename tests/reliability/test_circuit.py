"""The circuit breaker (engine/providers/circuit.py): its state machine on an injected clock, then through the real
OpenAI provider against a fault server that is down, comes back, and is merely flaky."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import pytest

from arena_operator.engine.errors import ProviderError
from arena_operator.engine.providers.circuit import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    CircuitOpen,
    CircuitSettings,
)
from tests.reliability.faultserver import Fault, FaultServer
from tests.reliability.providerkit import SEEDS, ask, figure, openai_provider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: CircuitBreaker, kind: str = "connection", final: bool = True) -> None:
    probe = breaker.admit()
    breaker.failed(kind, f"{kind} trouble", probe, final)


def test_opens_after_n_failed_calls_in_a_row_then_probes_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker("p", CircuitSettings(failures=3, cooldown=10), clock)
    fail(breaker)
    fail(breaker, "server_error")
    fail(breaker, "timeout", final=False)  # an attempt that will be retried is not a failed call
    assert (breaker.state, breaker.failures) == (CLOSED, 2)
    fail(breaker, "timeout")
    assert breaker.state == OPEN and breaker.times_opened == 1
    with pytest.raises(CircuitOpen) as refused:
        breaker.admit()
    assert refused.value.kind == "unavailable"
    assert str(refused.value) == ("provider 'p' is unavailable: timeout trouble; not attempted (circuit open after "
                                  "3 failed calls in a row, probed again every 10s)")
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        breaker.admit()
    clock.now += 0.1
    assert breaker.admit() is True and breaker.state == HALF_OPEN  # this call is the probe
    with pytest.raises(CircuitOpen):
        breaker.admit()  # one probe at a time
    breaker.failed("connection", "still down", probe=True, final=False)
    assert breaker.state == OPEN and breaker.opened_at == clock.now  # a failed probe: another full cooldown
    clock.now += 10
    assert breaker.admit() is True
    breaker.answered()
    assert (breaker.state, breaker.failures) == (CLOSED, 0) and breaker.admit() is False
    assert breaker.refused == 3


@pytest.mark.parametrize("kind", ["auth_error", "bad_request", "rate_limited", "overloaded", "bad_response"])
def test_any_answer_from_the_server_resets_the_count(kind: str) -> None:
    breaker = CircuitBreaker("p", CircuitSettings(failures=3, cooldown=10), Clock())
    fail(breaker)
    fail(breaker)
    fail(breaker, kind)  # the server answered: it is up
    fail(breaker)
    fail(breaker)
    assert (breaker.state, breaker.failures) == (CLOSED, 2)


def test_a_cancelled_probe_hands_its_turn_to_the_next_call() -> None:
    clock = Clock()
    breaker = CircuitBreaker("p", CircuitSettings(failures=1, cooldown=5), clock)
    fail(breaker)
    clock.now += 5
    assert breaker.admit() is True
    breaker.release(probe=True)  # the run was cancelled mid-probe: no verdict
    assert breaker.state == OPEN and breaker.admit() is True  # the next call probes at once


def test_zero_failures_turns_it_off_and_the_environment_tunes_it() -> None:
    breaker = CircuitBreaker("p", CircuitSettings(failures=0), Clock())
    for _ in range(50):
        fail(breaker)
    assert breaker.state == CLOSED
    settings = CircuitSettings.from_env({"ARENA_CIRCUIT_FAILURES": "2", "ARENA_CIRCUIT_COOLDOWN": "0.5"})
    assert settings == CircuitSettings(failures=2, cooldown=0.5)
    assert CircuitSettings.from_env({"ARENA_CIRCUIT_FAILURES": "many"}) == CircuitSettings()


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


async def outcome(call: Awaitable[object]) -> str:
    try:
        await call
    except ProviderError as exc:
        return exc.kind
    return "ok"


async def test_a_down_provider_fails_the_queued_calls_fast_then_a_probe_closes_it_when_it_is_back(seed: int) -> None:
    """12 calls by 2 runners against a server answering 503: the first 3 failed calls (each 2 attempts) open the
    circuit, and every call after that is refused without a request — at most (3 + 2 − 1) × 2 requests instead of
    24. After the cool-down one probe goes through; the server is back, so the circuit closes and calls flow."""
    async with FaultServer(seed) as server:
        server.default = Fault.error(503, message="upstream unavailable")
        provider = openai_provider(server.base_url, seed, max_retries=1, circuit=CircuitSettings(3, 0.6))
        started = time.monotonic()

        todo, kinds = iter(range(12)), []

        async def runner() -> None:  # as `arena run` and a worker do: N runners, each a call at a time
            for _ in todo:
                kinds.append(await outcome(provider.chat(ask())))

        await asyncio.gather(runner(), runner())

        down_seconds = time.monotonic() - started
        assert kinds.count("server_error") >= 3 and kinds.count("unavailable") >= 12 - 4, kinds
        assert len(server.hits) <= (3 + 2 - 1) * 2
        assert provider.circuit.state == OPEN
        with pytest.raises(ProviderError) as refused:
            await provider.chat(ask())
        assert str(refused.value).startswith("provider 'faulty' is unavailable: HTTP 503: upstream unavailable "
                                             "(gave up after 2 attempts); not attempted")
        requests_while_down = len(server.hits)

        server.default = Fault.ok("back again")
        await asyncio.sleep(0.6)  # the cool-down: a lower bound, not a race
        assert (await provider.chat(ask())).content == "back again"
        assert provider.circuit.state == CLOSED
        replies = await asyncio.gather(*(provider.chat(ask()) for _ in range(5)))
        assert [r.content for r in replies] == ["back again"] * 5
        assert len(server.hits) == requests_while_down + 6
        figure("down provider, 12 calls by 2 runners, circuit 3/0.6s", seed=seed, requests=requests_while_down,
               without_circuit=24, refused=kinds.count("unavailable"), seconds=round(down_seconds, 3))
        await provider.aclose()


async def test_a_failed_probe_reopens_and_the_next_call_is_refused_without_a_request(seed: int) -> None:
    async with FaultServer(seed) as server:
        server.default = Fault.rst(0)
        provider = openai_provider(server.base_url, seed, max_retries=0, circuit=CircuitSettings(2, 0.3))
        for _ in range(2):
            with pytest.raises(ProviderError):
                await provider.chat(ask())
        assert provider.circuit.state == OPEN and len(server.hits) == 2

        await asyncio.sleep(0.3)
        with pytest.raises(ProviderError) as probe:
            await provider.chat(ask())  # the probe: one request, reset again
        assert probe.value.kind == "connection" and len(server.hits) == 3
        with pytest.raises(ProviderError) as refused:
            await provider.chat(ask())
        assert refused.value.kind == "unavailable" and len(server.hits) == 3
        assert "reset while reading the response" in str(refused.value)
        await provider.aclose()


async def test_a_flaky_provider_whose_retries_succeed_never_opens_it(seed: int) -> None:
    async with FaultServer(seed) as server:
        for _ in range(20):
            server.script(Fault.error(503), Fault.ok())
        provider = openai_provider(server.base_url, seed, max_retries=2, circuit=CircuitSettings(2, 30))

        replies = [await provider.chat(ask()) for _ in range(20)]

        assert all(r.content for r in replies) and len(server.hits) == 40
        assert provider.circuit.state == CLOSED and provider.circuit.times_opened == 0
        await provider.aclose()


async def test_an_egress_refusal_is_no_answer_from_the_server_and_leaves_the_count_alone(seed: int) -> None:
    provider = openai_provider("http://169.254.169.254/v1", seed, circuit=CircuitSettings(3, 30))
    provider.circuit.failures = 2  # two calls already failed in a row

    with pytest.raises(ProviderError) as caught:
        await provider.chat(ask())

    assert caught.value.kind == "egress_refused"
    assert (provider.circuit.state, provider.circuit.failures) == (CLOSED, 2)
    await provider.aclose()
