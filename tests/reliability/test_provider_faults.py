"""Provider faults from a real fault-injecting server (faultserver.py), through the real OpenAI provider: bounded
retries with full-jitter backoff, Retry-After honoured in both its forms, hangs, slow streams, resets, truncated
JSON — each survived (a reply once the fault passes) or, when it persists, given up on after exactly the allowed
attempts with the right error kind. Delays are measured at the server and held against lower bounds (the delay the
seeded policy chose, the instant a Retry-After named), never against an upper bound of time."""

from __future__ import annotations

import socket
import time

import pytest

from arena_operator.engine.errors import ProviderError
from arena_operator.engine.providers.openai import OpenAIProvider
from tests.reliability.faultserver import Fault, FaultServer
from tests.reliability.providerkit import EPS, SEEDS, RecordingPolicy, ask, figure, openai_provider


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def chosen(provider: OpenAIProvider) -> list[float]:
    policy = provider.retry
    assert isinstance(policy, RecordingPolicy)
    return [value for _, _, value in policy.chosen]


def assert_waited(server: FaultServer, provider: OpenAIProvider) -> list[float]:
    """Each retry arrived no sooner than the delay the policy chose after the answer before it."""
    gaps, delays = server.gaps(), chosen(provider)
    assert len(gaps) == len(delays)
    for gap, delay in zip(gaps, delays, strict=True):
        assert gap >= delay - EPS, (gaps, delays)
    return gaps


async def test_429_retry_after_seconds_is_a_floor_with_jitter_above_it(seed: int) -> None:
    async with FaultServer(seed) as server:
        server.script(Fault.error(429, retry_after="1"), Fault.error(429, retry_after="1"))
        provider = openai_provider(server.base_url, seed, base_delay=0.2)

        response = await provider.chat(ask())

        assert response.content == "hello from the fault server"
        assert len(server.hits) == 3
        gaps = assert_waited(server, provider)
        assert all(1.0 <= d <= 1.0 + 0.2 for d in chosen(provider))  # the floor, plus at most base_delay of jitter
        assert all(gap >= 1.0 for gap in gaps)
        figure("429 Retry-After: 1", seed=seed, gaps=[round(g, 3) for g in gaps])
        await provider.aclose()


async def test_429_retry_after_http_date_waits_until_that_instant(seed: int) -> None:
    async with FaultServer(seed) as server:
        server.script(Fault.error(429, retry_after="date:2"))
        provider = openai_provider(server.base_url, seed)

        response = await provider.chat(ask())

        assert response.content and len(server.hits) == 2
        first, retry = server.hits
        assert first.retry_at is not None and retry.wall >= first.retry_at - EPS  # an HTTP date has 1 s steps
        figure("429 Retry-After: <HTTP date 2 s ahead>", seed=seed,
               early_by_s=round(first.retry_at - retry.wall, 3), waited_s=round(retry.at - first.at, 3))
        await provider.aclose()


async def test_a_retry_after_beyond_the_cap_fails_at_once_instead_of_sleeping_an_hour(seed: int) -> None:
    async with FaultServer(seed) as server:
        server.script(Fault.error(429, retry_after="3600", message="quota"))
        provider = openai_provider(server.base_url, seed)
        started = time.monotonic()

        with pytest.raises(ProviderError) as caught:
            await provider.chat(ask())

        assert (caught.value.kind, caught.value.status) == ("rate_limited", 429)
        assert "retry after 3600s, more than the 120s" in str(caught.value)
        assert len(server.hits) == 1 and chosen(provider) == []
        figure("429 Retry-After: 3600", seed=seed, attempts=1, seconds=round(time.monotonic() - started, 3))
        await provider.aclose()


@pytest.mark.parametrize(("faults", "stream"), [
    ([Fault.error(500), Fault.error(503), Fault.error(502)], False),
    ([Fault.rst(0), Fault.rst(40), Fault.closed_mid_body(40)], False),
    ([Fault.truncated_json(), Fault.error(504), Fault.rst(0)], False),
    ([Fault.cut_stream(), Fault.broken_event(), Fault.error(503)], True),
], ids=["5xx", "resets", "truncated-json", "broken-streams"])
async def test_transient_faults_are_retried_with_full_jitter_backoff(seed: int, faults: list[Fault],
                                                                     stream: bool) -> None:
    async with FaultServer(seed) as server:
        server.script(*faults)
        provider = openai_provider(server.base_url, seed, max_retries=3, base_delay=0.05, max_delay=0.4)

        response = await provider.chat(ask(stream=stream))

        assert response.content == "hello from the fault server"
        assert len(server.hits) == len(faults) + 1
        gaps = assert_waited(server, provider)
        for attempt, delay in enumerate(chosen(provider)):  # full jitter: uniform in [0, min(cap, base × 2^n)]
            assert 0 <= delay <= min(0.4, 0.05 * 2**attempt)
        figure(f"transient {'/'.join(f.name for f in faults)}", seed=seed, gaps=[round(g, 3) for g in gaps])
        await provider.aclose()


PERSISTENT = [
    (Fault.error(503), "server_error", "HTTP 503"),
    (Fault.rst(0), "connection", "reset while reading the response: [Errno 104] Connection reset by peer"),
    (Fault.closed_mid_body(30), "connection", "closed before the response was complete"),
    (Fault.truncated_json(), "bad_response", "response is not JSON"),
    (Fault.stall(), "timeout", "within 0.3s"),
]


@pytest.mark.parametrize(("fault", "kind", "words"), PERSISTENT, ids=[f.name for f, _, _ in PERSISTENT])
async def test_a_fault_that_persists_is_given_up_after_exactly_the_allowed_attempts(
        seed: int, fault: Fault, kind: str, words: str) -> None:
    async with FaultServer(seed) as server:
        server.default = fault
        provider = openai_provider(server.base_url, seed, max_retries=2, timeout="0.3s")
        started = time.monotonic()

        with pytest.raises(ProviderError) as caught:
            await provider.chat(ask())

        assert caught.value.kind == kind and words in str(caught.value), str(caught.value)
        assert "(gave up after 3 attempts)" in str(caught.value)
        # bounded: max_retries + 1, however long the fault lasts (under load a 0.3 s attempt at a hanging server may
        # time out before its request even reached it, so a timeout may show fewer hits, never more)
        assert len(server.hits) == 3 if kind != "timeout" else 1 <= len(server.hits) <= 3
        if kind == "timeout":  # each attempt had its whole 0.3 s (as the client counts it), then its backoff
            assert time.monotonic() - started >= 3 * 0.3 + sum(chosen(provider))
        else:
            assert_waited(server, provider)
        figure(f"persistent {fault.name}", seed=seed, kind=kind, attempts=len(server.hits),
               seconds=round(time.monotonic() - started, 3))
        await provider.aclose()


async def test_a_hung_server_is_a_timeout_and_the_retry_gets_the_reply(seed: int) -> None:
    async with FaultServer(seed) as server:
        server.script(Fault.stall())
        provider = openai_provider(server.base_url, seed, timeout="0.4s")
        started = time.monotonic()

        response = await provider.chat(ask())

        assert response.content and len(server.hits) == 2
        assert time.monotonic() - started >= 0.4 + chosen(provider)[0]  # the attempt was given its whole timeout
        await provider.aclose()


async def test_a_slow_stream_within_the_timeout_is_a_reply_with_its_ttft(seed: int) -> None:
    async with FaultServer(seed) as server:
        server.script(Fault.slow_stream(0.05))
        provider = openai_provider(server.base_url, seed, timeout="5s")

        response = await provider.chat(ask(stream=True))

        assert response.content == "one two three four five six" and len(server.hits) == 1
        assert response.ttft_ms is not None and response.latency_ms >= 6 * 50 - 5
        await provider.aclose()


async def test_a_stream_slower_than_the_timeout_is_cut_and_retried(seed: int) -> None:
    """httpx's timeout is per read; a stream dripping an event every 0.15 s never trips it. The attempt as a whole
    is bounded: after 0.5 s it is a timeout, and the retry gets a normal reply."""
    async with FaultServer(seed) as server:
        server.script(Fault.slow_stream(0.15, text=" ".join(["word"] * 40)))
        provider = openai_provider(server.base_url, seed, timeout="0.5s")
        started = time.monotonic()

        response = await provider.chat(ask(stream=True))

        assert response.content == "hello from the fault server" and len(server.hits) == 2
        assert time.monotonic() - started >= 0.5 + chosen(provider)[0]
        await provider.aclose()


async def test_no_retry_for_a_refused_key_and_the_key_is_never_in_the_error(seed: int,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-fault-{seed}-0123456789abcdef"
    monkeypatch.setenv("FAULT_TEST_KEY", key)
    async with FaultServer(seed) as server:
        server.script(Fault.error(401, message=f"Incorrect API key provided: {key}"))
        provider = openai_provider(server.base_url, seed, credential={"api_key_env": "FAULT_TEST_KEY"})

        with pytest.raises(ProviderError) as caught:
            await provider.chat(ask())

        assert (caught.value.kind, caught.value.status) == ("auth_error", 401) and len(server.hits) == 1
        assert server.hits[0].authorization == f"Bearer {key}"
        assert key not in str(caught.value) and "***" in str(caught.value)
        await provider.aclose()


async def test_a_failed_dns_lookup_is_a_connection_error_naming_the_host(seed: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup fails as the OS reports it (socket.gaierror), whatever this machine's resolver would do."""
    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    provider = openai_provider("http://api.no-such-provider.example/v1", seed, max_retries=1)

    with pytest.raises(ProviderError) as caught:
        await provider.chat(ask())

    assert caught.value.kind == "connection"
    assert str(caught.value) == ("faulty: cannot resolve host 'api.no-such-provider.example' (DNS: [Errno -2] Name or "
                                 "service not known) (gave up after 2 attempts)")
    await provider.aclose()
