"""A pod's first container as a local process: its argv, environment, working dir and mounts (the kubelet's
"create container" step). Nothing runs here; :mod:`tests.harness.runtime` starts what this prepares.

A pod
    The first container only (no init containers or sidecars). ``command`` + ``args`` with Kubernetes
    ``$(VAR)`` expansion (``$$`` escapes, unknown references stay as written); without ``command`` the image's
    entrypoint comes from ``Kubelet(entrypoints={'image[:tag]': [...]})``, else the pod fails (StartError).
    Its cwd is ``<pod dir>/rootfs`` (or the mapped ``workingDir``).

Environment (Kubernetes order: ``envFrom``, then ``env``, later entries win)
    * base: ``PATH`` (this venv's ``bin`` first, so ``arena`` and ``python3`` are the venv's), ``HOME`` (a
      per-pod dir), ``LANG=C.UTF-8``, ``TMPDIR`` (the host dir of a ``/tmp`` mount if any, else a per-pod dir),
      ``PYTHONUNBUFFERED=1``, ``PYTHONPATH``/``COVERAGE_PROCESS_START`` if the test process has them,
      ``HOSTNAME`` (the pod name, or ``<job>-<index>`` for Indexed Jobs), ``Kubelet(extra_env=...)``;
      container env entries override all of these.
    * ``value`` ($(VAR) expanded with the entries before it); ``valueFrom.secretKeyRef`` (``data`` base64-decoded,
      ``stringData`` also read), ``configMapKeyRef`` (``data``, ``binaryData``), ``fieldRef``
      (``metadata.name|namespace|uid``, ``metadata.labels['k']``, ``metadata.annotations['k']``,
      ``spec.nodeName`` = "kubelet", ``spec.serviceAccountName``, ``status.podIP``/``hostIP`` = 127.0.0.1),
      ``resourceFieldRef`` (the container's limits/requests; unset limits = this machine); ``envFrom``
      ``secretRef``/``configMapRef`` with ``prefix``. All honour ``optional``.
    * A missing Secret/ConfigMap or key (not optional) raises :class:`NotReady` with the reason a kubelet
      reports (CreateContainerConfigError); the runtime keeps the pod Pending and retries. So do an image named
      in ``Kubelet(unpullable_images=...)`` (ErrImagePull, then ImagePullBackOff) and, with
      ``Kubelet(node_labels=...)``, a ``nodeSelector`` those labels do not satisfy (Unschedulable: the Pod's
      PodScheduled condition is False).

Volumes and mounts — processes share the host's file system, so mount paths are *rewritten*
    * ``persistentVolumeClaim`` → ``<workdir>/pvcs/<namespace>/<claimName>`` (shared by all pods, kept). While
      the emulator serves ``persistentvolumeclaims`` (``declare_resources`` declares them), a missing claim
      leaves the pod Pending with reason FailedMount; otherwise no PVC object is needed.
    * ``emptyDir`` → ``<pod dir>/volumes/<name>``; ``secret``/``configMap`` (``items``, ``defaultMode``,
      ``optional``; a missing object → Pending, FailedMount) and ``projected`` secret/configMap sources,
      ``downwardAPI`` → files there; ``hostPath`` → that path. Other volume types become empty dirs.
    * each ``volumeMounts[]`` maps ``mountPath`` → the volume's dir (``/ subPath``, created, ``subPathExpr``
      expanded) and is exported as ``ARENA_TEST_MOUNT_<MOUNTPATH>`` (upper-cased, non-alphanumerics → ``_``;
      ``/results`` → ``ARENA_TEST_MOUNT_RESULTS``); ``PodProcess.mounts`` has the same map.
    * **rewrite**: every container env value, ``workingDir``, and every command/args item that is a mount path
      or below one (longest mount wins; also the part after ``=`` in ``--flag=/path``) is replaced by the host
      path. So ``ARENA_RESULTS_DIR=/results`` with ``/results`` mounted from a PVC reaches the worker as
      ``<workdir>/pvcs/<ns>/<claim>``, and ``HOME=/tmp`` with ``/tmp`` an emptyDir as that dir. Values already
      under the kubelet's workdir, pytest's base temp dir or ``Kubelet(host_paths=...)`` are never rewritten
      (so a ``/tmp`` mount does not capture host paths a test passes in). Paths inside shell scripts
      (``sh -c "... /results/x"``) are not rewritten: use an env var (``"$ARENA_RESULTS_DIR/x"``).
"""

from __future__ import annotations

import base64
import json
import math
import os
import posixpath
import re
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.harness.client import ApiClient
from tests.harness.objects import Body, dig
from tests.harness.pods import NODE_NAME, POD_IP, PodProcess, log

MOUNT_ENV_PREFIX = 'ARENA_TEST_MOUNT_'
VENV_BIN = Path(sys.executable).parent


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$(A)`` → the value of A if defined, else left as written; ``$$`` → ``$``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != '$' or i + 1 == n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == '$':
            out.append('$')
            i += 2
        elif following == '(':
            end = text.find(')', i + 2)
            if end < 0:
                out.append('$(')
                i += 2
            else:
                name = text[i + 2:end]
                out.append(env.get(name, f'$({name})'))
                i = end + 1
        else:
            out.append('$' + following)
            i += 2
    return ''.join(out)


def mount_env_name(mount_path: str) -> str:
    """``ARENA_TEST_MOUNT_<MOUNTPATH>``: ``/var/arena-results`` → ``ARENA_TEST_MOUNT_VAR_ARENA_RESULTS``."""
    return MOUNT_ENV_PREFIX + (re.sub(r'[^A-Za-z0-9]+', '_', mount_path).strip('_').upper() or 'ROOT')


_QUANTITY = re.compile(r'^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$')
_SUFFIXES = {None: 1, 'm': 1e-3, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15, 'E': 1e18,
             'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'Pi': 2 ** 50, 'Ei': 2 ** 60}


def quantity(text: Any) -> float:
    m = _QUANTITY.match(str(text).strip())
    if m is None:
        raise ValueError(f'not a quantity: {text!r}')
    return float(m[1]) * _SUFFIXES[m[2]]


class NotReady(Exception):
    """The pod cannot start yet: a kubelet reason (CreateContainerConfigError, FailedMount) and its message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f'{reason}: {message}')
        self.reason, self.message = reason, message


class PodSpecResolver:
    """Prepares the process of a pod's first container (see the module docstring for the rules)."""

    def __init__(self, client: ApiClient, workdir: Path, *, extra_env: Mapping[str, str],
                 entrypoints: Mapping[str, Sequence[str]], host_paths: Sequence[str],
                 serves_pvcs: Callable[[], bool], unpullable_images: Collection[str] = (),
                 node_labels: Mapping[str, str] | None = None) -> None:
        self.client, self.workdir = client, workdir
        self.extra_env, self.entrypoints, self.host_paths = extra_env, entrypoints, host_paths
        self.serves_pvcs = serves_pvcs
        self.unpullable_images, self.node_labels = frozenset(unpullable_images), node_labels

    def _schedule_and_pull(self, pod: PodProcess, spec: Mapping[str, Any], image: str) -> None:
        """The scheduler's nodeSelector check (only with ``node_labels``) and the image pull (``unpullable_images``
        never pull: ErrImagePull, then ImagePullBackOff, as a kubelet reports them)."""
        selector = spec.get('nodeSelector') or {}
        if self.node_labels is not None and any(self.node_labels.get(k) != v for k, v in selector.items()):
            raise NotReady('Unschedulable', "0/1 nodes are available: 1 node(s) didn't match Pod's node "
                                            'affinity/selector.')
        if image in self.unpullable_images or image.rsplit(':', 1)[0] in self.unpullable_images:
            backoff = pod.reason in ('ErrImagePull', 'ImagePullBackOff')
            raise NotReady('ImagePullBackOff' if backoff else 'ErrImagePull',
                           f'Back-off pulling image "{image}"' if backoff else
                           f'failed to pull and unpack image "{image}": not found')

    def prepare(self, pod: PodProcess) -> tuple[list[str], dict[str, str], Path, dict[str, Path]]:
        spec = pod._body.get('spec') or {}
        containers = spec.get('containers') or []
        if not containers:
            raise NotReady('CreateContainerConfigError', 'the pod has no containers')
        container = containers[0]
        self._schedule_and_pull(pod, spec, str(container.get('image') or ''))
        lookups = Lookups(self.client, pod.namespace)

        # Environment, in the kubelet's order: envFrom, then env; $(VAR) sees the entries before it.
        env: dict[str, str] = {}
        for source in container.get('envFrom') or []:
            prefix = source.get('prefix') or ''
            for kind, ref in (('Secret', source.get('secretRef')), ('ConfigMap', source.get('configMapRef'))):
                if ref is None:
                    continue
                data = lookups.data(kind, ref.get('name', ''), optional=bool(ref.get('optional')), env=True)
                for key, value in (data or {}).items():
                    if '=' not in key:
                        env[prefix + key] = value
        if pod.index is not None:
            env['JOB_COMPLETION_INDEX'] = str(pod.index)
        for item in container.get('env') or []:
            name = item['name']
            if 'valueFrom' not in item:
                env[name] = expand(str(item.get('value') or ''), env)
                continue
            value = self._value_from(pod, container, item['valueFrom'], lookups)
            if value is not None:
                env[name] = value

        # Volumes → host dirs, then mounts → mountPath: host path.
        volume_dirs = {volume['name']: volume for volume in spec.get('volumes') or []}
        mounts: dict[str, Path] = {}
        for mount in container.get('volumeMounts') or []:
            volume = volume_dirs.get(mount['name'])
            if volume is None:
                raise NotReady('CreateContainerConfigError', f'volume "{mount["name"]}" is not in the pod spec')
            base = self._volume_dir(pod, volume, lookups)
            sub = mount.get('subPath') or (expand(mount['subPathExpr'], env) if mount.get('subPathExpr') else '')
            host = base / sub if sub else base
            if sub and not host.exists():
                host.mkdir(parents=True, exist_ok=True)
            mounts[posixpath.normpath(mount['mountPath'])] = host

        def rewrite(value: str) -> str:
            return self._rewrite(value, mounts)

        full: dict[str, str] = {
            'PATH': os.pathsep.join([str(VENV_BIN), '/usr/local/bin', '/usr/bin', '/bin']),
            'HOME': str(pod.dir / 'home'),
            'LANG': 'C.UTF-8',
            'TMPDIR': str(mounts.get('/tmp', pod.dir / 'tmp')),
            'PYTHONUNBUFFERED': '1',
            'HOSTNAME': pod.hostname,
        }
        for passthrough in ('PYTHONPATH', 'COVERAGE_PROCESS_START'):
            if os.environ.get(passthrough):
                full[passthrough] = os.environ[passthrough]
        full.update(self.extra_env)
        full.update({mount_env_name(path): str(host) for path, host in mounts.items()})
        full.update({name: rewrite(value) for name, value in env.items()})

        command = [expand(str(arg), env) for arg in container.get('command') or []]
        args = [expand(str(arg), env) for arg in container.get('args') or []]
        if not command:
            image = str(container.get('image') or '')
            command = list(self.entrypoints.get(image) or self.entrypoints.get(image.rsplit(':', 1)[0]) or [])
            if not command:
                args = []  # nothing to run: _spawn reports a StartError
        argv = [rewrite(arg) for arg in command + args]
        working_dir = container.get('workingDir')
        if working_dir:
            mapped = rewrite(working_dir)
            in_container = mapped == working_dir and not self._is_host_path(working_dir)
            cwd = pod.dir / 'rootfs' / working_dir.lstrip('/') if in_container else Path(mapped)
        else:
            cwd = pod.dir / 'rootfs'
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, full, cwd, mounts

    def _is_host_path(self, path: str) -> bool:
        return any(path == host or path.startswith(host.rstrip('/') + '/') for host in self.host_paths)

    def _rewrite(self, value: str, mounts: Mapping[str, Path]) -> str:
        """A container path under a mount → its host path (also after ``=`` in ``--flag=/path``)."""
        def mapped(path: str) -> str | None:
            if self._is_host_path(path):
                return None
            for mount in sorted(mounts, key=len, reverse=True):
                if path == mount or path.startswith(mount.rstrip('/') + '/'):
                    return str(mounts[mount]) + path[len(mount.rstrip('/')):] if mount != '/' else (
                        str(mounts[mount]) + path)
            return None

        whole = mapped(value)
        if whole is not None:
            return whole
        flag, equals, rest = value.partition('=')
        if equals and rest.startswith('/'):
            part = mapped(rest)
            if part is not None:
                return f'{flag}={part}'
        return value

    def _value_from(self, pod: PodProcess, container: Body, source: Body, lookups: Lookups) -> str | None:
        for kind, field in (('Secret', 'secretKeyRef'), ('ConfigMap', 'configMapKeyRef')):
            if field in source:
                ref = source[field]
                optional = bool(ref.get('optional'))
                data = lookups.data(kind, ref.get('name', ''), optional=optional, env=True)
                if data is None:
                    return None
                if ref.get('key') not in data:
                    if optional:
                        return None
                    raise NotReady('CreateContainerConfigError',
                                    f'couldn\'t find key {ref.get("key")} in {kind} {pod.namespace}/{ref.get("name")}')
                return data[ref['key']]
        if 'fieldRef' in source:
            return self._field(pod, source['fieldRef'].get('fieldPath', ''))
        if 'resourceFieldRef' in source:
            ref = source['resourceFieldRef']
            resource = ref.get('resource', '')
            kind, _, name = resource.partition('.')
            value = dig(container, f'resources.{kind}.{name}')
            if value is None and kind == 'requests':
                value = dig(container, f'resources.limits.{name}')
            if value is None:  # no limit: the node's capacity
                value = (os.cpu_count() or 1) if name == 'cpu' else (
                    os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))
            amount = quantity(value) / quantity(ref.get('divisor') or '1')
            return str(math.ceil(amount))
        raise NotReady('CreateContainerConfigError', f'unsupported valueFrom: {json.dumps(source)}')

    def _field(self, pod: PodProcess, path: str) -> str:
        body = pod._body
        if m := re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path):
            return str((dig(body, f'metadata.{m[1]}') or {}).get(m[2], ''))
        values = {
            'metadata.name': pod.name, 'metadata.namespace': pod.namespace, 'metadata.uid': pod.uid,
            'spec.nodeName': NODE_NAME, 'spec.serviceAccountName': dig(body, 'spec.serviceAccountName') or 'default',
            'status.podIP': POD_IP, 'status.podIPs': POD_IP, 'status.hostIP': POD_IP, 'status.hostIPs': POD_IP,
        }
        if path not in values:
            raise NotReady('CreateContainerConfigError', f'unsupported fieldRef fieldPath: {path}')
        return str(values[path])

    def _volume_dir(self, pod: PodProcess, volume: Body, lookups: Lookups) -> Path:
        name = volume['name']
        if 'persistentVolumeClaim' in volume:
            claim = volume['persistentVolumeClaim'].get('claimName', '')
            if self.serves_pvcs() and lookups.get('v1', 'persistentvolumeclaims', claim) is None:
                raise NotReady('FailedMount', f'persistentvolumeclaim "{claim}" not found')
            path = self.workdir / 'pvcs' / pod.namespace / claim
            path.mkdir(parents=True, exist_ok=True)
            return path
        if 'hostPath' in volume:
            path = Path(volume['hostPath'].get('path', '/'))
            if volume['hostPath'].get('type') == 'DirectoryOrCreate':
                path.mkdir(parents=True, exist_ok=True)
            return path
        path = pod.dir / 'volumes' / name
        path.mkdir(parents=True, exist_ok=True)
        failed = f'MountVolume.SetUp failed for volume "{name}" : '
        if 'secret' in volume or 'configMap' in volume:
            kind, source = ('Secret', volume['secret']) if 'secret' in volume else ('ConfigMap', volume['configMap'])
            object_name = source.get('secretName' if kind == 'Secret' else 'name', '')
            self._project(path, lookups, kind, object_name, source, source.get('defaultMode'), failed)
        elif 'projected' in volume:
            default_mode = volume['projected'].get('defaultMode')
            for item in volume['projected'].get('sources') or []:
                for kind, key in (('Secret', 'secret'), ('ConfigMap', 'configMap')):
                    if key in item:
                        self._project(path, lookups, kind, item[key].get('name', ''), item[key], default_mode, failed)
                if 'downwardAPI' in item:
                    self._downward(pod, path, item['downwardAPI'].get('items') or [])
        elif 'downwardAPI' in volume:
            self._downward(pod, path, volume['downwardAPI'].get('items') or [])
        elif 'emptyDir' not in volume:
            log.warning('pod %s/%s: volume %s of an unsupported type is an empty dir', pod.namespace, pod.name, name)
        return path

    @staticmethod
    def _project(path: Path, lookups: Lookups, kind: str, name: str, source: Body, default_mode: Any,
                 failed: str) -> None:
        data = lookups.data(kind, name, optional=bool(source.get('optional')), env=False, failed=failed)
        if data is None:
            return
        items = source.get('items') or [{'key': key, 'path': key} for key in data]
        for item in items:
            if item['key'] not in data:
                if source.get('optional'):
                    continue
                what = 'configmap references non-existent config key' if kind == 'ConfigMap' else (
                    'references non-existent secret key')
                raise NotReady('FailedMount', f'{failed}{what}: {item["key"]}')
            target = path / item['path']
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(os.fsencode(data[item['key']]))
            mode = item.get('mode', default_mode)
            target.chmod(int(mode) if mode is not None else 0o644)

    def _downward(self, pod: PodProcess, path: Path, items: Sequence[Body]) -> None:
        for item in items:
            if 'fieldRef' in item:
                target = path / item['path']
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(self._field(pod, item['fieldRef'].get('fieldPath', '')))


class Lookups:
    """Secrets/ConfigMaps/PVCs of one pod start, each fetched once, with the kubelet's error messages."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self._client, self._namespace = client, namespace
        self._cache: dict[tuple[str, str], Body | None] = {}

    def get(self, api_version: str, plural: str, name: str) -> Body | None:
        key = (plural, name)
        if key not in self._cache:
            self._cache[key] = self._client.get(api_version, plural, self._namespace, name)
        return self._cache[key]

    def data(self, kind: str, name: str, *, optional: bool, env: bool, failed: str = '') -> dict[str, str] | None:
        """The decoded data of a Secret or ConfigMap (values as str, bytes kept via surrogateescape)."""
        obj = self.get('v1', 'secrets' if kind == 'Secret' else 'configmaps', name)
        if obj is None:
            if optional:
                return None
            message = f'{kind.lower()} "{name}" not found'
            if env:
                raise NotReady('CreateContainerConfigError', message)
            raise NotReady('FailedMount', failed + message)
        data: dict[str, str] = {}
        if kind == 'Secret':
            for key, value in (obj.get('data') or {}).items():
                data[key] = os.fsdecode(base64.b64decode(value))
            data.update({key: str(value) for key, value in (obj.get('stringData') or {}).items()})
        else:
            if not env:
                for key, value in (obj.get('binaryData') or {}).items():
                    data[key] = os.fsdecode(base64.b64decode(value))
            data.update({key: str(value) for key, value in (obj.get('data') or {}).items()})
        return data
