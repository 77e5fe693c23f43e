"""The egress policy (issue 16), against real local servers: metadata and link-local addresses are refused before
any lookup or connection (an audit hook sees every socket.connect and getaddrinfo of this process); loopback is
refused in the cluster unless the cluster admin allows it, and stays reachable in `arena run`; a host name is
checked on every address it resolves to, at connect time; a redirect to another origin is not followed; the OCI
client sends registry credentials to a Bearer realm only on the registry's host."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from arena_operator.engine import egress
from arena_operator.engine.egress import EgressPolicy, EgressRefused
from arena_operator.engine.providers.openai import OpenAIProvider
from arena_operator.engine.spec import ProviderSpec, ToolSpec
from arena_operator.engine.tools import ToolRunner
from arena_operator.engine.types import ChatRequest, Message, ToolCall
from arena_operator.loadtest.transport import LoadClient
from arena_operator.reconcile.worker_job import (
    REDIS_URL_KEY,
    SecretKeyRef,
    WorkerJobParams,
    build_worker_job,
    build_worker_secret,
)
from arena_operator.sources.errors import SourceError
from arena_operator.sources.registry import OCIAuth, RegistryClient
from tests.fakes.llm_servers import FakeLLMServer

REPO = Path(__file__).resolve().parents[2]
CLUSTER = EgressPolicy.cluster({})
METADATA_URLS = ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
                 "http://[fe80::1]/", "http://metadata.google.internal/computeMetadata/v1/",
                 "http://[::ffff:169.254.169.254]/"]
_seen: list[tuple[str, Any]] = []
sys.addaudithook(lambda event, args: _seen.append((event, args))
                 if event in ("socket.connect", "socket.getaddrinfo") else None)


@contextmanager
def network_calls() -> Iterator[list[tuple[str, Any]]]:
    """The socket.connect / socket.getaddrinfo calls this process makes inside the block."""
    start = len(_seen)
    calls: list[tuple[str, Any]] = []
    yield calls
    calls.extend(_seen[start:])


@pytest.fixture(autouse=True)
def local_policy() -> Iterator[None]:
    yield
    egress.confine_process(None)


def provider(base_url: str) -> OpenAIProvider:
    return OpenAIProvider("p", ProviderSpec(type="openai", model="m", base_url=base_url, max_retries=3))


def hello() -> ChatRequest:
    return ChatRequest(system="", messages=[Message("user", "hi")])


@asynccontextmanager
async def app(routes: dict[str, Any]) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A loopback server answering ``routes`` (path → handler) and recording every request."""
    seen: list[web.Request] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request)
        return await handler(request)

    application = web.Application(middlewares=[record])
    for path, handler in routes.items():
        application.router.add_route("*", path, handler)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("url", METADATA_URLS)
@pytest.mark.parametrize("policy", [EgressPolicy.local(), CLUSTER, EgressPolicy(allow_private=True)],
                         ids=["local", "cluster", "private-allowed"])
async def test_metadata_and_link_local_are_refused_before_any_lookup_or_connection(url: str,
                                                                                   policy: EgressPolicy) -> None:
    egress.confine_process(policy)
    chat = provider(url)
    with network_calls() as calls, pytest.raises(EgressRefused) as refused:
        await chat.chat(hello())
    await chat.aclose()
    assert calls == []
    assert refused.value.kind == "egress_refused" and "never allowed" in str(refused.value)
    assert f"egress to {refused.value.host} refused" in str(refused.value) and refused.value.host in url


async def test_an_address_in_disguise_is_refused_once_resolved_and_never_connected() -> None:
    """0xa9fea9fe and 2852039166 are 169.254.169.254 to the resolver: the connect-time check catches them."""
    for url in ("http://0xa9fea9fe/", "http://2852039166/"):
        chat = provider(url)
        with network_calls() as calls, pytest.raises(EgressRefused, match=r"resolves to 169\.254\.169\.254, which "
                                                                          r"is link-local"):
            await chat.chat(hello())
        await chat.aclose()
        assert [event for event, _ in calls] == ["socket.getaddrinfo"]


async def test_in_the_cluster_loopback_is_refused_unless_the_cluster_admin_allows_it() -> None:
    async with FakeLLMServer() as server:
        for policy in (CLUSTER, EgressPolicy.cluster({"ARENA_EGRESS_ALLOW_CIDRS": "10.0.0.0/8"})):
            egress.confine_process(policy)
            for url in (server.openai_url, server.openai_url.replace("127.0.0.1", "localhost")):
                chat = provider(url)
                with network_calls() as calls, pytest.raises(EgressRefused, match=r"loopback, not allowed in the "
                                                                                  r"cluster .*ARENA_EGRESS_ALLOW"):
                    await chat.chat(hello())
                await chat.aclose()
                assert not [args for event, args in calls if event == "socket.connect"]
        assert server.requests == []
        for allowed in ({"ARENA_EGRESS_ALLOW_PRIVATE": "true"}, {"ARENA_EGRESS_ALLOW_CIDRS": "127.0.0.0/8, ::1/128"}):
            egress.confine_process(EgressPolicy.cluster(allowed))
            chat = provider(server.openai_url.replace("127.0.0.1", "localhost"))
            assert (await chat.chat(hello())).content
            await chat.aclose()
    assert len(server.requests) == 2


def test_a_malformed_setting_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="ARENA_EGRESS_ALLOW_CIDRS: 'ten' is not a CIDR"):
        EgressPolicy.cluster({"ARENA_EGRESS_ALLOW_CIDRS": "10.0.0.0/8,ten"})
    with pytest.raises(ValueError, match="ARENA_EGRESS_ALLOW_PRIVATE must be true or false"):
        EgressPolicy.cluster({"ARENA_EGRESS_ALLOW_PRIVATE": "yes"})


def test_arena_worker_confines_its_egress(monkeypatch: pytest.MonkeyPatch) -> None:
    from arena_operator import cli

    seen: list[EgressPolicy] = []
    monkeypatch.setattr("arena_operator.worker.run.main", lambda: seen.append(egress.current_policy()) or 0)
    monkeypatch.setenv("ARENA_EGRESS_ALLOW_CIDRS", "10.0.0.0/8")
    monkeypatch.delenv("ARENA_EGRESS_ALLOW_PRIVATE", raising=False)
    assert cli.main(["worker"]) == 0
    assert seen[0].where == "in the cluster" and not seen[0].allow_private
    assert seen[0].refusal(egress._literal("10.1.2.3")) is None  # type: ignore[arg-type]
    assert seen[0].refusal(egress._literal("192.168.1.1")) is not None  # type: ignore[arg-type]
    monkeypatch.setenv("ARENA_EGRESS_ALLOW_PRIVATE", "maybe")
    assert cli.main(["worker"]) == 2


async def test_arena_run_reaches_a_model_server_on_loopback(tmp_path: Path) -> None:
    async with FakeLLMServer() as server:
        env = {**os.environ, "ARENA_PROVIDER": "openai", "OPENAI_BASE_URL": server.openai_url,
               "OPENAI_API_KEY": "test-key"}
        env.pop("ARENA_EGRESS_ALLOW_PRIVATE", None)
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "arena_operator.cli", "run", "examples/quickstart", "-o",
                             str(tmp_path / "out"), "-q", "--scenario", "greeting"],
            capture_output=True, text=True, cwd=REPO, timeout=180, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert server.requests


async def redirect_elsewhere(target: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(target + request.path)
    return handler


async def test_a_redirect_to_another_origin_is_not_followed() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async with app({"/{tail:.*}": ok}) as (elsewhere, hits), \
            app({"/{tail:.*}": await redirect_elsewhere(elsewhere)}) as (redirecting, _):
        chat = provider(redirecting + "/v1")
        with pytest.raises(Exception) as caught:
            await chat.chat(hello())
        await chat.aclose()
        runner = ToolRunner({"lookup": ToolSpec.model_validate(
            {"name": "lookup", "mode": "live", "http": {"url": redirecting + "/tool", "method": "POST"}})})
        result = await runner.execute(ToolCall("1", "lookup", {}), {"lookup"})
        await runner.aclose()
        load = LoadClient(2, 10.0)
        response = await load.post(redirecting + "/v1/chat/completions", json={})
        await load.aclose()
    assert "egress" not in str(caught.value)  # answered, just not followed
    assert result.error is None and response.status_code == 307
    assert hits == []


async def test_the_load_test_client_follows_the_policy() -> None:
    egress.confine_process(CLUSTER)
    async with FakeLLMServer() as server:
        for url in ("http://169.254.169.254/v1/chat/completions", server.openai_url + "/chat/completions",
                    server.openai_url.replace("127.0.0.1", "localhost") + "/chat/completions"):
            client = LoadClient(2, 10.0)
            with network_calls() as calls, pytest.raises(EgressRefused):
                await client.post(url, json={})
            await client.aclose()
            assert not [args for event, args in calls if event == "socket.connect"]
    assert server.requests == []


async def test_a_live_tool_and_a_rest_eval_report_the_refusal() -> None:
    from arena_operator.engine.assertions.base import EvalContext
    from arena_operator.engine.assertions.external import rest_eval

    egress.confine_process(CLUSTER)
    runner = ToolRunner({"meta": ToolSpec.model_validate(
        {"name": "meta", "mode": "live", "http": {"url": "http://169.254.169.254/latest/meta-data/iam/"}})})
    result = await runner.execute(ToolCall("1", "meta", {}), {"meta"})
    await runner.aclose()
    assert result.error and "meta: egress to 169.254.169.254 refused" in result.error
    score = await rest_eval({"url": "http://127.0.0.1:9/judge"}, EvalContext("turn", [Message("assistant", "x")]))
    assert score.score == 0.0 and "egress to 127.0.0.1 refused: 127.0.0.1 is loopback" in score.explanation


async def test_registry_credentials_go_only_to_a_realm_on_the_registrys_host() -> None:
    async def token(request: web.Request) -> web.Response:
        return web.json_response({"token": "t"})

    async with app({"/token": token}) as (issuer, asked):
        realm = issuer.replace("127.0.0.1", "localhost") + "/token"  # another host name than the registry's

        async def challenge(request: web.Request) -> web.Response:
            return web.Response(status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="r"'})

        async with app({"/v2/{tail:.*}": challenge}) as (registry, _):
            host = registry.removeprefix("http://")
            async with RegistryClient(host, OCIAuth("user", "secret-password"), insecure=True) as client:
                with pytest.raises(SourceError) as caught:
                    await client.manifest_digest("team/bundle", "v1")
    assert caught.value.reason == "AuthenticationFailed"
    assert "asks for a token from localhost; the secretRef credentials are not sent there: it is not on the " \
           "registry's host 127.0.0.1" in caught.value.message
    assert asked == []
    client = RegistryClient("registry-1.docker.io", OCIAuth("u", "p"))
    assert client._realm_refusal(httpx.URL("https://auth.docker.io/token")) is None
    assert "plain http" in (client._realm_refusal(httpx.URL("http://registry-1.docker.io/token")) or "")
    assert "not on the registry's host" in (client._realm_refusal(httpx.URL("https://evil.example/t")) or "")
    await client._client.aclose()


async def test_registry_writes_are_not_redirected_to_another_origin_and_reads_go_without_credentials() -> None:
    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    async with app({"/{tail:.*}": missing}) as (storage, stored):
        async def registry_routes(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(storage + request.path)

        async with app({"/{tail:.*}": registry_routes}) as (registry, _), \
                RegistryClient(registry.removeprefix("http://"), insecure=True) as client:
            client._authorization = "Bearer registry-token"
            # the HEAD (is the blob there?) follows to the storage, without the token; the POST does not
            with pytest.raises(SourceError, match=r"POST redirected to 127\.0\.0\.1: refused .*only for reads"):
                await client.upload_blob("team/bundle", b"x")
    assert [r.method for r in stored] == ["HEAD"] and "Authorization" not in stored[0].headers


async def test_a_rest_eval_header_reads_only_granted_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REST eval's headers expanded `${VAR}` from the whole environment: in a worker, any secret of the pod went
    to the URL the bundle named. Now they read the job owner's grant, as provider files do."""
    from arena_operator.engine import envexpand
    from arena_operator.engine.assertions.base import EvalContext
    from arena_operator.engine.assertions.external import rest_eval

    async def judge(request: web.Request) -> web.Response:
        return web.json_response({"passed": True, "score": 1.0, "reasoning": "ok"})

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    monkeypatch.setenv("EVAL_TOKEN", "granted-token")
    monkeypatch.setenv(envexpand.GRANT_VARIABLE, "EVAL_TOKEN")
    egress.confine_process(EgressPolicy.cluster({"ARENA_EGRESS_ALLOW_PRIVATE": "true"}))
    envexpand.confine_process(envexpand.cluster_env())
    try:
        async with app({"/judge": judge}) as (url, seen):
            await rest_eval({"url": url + "/judge", "headers": {"x-leak": "${AWS_SECRET_ACCESS_KEY}",
                                                                "x-token": "${EVAL_TOKEN}"}},
                            EvalContext("turn", [Message("assistant", "x")]))
            headers = dict(seen[0].headers)
    finally:
        envexpand.confine_process(None)
    assert headers.get("x-leak", "") == "" and headers["x-token"] == "granted-token"


def test_the_worker_job_reads_the_redis_url_from_its_secret_and_gets_the_egress_settings() -> None:
    url = "redis://:s3cret-password@redis.arena-system.svc:6379/0"
    secret = build_worker_secret("team-a", "nightly", "uid-1", {REDIS_URL_KEY: url})
    assert secret["metadata"]["ownerReferences"][0] | {"uid": "uid-1", "kind": "ArenaJob", "name": "nightly"} == \
        secret["metadata"]["ownerReferences"][0]
    assert secret["metadata"]["name"].startswith("nightly-worker-")
    job = build_worker_job(WorkerJobParams(
        namespace="team-a", job_name="nightly", job_uid="uid-1", image="arena:test", artifact_url="http://a/x",
        artifact_digest="sha256:" + "0" * 64, job_key="k",
        redis_secret=SecretKeyRef(secret["metadata"]["name"], REDIS_URL_KEY),
        egress={"ARENA_EGRESS_ALLOW_CIDRS": "10.0.0.0/8", "UNRELATED": "x"}))
    assert "s3cret-password" not in str(job)
    env = {item["name"]: item for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ARENA_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"],
                                                                   "key": REDIS_URL_KEY}
    assert env["ARENA_EGRESS_ALLOW_CIDRS"] == {"name": "ARENA_EGRESS_ALLOW_CIDRS", "value": "10.0.0.0/8"}
    assert "UNRELATED" not in env
