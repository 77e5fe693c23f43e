"""Result sinks (S3 against a real moto_server, PVC as a directory) and the streaming aggregation into reports."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from arena_operator.local.run import LocalRunOptions, run_local
from arena_operator.results.aggregate import aggregate
from arena_operator.results.report import anchor
from arena_operator.results.sinks import DirSink, ResultSink, S3Sink, SinkError, sink_for, unit_name
from tests.fakes.services import S3_AUTH_BUCKET, S3_TEST_KEY, S3Server, free_port

REPO = Path(__file__).resolve().parents[2]
JUNIT_XSD = REPO / "tests/fixtures/junit.xsd"
NAMESPACE, JOB = "team-a", "nightly-eval"


@pytest.fixture(scope="module")
def base_runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The quickstart's six real RunResult dicts (one fails on purpose), from the real engine and mocks."""
    out = tmp_path_factory.mktemp("quickstart")
    asyncio.run(run_local(LocalRunOptions(bundle=REPO / "examples/quickstart", out_dir=out)))
    runs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(runs) == 6 and {r["Status"] for r in runs} == {"passed", "failed"}
    return runs


def many(base: list[dict[str, Any]], trials: int) -> list[dict[str, Any]]:
    """`trials` copies of each base run, as trials 0..n-1 with their own RunIDs."""
    return [{**run, "Trial": trial, "RunID": f"{run['ScenarioID']}.{run['ProviderID']}.t{trial:04d}"}
            for trial in range(trials) for run in base]


async def put_all(sink: ResultSink, runs: list[dict[str, Any]]) -> None:
    limit = asyncio.Semaphore(16)

    async def put(run: dict[str, Any]) -> None:
        async with limit:
            await sink.put_unit(run["RunID"], run)

    await asyncio.gather(*(put(run) for run in runs))


async def collect(sink: ResultSink) -> list[dict[str, Any]]:
    return [run async for run in sink.iter_units()]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials only from the env vars a worker pod gets; nothing from this machine, no metadata service."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in S3_TEST_KEY.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def bucket(s3_server: S3Server, aws_env: None) -> str:
    name = f"arena-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def s3_sink(server: S3Server, bucket: str, **kwargs: Any) -> S3Sink:
    return S3Sink(bucket, "evals/nightly/", NAMESPACE, JOB, region="us-east-1", endpoint=server.endpoint, **kwargs)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.runs = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.ids.update(v for k, v in attrs if k == "id" and v)
        if tag == "details" and "run" in (values.get("class") or "").split():
            self.runs += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def order(run: dict[str, Any]) -> tuple[str, str, str, int]:
    return run["ScenarioID"], run["ProviderID"], run["Region"], run["Trial"]


# --- S3 -------------------------------------------------------------------------------------------------------------


async def test_s3_units_round_trip_across_list_pages(s3_server: S3Server, bucket: str) -> None:
    # moto answers ~150 requests/s here, so pages of 40 keys stand in for S3's 1,000 (same code path).
    sink = s3_sink(s3_server, bucket, page_size=40)
    assert sink.url == f"s3://{bucket}/evals/nightly/{NAMESPACE}/{JOB}/"
    await sink.check()
    left = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=sink.base)
    assert left["KeyCount"] == 0  # the write check leaves nothing in the results prefix
    runs = [{"RunID": f"u-{i:04d}", "ScenarioID": "s", "ProviderID": "p", "Trial": i, "Status": "passed"}
            for i in range(150)]
    await put_all(sink, list(reversed(runs)))
    first_page = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"{sink.base}units/", MaxKeys=40)
    assert first_page["IsTruncated"] and first_page["KeyCount"] == 40  # the listing really has 4 pages

    got = await collect(sink)
    assert got == runs  # every unit, in key order

    await sink.put_unit("u-0005", {**runs[5], "Status": "failed"})  # a retried unit overwrites its result
    again = await collect(S3Sink(bucket, "evals/nightly", NAMESPACE, JOB, endpoint=s3_server.endpoint,
                                 page_size=100, concurrency=3))
    assert len(again) == 150 and again[5]["Status"] == "failed"
    assert again[:5] == runs[:5] and again[6:] == runs[6:]


async def test_s3_aggregate_writes_every_report(s3_server: S3Server, bucket: str,
                                                base_runs: list[dict[str, Any]]) -> None:
    sink = s3_sink(s3_server, bucket)
    runs = many(base_runs, 20)
    await put_all(sink, list(reversed(runs)))
    summary = await aggregate(sink, ["json", "junit", "csv"], meta={"job": f"{NAMESPACE}/{JOB}"},
                              html_detail_limit=3, html_failure_limit=8)

    client = s3_server.client()

    def get(name: str) -> tuple[str, str]:
        obj = client.get_object(Bucket=bucket, Key=f"{sink.base}{name}")
        return obj["Body"].read().decode(), obj["ContentType"]

    listed = client.list_objects_v2(Bucket=bucket, Prefix=sink.base, Delimiter="/")
    assert sorted(o["Key"].removeprefix(sink.base) for o in listed["Contents"]) == [
        "junit.xml", "report.html", "results.csv", "results.json", "results.jsonl",
        "summary.json"]

    statuses = Counter(r["Status"] for r in runs)
    assert summary["runs"] == len(runs) == 120
    assert (summary["passed"], summary["failed"], summary["errors"]) == (statuses["passed"], statuses["failed"], 0)
    assert json.loads(get("summary.json")[0]) == summary

    results = json.loads(get("results.json")[0])
    assert [r["RunID"] for r in results] == [r["RunID"] for r in sorted(runs, key=order)]
    assert results[0] == sorted(runs, key=order)[0]
    lines = get("results.jsonl")[0].splitlines()
    assert [json.loads(line)["RunID"] for line in lines] == [r["RunID"] for r in results]
    rows = list(csv.DictReader(io.StringIO(get("results.csv")[0])))
    assert [r["RunID"] for r in rows] == [r["RunID"] for r in results]

    junit, junit_type = get("junit.xml")
    assert junit_type == "application/xml"
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(junit)
    assert f'tests="120" errors="0" failures="{statuses["failed"]}"' in junit

    html, html_type = get("report.html")
    assert html_type.startswith("text/html")
    page = parse_html(html)
    scenarios = {r["ScenarioID"] for r in runs}
    assert {anchor(s) for s in scenarios} <= page.ids
    passed_cells = {(r["ScenarioID"], r["ProviderID"]) for r in runs if r["Status"] == "passed"}
    shown = min(statuses["failed"], 8) + 3 * len(passed_cells)
    assert page.runs == shown < 120
    assert f"showing {shown} of 120 runs" in " ".join(page.text)
    assert f"{NAMESPACE}/{JOB}" in html


async def test_s3_missing_bucket_is_bucket_not_found(s3_server: S3Server, aws_env: None) -> None:
    sink = s3_sink(s3_server, "arena-no-such-bucket")
    for action in (sink.check(), sink.put_unit("u-1", {"RunID": "u-1"}), collect(sink)):
        with pytest.raises(SinkError) as caught:
            await action
        assert caught.value.reason == "BucketNotFound"
        assert "arena-no-such-bucket" in caught.value.message and "NoSuchBucket" in caught.value.message
        assert S3_TEST_KEY["AWS_SECRET_ACCESS_KEY"] not in str(caught.value)


async def test_s3_credentials_are_enforced(s3_auth_server: S3Server, aws_env: None, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """moto enforcing IAM. Its signature check fails any request with '/' in the query string (getmoto/moto#5948,
    open): a listing under the job's prefix is refused even with good keys, so writes and reads are checked here
    and listing in the tests above."""

    def use(key: dict[str, str]) -> S3Sink:
        for name, value in key.items():
            monkeypatch.setenv(name, value)
        return S3Sink(S3_AUTH_BUCKET, None, NAMESPACE, JOB, endpoint=s3_auth_server.endpoint, max_attempts=1)

    writer = use(s3_auth_server.credentials["writer"])
    await writer.put_unit("u-1", {"RunID": "u-1"})
    (tmp_path / "summary.json").write_text("{}")
    await writer.put_file("summary.json", tmp_path / "summary.json", "application/json")
    stored = s3_auth_server.client(key=s3_auth_server.credentials["reader"]).get_object(
        Bucket=S3_AUTH_BUCKET, Key=f"{writer.base}units/u-1.json")
    assert json.loads(stored["Body"].read()) == {"RunID": "u-1"}

    reader = use(s3_auth_server.credentials["reader"])  # s3:ListBucket and s3:GetObject only
    with pytest.raises(SinkError) as denied:
        await reader.put_unit("u-2", {"RunID": "u-2"})
    assert denied.value.reason == "AccessDenied"
    assert f"(bucket {S3_AUTH_BUCKET}): AccessDenied" in denied.value.message
    with pytest.raises(SinkError) as denied_file:
        await reader.put_file("summary.json", tmp_path / "summary.json", "application/json")
    assert denied_file.value.reason == "AccessDenied"

    wrong = {"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-42"}
    with pytest.raises(SinkError) as rejected:
        await use(wrong).check()
    assert rejected.value.reason == "AccessDenied" and "InvalidAccessKeyId" in rejected.value.message
    assert S3_AUTH_BUCKET in rejected.value.message
    secrets = [wrong["AWS_SECRET_ACCESS_KEY"], s3_auth_server.credentials["reader"]["AWS_SECRET_ACCESS_KEY"]]
    for error in (rejected.value, denied.value, denied_file.value):
        assert not any(secret in str(error) for secret in secrets)


async def test_s3_client_side_errors_are_mapped(s3_server: S3Server, aws_env: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SinkError) as malformed:
        S3Sink("arena-results", None, NAMESPACE, JOB, endpoint="not a url")
    assert malformed.value.reason == "InvalidEndpoint" and "arena-results" in malformed.value.message

    nothing_listens = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SinkError) as unreachable:
        await S3Sink("arena-results", None, NAMESPACE, JOB, endpoint=nothing_listens, max_attempts=1,
                     outage_seconds=0).check()
    assert unreachable.value.reason == "EndpointUnreachable"

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SinkError) as anonymous:
        await s3_sink(s3_server, "arena-results").check()
    assert anonymous.value.reason == "CredentialsNotFound"


# --- sink_for -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "url"), [
    (None, "s3://results/team-a/nightly-eval/"),
    ("evals/nightly/", "s3://results/evals/nightly/team-a/nightly-eval/"),
    ("/evals//nightly", "s3://results/evals/nightly/team-a/nightly-eval/"),
    ("./a/./b/", "s3://results/a/b/team-a/nightly-eval/"),
])
def test_sink_for_s3_joins_the_prefix_safely(prefix: str | None, url: str, aws_env: None) -> None:
    sink = sink_for({"type": "s3", "s3": {"bucket": "results", "prefix": prefix, "region": "eu-west-1",
                                          "endpoint": "http://127.0.0.1:9"}}, NAMESPACE, JOB, None)
    assert isinstance(sink, S3Sink) and sink.url == url


def test_sink_for_pvc_and_bad_outputs(tmp_path: Path) -> None:
    sink = sink_for({"type": "pvc", "pvc": {"claimName": "arena-results-pvc", "subPath": "evals/"}},
                    NAMESPACE, JOB, tmp_path)
    assert isinstance(sink, DirSink)
    assert sink.url == "pvc://arena-results-pvc/evals/team-a/nightly-eval/"
    assert sink.dir == tmp_path / "evals/team-a/nightly-eval"

    bad = [
        ({"type": "pvc", "pvc": {"claimName": "c", "subPath": "../escape"}}, tmp_path, "InvalidOutput"),
        ({"type": "s3", "s3": {"bucket": "b", "prefix": "a/../../b"}}, None, "InvalidOutput"),
        ({"type": "s3", "s3": {}}, None, "InvalidOutput"),
        ({"type": "gcs"}, None, "InvalidOutput"),
        ({"type": "pvc", "pvc": {"claimName": "c"}}, None, "ClaimNotMounted"),
    ]
    for output, results_dir, reason in bad:
        with pytest.raises(SinkError) as caught:
            sink_for(output, NAMESPACE, JOB, results_dir)
        assert caught.value.reason == reason, output
    with pytest.raises(SinkError):
        sink_for({"type": "pvc", "pvc": {"claimName": "c"}}, "..", JOB, tmp_path)


# --- PVC / directory ------------------------------------------------------------------------------------------------


async def test_dir_units_round_trip_and_aggregate(tmp_path: Path, base_runs: list[dict[str, Any]]) -> None:
    sink = DirSink(tmp_path, "arena-results-pvc", "evals", NAMESPACE, JOB)
    await sink.check()
    runs = many(base_runs, 3)
    await put_all(sink, runs)
    (sink.units / ".u.json.123.tmp").write_text("{torn")  # a crashed writer's temp file is not a unit
    got = await collect(sink)
    assert [r["RunID"] for r in got] == sorted(r["RunID"] for r in runs)

    summary = await aggregate(sink, ["junit"], meta={"revision": "main@sha1:abc"})
    assert summary["runs"] == 18 and summary["failed"] == 3
    assert sorted(p.name for p in sink.dir.iterdir()) == ["junit.xml", "report.html", "summary.json", "units"]
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(sink.dir / "junit.xml"))
    html = (sink.dir / "report.html").read_text()
    page = parse_html(html)
    assert page.runs == 18 and "showing" not in html  # small jobs show every run
    assert {anchor(r["ScenarioID"]) for r in runs} <= page.ids


class CountingSink(DirSink):
    listings = 0

    def iter_units(self, **kwargs):  # type: ignore[override]
        self.listings += 1
        return super().iter_units(**kwargs)


async def test_aggregate_reads_once_and_shares_the_failure_cap_between_cells(tmp_path: Path) -> None:
    sink = CountingSink(tmp_path, "claim", None, NAMESPACE, JOB)
    runs = [{"RunID": f"{s}-{p}-{t}", "ScenarioID": s, "ProviderID": p, "Region": "default", "Trial": t,
             "Status": "failed" if (s, p) != ("s1", "p1") else "error", "Error": "", "Duration": 5}
            for s in ("s1", "s2") for p in ("p1", "p2") for t in range(6)]
    runs += [{**runs[0], "RunID": f"ok-{t}", "Trial": 10 + t, "Status": "passed"} for t in range(4)]
    await put_all(sink, runs)
    summary = await aggregate(sink, [], html_detail_limit=2, html_failure_limit=10)
    assert sink.listings == 1
    assert (summary["runs"], summary["passed"], summary["failed"], summary["errors"]) == (28, 4, 18, 6)
    html = (sink.dir / "report.html").read_text()
    assert "showing 12 of 28 runs" in html
    assert sorted(p.name for p in sink.dir.iterdir()) == ["report.html", "summary.json", "units"]
    # 10 failure slots over 4 cells of 6: 2 each, the 2 spare ones to the first cells; 2 passed runs of s1 × p1.
    shown = set(re.findall(r'<dt>Run ID</dt><dd class="mono">([^<]+)</dd>', html))
    assert shown == {"s1-p1-0", "s1-p1-1", "s1-p1-2", "s1-p2-0", "s1-p2-1", "s1-p2-2", "s2-p1-0", "s2-p1-1",
                     "s2-p2-0", "s2-p2-1", "ok-0", "ok-1"}


async def test_dir_concurrent_writes_of_one_unit_leave_a_valid_file(tmp_path: Path) -> None:
    sink = DirSink(tmp_path, "claim", None, NAMESPACE, JOB)
    one = {"RunID": "u", "writer": "one", "blob": "a" * 300_000}
    two = {"RunID": "u", "writer": "two", "blob": "b" * 300_000}
    for _ in range(20):
        await asyncio.gather(sink.put_unit("u", one), sink.put_unit("u", two))
        assert json.loads((sink.units / unit_name("u")).read_bytes()) in (one, two)
    assert os.listdir(sink.units) == ["u.json"]  # no temp files left behind
    assert [r["writer"] for r in await collect(sink)] in (["one"], ["two"])


async def test_dir_claim_not_mounted(tmp_path: Path) -> None:
    sink = DirSink(tmp_path / "not-mounted", "claim", None, NAMESPACE, JOB)
    for action in (sink.check(), sink.put_unit("u", {}), collect(sink)):
        with pytest.raises(SinkError) as caught:
            await action
        assert caught.value.reason == "ClaimNotMounted" and "claim" in caught.value.message


async def test_dir_blocked_path_is_write_failed(tmp_path: Path) -> None:
    (tmp_path / "evals").write_text("a file where the subPath directory should be")
    with pytest.raises(SinkError) as caught:
        await DirSink(tmp_path, "claim", "evals", NAMESPACE, JOB).check()
    assert caught.value.reason == "WriteFailed" and str(tmp_path / "evals") in caught.value.message


def test_dir_not_writable_is_access_denied(tmp_path: Path) -> None:
    """A volume this uid may read but not write (wrong fsGroup). Root ignores modes, so as root the check runs
    in a forked child that has dropped to `nobody`."""
    root = Path(tempfile.mkdtemp(prefix="arena-ro-pvc-"))  # under /tmp, reachable by `nobody`
    try:
        sink = DirSink(root, "claim", None, NAMESPACE, JOB)
        sink.units.mkdir(parents=True)
        for path in (root, sink.dir.parent, sink.dir, sink.units):
            path.chmod(0o555)
        reason, message = _check_in_child(sink) if os.geteuid() == 0 else _check_here(sink)
        assert reason == "AccessDenied", message
        assert str(sink.units) in message and "claim" in message
    finally:
        for path in (root, *root.rglob("*")):
            path.chmod(0o755)
        shutil.rmtree(root)


def _check_here(sink: DirSink) -> tuple[str, str]:
    try:
        asyncio.run(sink.check())
    except SinkError as exc:
        return exc.reason, exc.message
    return "ok", ""


def _check_in_child(sink: DirSink) -> tuple[str, str]:
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork() in a threaded process; the child only checks
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, json.dumps(_check_here(sink)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    reason, message = json.loads(data)
    return reason, message
