"""The sandbox a bundle's own commands run in (exec tools, and the `tool_exec` assertion through them).

A bundle is untrusted input and an exec tool's command is arbitrary code, so it runs only when enabled — `arena run
--allow-exec` (or ``ARENA_ALLOW_EXEC=true``) locally; in the cluster when the admin allows exec tools (Helm value
``exec.allowTools``) and the ArenaJob does (``spec.exec.allowTools``), the operator then setting
``ARENA_ALLOW_EXEC=true`` in its worker pods; never in the operator process itself — and then only inside:

- a network namespace of its own (``unshare -n``, else ``unshare -rn``): no network at all. Where neither can be
  made, it does not run unless ``ARENA_EXEC_ALLOW_NETWORK=true`` says the machine's own isolation is enough;
- a fresh scratch directory as working directory, ``HOME`` and ``TMPDIR``, removed afterwards;
- an environment scrubbed to ``PATH`` and ``LANG`` plus the variables the tool names (read through the process's
  variable policy: in the cluster, only those the job owner granted);
- a time limit (the process group is killed, and is at the end in any case: nothing it started outlives it),
  bounded stdout and stderr, and resource limits (CPU seconds, file size, address space, no core files).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .egress import ALLOW_EXEC_VARIABLE, confined
from .egress import EXEC_ALLOW_NETWORK_VARIABLE as ALLOW_NETWORK_VARIABLE

DISABLED_KIND = "exec_disabled"
MAX_OUTPUT_BYTES = 1_000_000
STDERR_TAIL_CHARS = 2_000
PROBE_TIMEOUT_S = 5.0
KILL_GRACE_S = 2.0
FILE_SIZE_LIMIT = 100 * 2**20
ADDRESS_SPACE_LIMIT = 4 * 2**30
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
NETNS_PREFIXES: tuple[tuple[str, ...], ...] = (("unshare", "-n", "--"), ("unshare", "-rn", "--"))

_forced: bool | None = None  # `arena run --allow-exec` (True) or the operator (False); None: the environment decides
_isolation: tuple[str, ...] | None = None


class SandboxRefused(Exception):
    """Exec is not enabled here, or no network namespace can be made: the message says what would enable it."""

    kind = DISABLED_KIND


def allow_exec() -> None:
    """`arena run --allow-exec`: this process may run a bundle's commands (in the sandbox)."""
    global _forced
    _forced = True


def forbid_exec() -> None:
    """The operator: a bundle's commands never run here, whatever the environment says."""
    global _forced
    _forced = False


def refusal(environ: Mapping[str, str] | None = None) -> str | None:
    """Why exec may not run in this process, naming the switch that would allow it; None when it may."""
    environ = os.environ if environ is None else environ
    if _forced is False:
        return "exec tools never run in the operator process"
    if _forced or environ.get(ALLOW_EXEC_VARIABLE, "").strip().lower() == "true":
        return None
    if confined():
        return ("exec tools are disabled in the cluster: they run only when the cluster admin allows them (Helm value "
                f"exec.allowTools, {ALLOW_EXEC_VARIABLE}=true on the operator) and the ArenaJob sets "
                "spec.exec.allowTools: true")
    return f"exec tools are disabled: run `arena run --allow-exec` (or set {ALLOW_EXEC_VARIABLE}=true)"


async def _works(prefix: tuple[str, ...]) -> bool:
    try:
        process = await asyncio.create_subprocess_exec(*prefix, "true", stdin=asyncio.subprocess.DEVNULL,
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
    except OSError:
        return False
    try:
        return await asyncio.wait_for(process.wait(), PROBE_TIMEOUT_S) == 0
    except TimeoutError:
        process.kill()
        await process.wait()
        return False


async def isolation(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The command prefix that gives a process no network (probed once); raises SandboxRefused when none works
    and the admin did not accept running without one."""
    global _isolation
    environ = os.environ if environ is None else environ
    if _isolation is None:
        for prefix in NETNS_PREFIXES:
            if await _works(prefix):
                _isolation = prefix
                break
    if _isolation is not None:
        return _isolation
    if environ.get(ALLOW_NETWORK_VARIABLE, "").strip().lower() == "true":
        return ()
    raise SandboxRefused("exec tools need a network namespace and none can be made here (`unshare -n` and "
                         f"`unshare -rn` failed); set {ALLOW_NETWORK_VARIABLE}=true to run them with the network")


@dataclass(slots=True)
class Outcome:
    returncode: int | None  # None: killed at the time limit
    stdout: bytes
    stderr: str
    truncated: bool  # stdout went past MAX_OUTPUT_BYTES (the process was killed)


def _limits(cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


async def _read(stream: asyncio.StreamReader, limit: int, overflow: Callable[[], None]) -> tuple[bytes, bool]:
    """Up to `limit` bytes; past it the process is killed (`overflow`) and the rest drained unread."""
    data, cut = b"", False
    while chunk := await stream.read(65536):
        if not cut:
            data += chunk
            if len(data) > limit:
                data, cut = data[:limit], True
                overflow()
    return data, cut


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def run(argv: list[str], stdin: bytes, timeout_s: float, env: Mapping[str, str]) -> Outcome:
    """Run `argv` in the sandbox; raises SandboxRefused when it may not run at all."""
    if (why := refusal()) is not None:
        raise SandboxRefused(why)
    prefix = await isolation()
    scratch = tempfile.mkdtemp(prefix="arena-exec-")
    clean = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "LANG": "C.UTF-8", **env, "HOME": scratch,
             "TMPDIR": scratch}
    cpu = max(1, int(timeout_s) + 1)
    try:
        process = await asyncio.create_subprocess_exec(
            *prefix, *argv, cwd=scratch, env=clean, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=lambda: _limits(cpu))
        return await _collect(process, stdin, timeout_s)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _collect(process: asyncio.subprocess.Process, stdin: bytes, timeout_s: float) -> Outcome:
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None

    async def feed() -> None:
        try:
            process.stdin.write(stdin)
            await process.stdin.drain()
            process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the command did not read its input: its output says what happened

    def overflow() -> None:
        _kill(process)

    reading = asyncio.gather(_read(process.stdout, MAX_OUTPUT_BYTES, overflow),
                             _read(process.stderr, MAX_OUTPUT_BYTES, overflow), feed())
    try:
        (stdout, truncated), (stderr, _), _ = await asyncio.wait_for(asyncio.shield(reading), timeout_s)
    except TimeoutError:
        _kill(process)
        await asyncio.wait_for(process.wait(), KILL_GRACE_S)
        reading.cancel()
        return Outcome(None, b"", "", False)
    returncode = await asyncio.wait_for(process.wait(), KILL_GRACE_S)
    _kill(process)  # what it left running in its process group goes with it
    tail = stderr.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:].strip()
    return Outcome(returncode, stdout, tail, truncated)
