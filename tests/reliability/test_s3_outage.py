"""No result a worker computed is lost to an S3 outage (guarantee 4): the path to a real moto_server is cut and
restored while results are written; a call waits the outage out (up to ARENA_SINK_OUTAGE_SECONDS), and an S3 that
never comes back fails with a reason that says so."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from arena_operator.results.sinks import S3Sink, SinkError
from tests.e2e.operator_env import NAMESPACE
from tests.fakes.services import S3Server
from tests.harness.k8s import ARENA_API_VERSION, K8sApi, dig
from tests.harness.k8s import k8s_api as k8s_api
from tests.reliability.cluster import Redis, arenajob, finished, lifetime_cluster, sized
from tests.reliability.proxy import CuttableProxy

BUCKET = "outage-results"


@pytest.fixture
def s3_path(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[CuttableProxy]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    proxy = CuttableProxy(s3_server.port)
    yield proxy
    proxy.close()


def cut_for(proxy: CuttableProxy, seconds: float) -> threading.Thread:
    proxy.cut()
    restore = threading.Timer(seconds, proxy.restore)
    restore.start()
    return restore


@pytest.mark.parametrize("outage", sized([1.0, 3.0, 6.0], [3.0]))
async def test_a_unit_written_during_an_outage_lands_once_s3_is_back(s3_path: CuttableProxy, outage: float) -> None:
    sink = S3Sink(BUCKET, "p", NAMESPACE, "job", region="us-east-1", endpoint=s3_path.url, outage_seconds=60)
    await sink.check()
    restore = cut_for(s3_path, outage)
    started = time.monotonic()
    await sink.put_unit("s.p.t0", {"RunID": "s.p.t0", "Status": "passed"})
    assert time.monotonic() - started >= outage * 0.9  # it did wait for S3, it did not drop the result
    restore.join()
    assert [run["RunID"] async for run in sink.iter_units()] == ["s.p.t0"]


async def test_an_s3_that_never_returns_fails_saying_how_long_it_was_tried(s3_path: CuttableProxy) -> None:
    sink = S3Sink(BUCKET, "p", NAMESPACE, "job", region="us-east-1", endpoint=s3_path.url, outage_seconds=2)
    s3_path.cut()
    with pytest.raises(SinkError) as failed:
        await sink.put_unit("s.p.t0", {"RunID": "s.p.t0"})
    assert failed.value.reason == "EndpointUnreachable"
    assert "gave up after 2s of retries, ARENA_SINK_OUTAGE_SECONDS" in failed.value.message
    assert BUCKET in failed.value.message


def test_a_job_whose_s3_goes_away_for_a_while_still_succeeds_with_every_result(
        k8s_api: K8sApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_path: CuttableProxy) -> None:
    redis = Redis(tmp_path / "redis", appendonly=False)
    try:
        with lifetime_cluster(k8s_api, tmp_path, monkeypatch, redis, trials=10,
                              extra_env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}):
            output = {"type": "s3", "s3": {"bucket": BUCKET, "prefix": "r/", "endpoint": s3_path.url,
                                           "region": "us-east-1"}}
            k8s_api.create(arenajob("s3-outage", replicas=2, output=output))
            k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "s3-outage",
                             lambda o: (dig(o, "status.progress.completed") or 0) >= 1, timeout=60)
            cut_for(s3_path, 6.0).join()
            obj = k8s_api.wait_for(ARENA_API_VERSION, "arenajobs", NAMESPACE, "s3-outage", finished, timeout=120)
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        assert obj["status"]["progress"] == {"total": 10, "completed": 10, "failed": 0, "pending": 0}
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_path.upstream_port}", region_name="us-east-1")
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="r/")["Contents"]}
        assert len([k for k in keys if "/units/" in k]) == 10 and f"r/{NAMESPACE}/s3-outage/results.json" in keys
    finally:
        redis.close()
