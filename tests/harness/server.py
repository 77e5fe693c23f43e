"""The emulator in a background thread: :func:`serve_k8s_api`, the ``k8s_api`` fixture, and :class:`K8sApi`."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiohttp.web
import kmock
import pytest

from tests.harness.client import ApiClient
from tests.harness.emulator import ClusterEmulator
from tests.harness.kubectl import KubectlStream, kubectl, kubectl_stream, write_kubeconfig
from tests.harness.resources import declare_resources


class K8sApi(ApiClient):
    """A running emulator: its URL, a kubeconfig for kubectl, and the blocking CRUD helpers of :class:`ApiClient`."""

    def __init__(self, url: str, emulator: ClusterEmulator, workdir: Path) -> None:
        super().__init__(url, timeout=10.0)
        self.emulator = emulator
        self.kubeconfig = write_kubeconfig(url, workdir / 'kubeconfig')

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this emulator (see :func:`tests.harness.kubectl.kubectl`)."""
        return kubectl(*args, kubeconfig=self.kubeconfig, input=input, check=check)

    def wait_for_watch(self, api_version: str, plural: str, namespace: str | None, *, timeout: float = 10.0) -> None:
        """Wait until some client (a ``kubectl get -w``…) watches ``plural`` in ``namespace`` (None: all)."""
        deadline = time.monotonic() + timeout
        while not self.emulator.open_watches.get((f'{api_version}/{plural}', namespace)):
            if time.monotonic() > deadline:
                raise TimeoutError(f'nobody watched {plural} in {namespace!r} within {timeout}s')
            time.sleep(0.01)

    def kubectl_stream(self, *args: str) -> contextlib.AbstractContextManager[KubectlStream]:
        """``with api.kubectl_stream('get', 'pods', '-w') as watch:`` — a kubectl that keeps running."""
        return kubectl_stream(*args, kubeconfig=self.kubeconfig)


class _ServerThread(threading.Thread):
    """Serves the emulator on 127.0.0.1:<free port> from its own event loop in a daemon thread.

    aiohttp's server is used directly instead of ``kmock.Server``: the latter also patches aiohttp's
    DNS resolution process-wide (it must be exited LIFO), which is unsafe next to kopf's thread.
    """

    def __init__(self, emulator: ClusterEmulator) -> None:
        super().__init__(name='k8s-emulator', daemon=True)
        self.emulator = emulator
        self.url = ''
        self.error: BaseException | None = None
        self.started_event = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            self.error = e
        finally:
            self.started_event.set()

    async def _serve(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        async with self.emulator:
            server = aiohttp.web.Server(self.emulator, handler_cancellation=True)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=0.5)
            await runner.setup()
            try:
                site = aiohttp.web.TCPSite(runner, '127.0.0.1', 0)
                await site.start()
                host, port = runner.addresses[0][:2]
                self.url = f'http://{host}:{port}'
                self.started_event.set()
                await self._stopping.wait()
            finally:
                await runner.cleanup()

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just finished on its own
                self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError('the Kubernetes emulator did not stop in time')


@contextlib.contextmanager
def serve_k8s_api(namespaces: Sequence[str] = ('default',)) -> Iterator[K8sApi]:
    """Start a :class:`ClusterEmulator` with all resources declared and ``namespaces`` created.

    On exit, fails if the emulator itself crashed on a request (errors other than Kubernetes
    statuses such as 404/409), so that an emulator bug never hides behind a client's retry.
    """
    emulator = ClusterEmulator()
    declare_resources(emulator)
    thread = _ServerThread(emulator)
    thread.start()
    thread.started_event.wait(10)
    if not thread.url:
        raise RuntimeError(f'the Kubernetes emulator did not start: {thread.error!r}') from thread.error
    errors = emulator.errors  # the live list of this server's request failures (while it runs)
    with tempfile.TemporaryDirectory(prefix='k8s-emulator-') as workdir:
        api = K8sApi(thread.url, emulator, Path(workdir))
        try:
            for namespace in namespaces:
                api.create_namespace(namespace)
            yield api
        finally:
            api.close()
            thread.stop()
    crashes = [error for error in errors if not isinstance(error, kmock.KubernetesError)]
    if crashes:
        raise AssertionError(f'the Kubernetes emulator failed on {len(crashes)} request(s)') from crashes[0]


@pytest.fixture
def k8s_api() -> Iterator[K8sApi]:
    """A fresh emulated Kubernetes API per test (well under 0.1 s to start), with the ``default`` namespace."""
    with serve_k8s_api() as api:
        yield api
