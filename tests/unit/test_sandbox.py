"""The exec sandbox (engine/sandbox.py) and exec tools (engine/exec_tools.py): when a bundle's command may run,
and what confines it — no network, a scratch directory, a scrubbed environment, time and output limits — with real
subprocesses."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arena_operator.api.arenajob import ArenaJobSpec
from arena_operator.engine import egress, sandbox
from arena_operator.engine.errors import ToolError
from arena_operator.engine.exec_tools import run_exec_tool
from arena_operator.engine.spec import ToolSpec
from arena_operator.reconcile.jobspec import exec_tools_of
from arena_operator.reconcile.worker_job import (
    REDIS_URL_KEY,
    SecretKeyRef,
    WorkerJobParams,
    build_worker_job,
    pod_override_problems,
)

PY = sys.executable


@pytest.fixture
def enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_forced", True)


@pytest.fixture
def in_cluster() -> Iterator[None]:
    egress.confine_process(egress.EgressPolicy.cluster({}))
    yield
    egress.confine_process(None)


@pytest.mark.parametrize(("forced", "environ", "cluster", "refusal"), [
    (None, {}, False, "exec tools are disabled: run `arena run --allow-exec` (or set ARENA_ALLOW_EXEC=true)"),
    (None, {"ARENA_ALLOW_EXEC": " TRUE "}, False, None),
    (None, {"ARENA_ALLOW_EXEC": "1"}, False, "exec tools are disabled"),
    (True, {}, False, None),  # arena run --allow-exec
    (None, {}, True, "disabled in the cluster: they run only when the cluster admin allows them (Helm value "
                     "exec.allowTools, ARENA_ALLOW_EXEC=true on the operator) and the ArenaJob sets "
                     "spec.exec.allowTools: true"),
    (None, {"ARENA_ALLOW_EXEC": "true"}, True, None),  # a worker pod the admin allowed
    (False, {"ARENA_ALLOW_EXEC": "true"}, True, "never run in the operator process"),  # the operator, always
])
def test_when_exec_may_run(monkeypatch: pytest.MonkeyPatch, forced: bool | None, environ: dict[str, str],
                           cluster: bool, refusal: str | None) -> None:
    monkeypatch.setattr(sandbox, "_forced", forced)
    egress.confine_process(egress.EgressPolicy.cluster({}) if cluster else None)
    try:
        found = sandbox.refusal(environ)
    finally:
        egress.confine_process(None)
    assert found is None if refusal is None else refusal in (found or ""), found


def test_the_operator_setting_reaches_worker_pods() -> None:
    assert {"ARENA_ALLOW_EXEC", "ARENA_EXEC_ALLOW_NETWORK"} <= set(egress.SETTING_VARIABLES)


async def test_refused_when_not_enabled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sandbox, "_forced", None)
    monkeypatch.delenv("ARENA_ALLOW_EXEC", raising=False)
    marker = tmp_path / "ran"
    with pytest.raises(sandbox.SandboxRefused, match="--allow-exec"):
        await sandbox.run(["touch", str(marker)], b"", 5, {})
    assert not marker.exists()


async def test_no_network_inside(enabled: None) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
             "    print('connected')\nexcept OSError as exc:\n    print('refused', exc.errno)\n")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # reachable from out here
        outcome = await sandbox.run([PY, "-c", probe], b"", 20, {})
    finally:
        listener.close()
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout.decode().startswith("refused"), outcome.stdout


async def test_scratch_dir_and_scrubbed_env(enabled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERATOR_SECRET", "hunter2")
    script = ("import json, os, pathlib\nopen('left.txt', 'w').write('x')\n"
              "print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ)}))\n")
    outcome = await sandbox.run([PY, "-c", script], b"", 20, {"GIVEN": "yes"})
    seen = json.loads(outcome.stdout)
    assert Path(seen["cwd"]).name.startswith("arena-exec-")
    assert not Path(seen["cwd"]).exists()  # removed afterwards, with what the command left there
    assert seen["env"]["HOME"] == seen["env"]["TMPDIR"] == seen["cwd"]
    assert seen["env"]["GIVEN"] == "yes"
    assert "OPERATOR_SECRET" not in seen["env"]
    assert set(seen["env"]) - {"PATH", "LANG", "HOME", "TMPDIR", "GIVEN", "LC_CTYPE"} == set()


async def test_time_limit_kills_the_process_group(enabled: None, tmp_path: Path) -> None:
    marker = tmp_path / "late"
    started = time.monotonic()
    outcome = await sandbox.run(["sh", "-c", f"(sleep 3; touch {marker}) & sleep 30"], b"", 0.5, {})
    assert outcome.returncode is None
    assert time.monotonic() - started < 5
    time.sleep(3.5)
    assert not marker.exists()  # the background child died with its group


async def test_nothing_it_started_outlives_it(enabled: None, tmp_path: Path) -> None:
    marker = tmp_path / "orphan"
    outcome = await sandbox.run(["sh", "-c", f"(sleep 1; touch {marker}) >/dev/null 2>&1 &"], b"", 20, {})
    assert outcome.returncode == 0
    time.sleep(1.5)
    assert not marker.exists()


async def test_output_is_bounded(enabled: None) -> None:
    outcome = await sandbox.run([PY, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"], b"", 20, {})
    assert outcome.truncated and len(outcome.stdout) == sandbox.MAX_OUTPUT_BYTES


async def test_without_a_network_namespace_it_refuses_unless_allowed(enabled: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "NETNS_PREFIXES", (("false",),))
    monkeypatch.setattr(sandbox, "_isolation", None)
    with pytest.raises(sandbox.SandboxRefused, match="ARENA_EXEC_ALLOW_NETWORK=true"):
        await sandbox.run(["true"], b"", 5, {})
    monkeypatch.setenv("ARENA_EXEC_ALLOW_NETWORK", "true")
    assert (await sandbox.run(["true"], b"", 5, {})).returncode == 0


SCRIPTS = {
    "result": "import json,sys; a=json.load(sys.stdin)['args']; print(json.dumps({'result': {'n': a['n'] * 2}}))",
    "error": "import json; print(json.dumps({'error': 'quota exceeded'}))",
    "plain": "import json; print(json.dumps({'status': 'ok'}))",
    "text": "print('not json')",
    "exit": "import sys; sys.stderr.write('disk full'); sys.exit(3)",
    "env": "import json,os; print(json.dumps({'result': [os.environ.get('GREETING'), os.environ.get('HIDDEN')]}))",
    "slow": "import time; time.sleep(10)",
}


@pytest.mark.parametrize(("script", "extra", "want"), [
    ("result", {}, '{"n": 42}'),
    ("plain", {}, '{"status": "ok"}\n'),  # JSON without result: the output as is, as upstream
    ("error", {}, "word: quota exceeded"),
    ("text", {}, "word: returned invalid JSON: 'not json\\n'"),
    ("exit", {}, "word: exited with status 3 (stderr: disk full)"),
    ("env", {"env": ["GREETING"]}, '["hi", null]'),  # only the variables the tool names
    ("slow", {"timeout_ms": 300}, "word: timed out after 300 ms"),
    ("result", {"runtime": "server"}, "word: exec runtime 'server' is not supported (one-shot exec only)"),
])
async def test_exec_tool_protocol(enabled: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str,
                                  extra: dict[str, object], want: str) -> None:
    monkeypatch.setenv("GREETING", "hi")
    monkeypatch.setenv("HIDDEN", "no")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "t.py").write_text(SCRIPTS[script])
    tool = ToolSpec.model_validate({"name": "word", "mode": "exec",
                                    "exec": {"command": PY, "args": ["./tools/t.py"], **extra}})
    try:
        got = await run_exec_tool(tool, {"n": 21}, tmp_path)
    except ToolError as exc:
        got = str(exc)
    assert got == want


@pytest.mark.parametrize("arg", ["./../outside.py", "./link.py"])
async def test_exec_tool_paths_stay_in_the_bundle(enabled: None, tmp_path: Path, arg: str) -> None:
    root = tmp_path / "bundle"
    root.mkdir()
    (tmp_path / "outside.py").write_text("print('{}')")
    (root / "link.py").symlink_to(tmp_path / "outside.py")
    tool = ToolSpec.model_validate({"name": "t", "mode": "exec", "exec": {"command": PY, "args": [arg]}})
    with pytest.raises(ToolError, match="outside the bundle"):
        await run_exec_tool(tool, {}, root)


async def test_a_disabled_exec_tool_says_how_to_enable_it(in_cluster: None, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setattr(sandbox, "_forced", None)
    monkeypatch.delenv("ARENA_ALLOW_EXEC", raising=False)
    tool = ToolSpec.model_validate({"name": "t", "mode": "exec", "exec": {"command": "true"}})
    with pytest.raises(ToolError, match=r"ARENA_ALLOW_EXEC=true on the operator\) and the ArenaJob sets") as caught:
        await run_exec_tool(tool, {}, tmp_path)
    assert caught.value.kind == sandbox.DISABLED_KIND


@pytest.mark.parametrize(("prefixes", "chosen"), [
    ((("false",), ("unshare", "-n", "--")), ("unshare", "-n", "--")),  # the first that works
    ((("unshare", "-rn", "--"), ("unshare", "-n", "--")), ("unshare", "-rn", "--")),  # in order
    ((("no-such-command-here",), ("unshare", "-rn", "--")), ("unshare", "-rn", "--")),  # a missing program
])
async def test_isolation_is_probed_once_in_order(monkeypatch: pytest.MonkeyPatch, prefixes: tuple[tuple[str, ...]],
                                                 chosen: tuple[str, ...]) -> None:
    monkeypatch.setattr(sandbox, "NETNS_PREFIXES", prefixes)
    monkeypatch.setattr(sandbox, "_isolation", None)
    assert await sandbox.isolation({}) == chosen
    monkeypatch.setattr(sandbox, "NETNS_PREFIXES", (("false",),))
    assert await sandbox.isolation({}) == chosen  # remembered


def _worker_env(egress_settings: dict[str, str], exec_tools: bool) -> dict[str, str]:
    job = build_worker_job(WorkerJobParams(
        namespace="team-a", job_name="nightly", job_uid="uid-1", image="arena:test", artifact_url="http://a/x",
        artifact_digest="sha256:" + "0" * 64, job_key="k", redis_secret=SecretKeyRef("s", REDIS_URL_KEY),
        egress=egress_settings, exec_tools=exec_tools))
    return {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(("operator", "job", "pod"), [
    ({}, False, ("false", "false")),  # always set, so a job owner's podOverrides.extraEnvFrom cannot supply them
    ({}, True, ("false", "false")),  # the job alone cannot turn exec on
    ({"ARENA_ALLOW_EXEC": "true"}, False, ("false", "false")),  # nor the admin alone
    ({"ARENA_ALLOW_EXEC": "true"}, True, ("true", "false")),
    ({"ARENA_ALLOW_EXEC": "true", "ARENA_EXEC_ALLOW_NETWORK": "true"}, True, ("true", "true")),
])
def test_the_operator_sets_the_exec_gates_in_every_worker_pod(operator: dict[str, str], job: bool,
                                                               pod: tuple[str, str]) -> None:
    env = _worker_env(operator, job)
    assert (env["ARENA_ALLOW_EXEC"], env["ARENA_EXEC_ALLOW_NETWORK"]) == pod


@pytest.mark.parametrize("name", ["ARENA_ALLOW_EXEC", "ARENA_EXEC_ALLOW_NETWORK"])
def test_a_job_owner_cannot_set_the_exec_gates(name: str) -> None:
    problems = pod_override_problems({"extraEnv": [{"name": name, "value": "true"}]}, None, [])
    assert problems == [f"spec.workers.podOverrides.extraEnv[0].name: {name} is set by the operator"]


@pytest.mark.parametrize(("spec", "allowed", "error"), [
    (None, False, None),
    ({}, False, None),
    ({"allowTools": False}, False, None),
    ({"allowTools": True}, True, None),
    ({"allowTools": "yes"}, False, "valid boolean"),
    ({"allowCommands": ["sh"]}, False, "Extra inputs are not permitted"),
])
def test_the_arenajob_field(spec: dict[str, object] | None, allowed: bool, error: str | None) -> None:
    body = {"sourceRef": {"name": "s"}, **({"exec": spec} if spec is not None else {})}
    if error:
        with pytest.raises(ValueError, match=error):
            ArenaJobSpec.model_validate(body)
        return
    assert exec_tools_of(ArenaJobSpec.model_validate(body)) is allowed
