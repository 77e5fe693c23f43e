"""A real kopf operator against the emulator, in its own thread and event loop: :func:`run_operator`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import importlib.util
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import kopf

from tests.harness.emulator import ClusterEmulator
from tests.harness.server import K8sApi

# (URL, bearer token or None) of the emulator the run's operator logs in to.
_emulator: contextvars.ContextVar[tuple[str, str | None]] = contextvars.ContextVar('arena_harness_emulator')
_logged_in_registries: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()


async def _login_to_emulator(**_: Any) -> kopf.ConnectionInfo | None:
    """kopf's credentials: the emulator URL (and token) of the operator run this handler executes in."""
    emulator = _emulator.get(None)
    return kopf.ConnectionInfo(server=emulator[0], token=emulator[1]) if emulator else None


def _load_operator_modules(modules: Sequence[str | os.PathLike[str]]) -> kopf.OperatorRegistry:
    """Import operator modules (dotted names or .py files) once, as ``kopf run`` does; their handlers
    land in kopf's default registry, which is returned."""
    for module in modules:
        spec_or_name = os.fspath(module)
        if spec_or_name.endswith('.py') or os.sep in spec_or_name:
            path = Path(spec_or_name).resolve()
            name = f'_arena_operator_under_test_{abs(hash(str(path)))}'
            if name not in sys.modules:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f'cannot import operator file {path}')
                sys.modules[name] = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(sys.modules[name])
        else:
            importlib.import_module(spec_or_name)
    return kopf.get_default_registry()


@attrs.define
class OperatorRun:
    """Handles of a kopf operator running in its own thread and event loop (see :func:`run_operator`)."""

    stop_flag: threading.Event = attrs.field(factory=threading.Event)
    ready_flag: threading.Event = attrs.field(factory=threading.Event)
    error: BaseException | None = None


@contextlib.contextmanager
def run_operator(
    target: kopf.OperatorRegistry | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    api: K8sApi | str,
    namespaces: Sequence[str] = ('default',),
    *,
    configure: Callable[[kopf.OperatorSettings], None] | None = None,
    memo: Any = None,
    timeout: float = 10.0,
    token: str | None = None,
    clusterwide: bool = False,
) -> Iterator[OperatorRun]:
    """Run a kopf operator against the emulator (``api``, or any API server URL) for the block's duration.

    ``target`` is a registry (handlers declared with ``registry=``), or operator modules/files which are
    imported into kopf's default registry as ``kopf run`` would. Scanning is disabled (``configure`` may turn
    it on: the emulator serves discovery, namespaces and CRD watches), namespaces are explicit, peering is off.
    With a :class:`K8sApi`, the block starts only when kopf's watch-streams are open. ``configure`` may adjust
    the settings further.
    ``token`` is the bearer token kopf sends (the identity ``ClusterEmulator.rbac`` restricts); ``clusterwide``
    watches all namespaces instead of ``namespaces``, as ``kopf run --all-namespaces``.
    """
    registry = target if isinstance(target, kopf.OperatorRegistry) else _load_operator_modules(
        [target] if isinstance(target, str | os.PathLike) else list(target))
    if registry not in _logged_in_registries:
        kopf.on.login(registry=registry, id='arena-harness-login')(_login_to_emulator)
        _logged_in_registries.add(registry)

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.queueing.exit_timeout = 1.0  # do not keep a stopping test waiting for idle workers
    if configure is not None:
        configure(settings)

    # Each run logs in to its own URL: the login handler reads it from the context of the run's loop.
    context = contextvars.copy_context()
    context.run(_emulator.set, (api.url if isinstance(api, K8sApi) else api, token))
    run = OperatorRun()

    def operate() -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(kopf.operator(
                    registry=registry, settings=settings, standalone=True, clusterwide=clusterwide,
                    namespaces=[] if clusterwide else list(namespaces),
                    stop_flag=run.stop_flag, ready_flag=run.ready_flag, memo=memo,
                ), context=context)
        except BaseException as e:
            run.error = e
        finally:
            run.ready_flag.set()  # unblock the caller if the operator died before becoming ready

    thread = threading.Thread(name='kopf-operator', daemon=True, target=operate)
    thread.start()
    try:
        if not run.ready_flag.wait(timeout) or not thread.is_alive():
            raise RuntimeError(f'the operator did not start: {run.error!r}') from run.error
        if isinstance(api, K8sApi):
            _wait_for_watches(api.emulator, [None] if clusterwide else namespaces, timeout)
        yield run
    finally:
        run.stop_flag.set()
        thread.join(timeout)
    if thread.is_alive():
        raise RuntimeError('the operator did not stop in time')
    if run.error is not None:
        raise run.error


def _wait_for_watches(emulator: ClusterEmulator, namespaces: Sequence[str | None], timeout: float) -> None:
    """Wait until the operator watches every namespace (None: cluster-wide) and opened no new stream for 50 ms.

    Only "live on return" depends on this: events are not lost either way, as watches resume from the
    resourceVersion of kopf's initial LIST. An operator that opens no watch in 1 s is not waited for.
    """
    started = time.monotonic()
    seen: dict[tuple[str, str | None], int] = {}
    settled_since = started
    while time.monotonic() - started < timeout:
        try:
            current = dict(emulator.open_watches)
        except RuntimeError:  # changed size while copied from the server thread; look again
            continue
        now = time.monotonic()
        if current != seen:
            seen, settled_since = current, now
        watched = {namespace for _, namespace in seen}
        covered = None in watched or all(namespace in watched for namespace in namespaces)
        if (seen and covered and now - settled_since > 0.05) or (not seen and now - started > 1.0):
            return
        time.sleep(0.01)
    raise TimeoutError(f'the operator did not watch all of {list(namespaces)} within {timeout}s: {seen}')
