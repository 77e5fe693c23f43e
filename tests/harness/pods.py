"""A pod of the test kubelet as a test sees it (:class:`PodProcess`), and what all kubelet modules share."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import IO

from tests.harness.objects import Body, dig

log = logging.getLogger('tests.harness.kubelet')
log.setLevel(logging.INFO)  # pod starts/exits (with log paths) show in pytest's "Captured log" of a failed test

NODE_NAME = 'kubelet'
POD_IP = '127.0.0.1'
TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking'


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for a reaper counts as dead)."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(')')[2].split()[0] not in ('Z', 'X')


class PodProcess:
    """One pod of the kubelet, as a test sees it (read-only for tests; the kubelet thread updates it).

    ``phase`` is the Pod's phase, ``reason``/``message`` the container's waiting/terminated reason
    (ContainerCreating, CreateContainerConfigError, FailedMount, Completed, Error, StartError). ``returncode`` is
    :class:`subprocess.Popen`'s (negative for a signal); ``exit_code`` the container's (``128 + signal``).
    ``stop_reason`` says why the kubelet stopped it (ScaleDown, JobSuspended, JobFinished, JobDeleted, Deleted,
    KubeletStopped), ``None`` if it ran on its own.
    """

    def __init__(self, *, namespace: str, name: str, uid: str, job_name: str, job_uid: str, index: int | None,
                 directory: Path, body: Body) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.job_name, self.job_uid, self.index = job_name, job_uid, index
        self.dir = directory
        self.stdout_path = directory / 'stdout.log'
        self.stderr_path = directory / 'stderr.log'
        self.phase = 'Pending'
        self.reason: str | None = 'ContainerCreating'
        self.message = ''
        self.command: list[str] = []
        self.env: dict[str, str] = {}
        self.cwd: Path | None = None
        self.mounts: dict[str, Path] = {}
        self.pid: int | None = None
        self.pids: list[int] = []  # of every start (OnFailure restarts run again in the same pod)
        self.returncode: int | None = None
        self.exit_code: int | None = None
        self.restart_count = 0
        self.stop_reason: str | None = None
        self.terminated = False  # no process left and none to come
        self.started_at: str | None = None
        self.finished_at: str | None = None
        # kubelet internals
        self._body = body  # the Pod object as created
        self._created = time.monotonic()
        self._created_rv = int(dig(body, 'metadata.resourceVersion', '0'))
        self._process: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._stop_counts = True
        self._kill_at: float | None = None
        self._retry_at = 0.0
        self._event_reasons: set[str] = set()
        self._accounted = False
        self._status_written: Body | None = None
        self._object_gone = False
        self._finalized = False

    @property
    def running(self) -> bool:
        return self._process is not None and self.returncode is None

    @property
    def hostname(self) -> str:
        return str(dig(self._body, 'spec.hostname') or self.name)

    def __repr__(self) -> str:
        return (f'<pod {self.namespace}/{self.name} phase={self.phase} reason={self.reason} pid={self.pid} '
                f'exit={self.exit_code} stop={self.stop_reason}>')
