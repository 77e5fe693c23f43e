"""`${NAME}` / `${NAME:-default}` in provider files, so one bundle runs on mock or a real endpoint.

Which variables a bundle may read is the runtime's decision, not the bundle's (:class:`BundleEnv`): in a local
run (`arena run`) the user is cluster admin, namespace owner and bundle author at once, so every variable of the
process is readable (with a warning when one that looks like a secret lands outside a credential field); in the
cluster only the names the job owner granted are, so a bundle cannot copy the worker's Redis URL, S3 key or
another provider's API key into a URL, a header or a prompt. A name outside the grant reads as unset: its
`:-default` applies, and without one the bundle is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")
_SECRET_LIKE = re.compile(r"KEY|SECRET|TOKEN|PASSW|CREDENTIAL|AUTH|PRIVATE", re.IGNORECASE)
_CREDENTIAL_FIELDS = frozenset({"credential", "credential_env", "api_key_env", "headers_from_env"})


@dataclass(frozen=True)
class BundleEnv:
    """The variables `${NAME}` may read: `values`, and only `allowed` of them (None: all, the local case)."""

    values: Mapping[str, str]
    allowed: frozenset[str] | None = None

    @classmethod
    def process(cls) -> BundleEnv:
        """A local run: the whole environment of the process."""
        return cls(os.environ)

    @classmethod
    def granted(cls, names: Iterable[str], environ: Mapping[str, str] | None = None) -> BundleEnv:
        """The cluster: only `names` (what the job owner granted), read from `environ` (default: the process)."""
        return cls(os.environ if environ is None else environ, frozenset(names))

    @property
    def restricted(self) -> bool:
        return self.allowed is not None

    def readable(self, name: str) -> bool:
        return self.allowed is None or name in self.allowed

    def get(self, name: str) -> str | None:
        return self.values.get(name) if self.readable(name) else None


GRANT_VARIABLE = "ARENA_BUNDLE_ENV"
"""Comma-separated names a bundle may read in a cluster process (the worker Job sets it from extraEnv)."""
_process_env: BundleEnv | None = None  # a cluster process confines itself once (`arena worker`)
_scoped_env: ContextVar[BundleEnv | None] = ContextVar("arena_bundle_env", default=None)


def cluster_env(environ: Mapping[str, str] | None = None) -> BundleEnv:
    """The cluster's grant: the names in $ARENA_BUNDLE_ENV, nothing else."""
    environ = os.environ if environ is None else environ
    names = [n.strip() for n in environ.get(GRANT_VARIABLE, "").split(",") if n.strip()]
    return BundleEnv.granted(names, environ)


def confine_process(env: BundleEnv | None) -> None:
    """From now on this process reads bundles with `env` (None: back to the whole environment)."""
    global _process_env
    _process_env = env


@contextmanager
def reading(env: BundleEnv) -> Iterator[None]:
    """Bundles loaded inside (this thread or task) read `env`."""
    token = _scoped_env.set(env)
    try:
        yield
    finally:
        _scoped_env.reset(token)


def current_env() -> BundleEnv:
    return _scoped_env.get() or _process_env or BundleEnv.process()


class UnsetVariable(KeyError):
    def __init__(self, name: str, refused: bool = False) -> None:
        super().__init__(name)
        self.name, self.refused = name, refused

    def describe(self, env: BundleEnv) -> str:
        if self.refused:
            granted = ", ".join(sorted(env.allowed or ())) or "none"
            return (f"environment variable {self.name} may not be read by a bundle here (granted: {granted}); the "
                    "job owner grants a variable by setting it in workers.podOverrides.extraEnv")
        return f"environment variable {self.name} is not set (and has no default)"


def expand(text: str, env: Mapping[str, str] | BundleEnv | None = None) -> str:
    bundle_env = env if isinstance(env, BundleEnv) else BundleEnv(os.environ if env is None else env)

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = bundle_env.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise UnsetVariable(name, refused=not bundle_env.readable(name))

    return _REFERENCE.sub(substitute, text)


def references(text: str) -> list[str]:
    """The names `text`'s `${…}` read."""
    return [name for name, _ in _REFERENCE.findall(text)]


def secret_like_references(text: str) -> list[str]:
    """Names in `text`'s `${…}` that look like secrets (…KEY, …TOKEN, …PASSWORD, …)."""
    return [name for name, _ in _REFERENCE.findall(text) if _SECRET_LIKE.search(name)]


def expand_tree(node: Any, path: list[str | int], problems: list[tuple[list[str | int], str]],
                env: BundleEnv | None = None, warnings: list[tuple[list[str | int], str]] | None = None) -> None:
    """Expand every string value in place (keeps line info); unset or refused variables are reported by path;
    in a local run, a secret-looking variable expanded outside a credential field is a warning."""
    env = env or current_env()
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and "${" in value:
            where = [*path, key]
            if warnings is not None and not env.restricted and not _CREDENTIAL_FIELDS & {str(p) for p in where}:
                warnings += [(where, f"${{{name}}} looks like a secret and goes into {key}, not a credential "
                                     "field: in the cluster a bundle may not read it") for name in
                             secret_like_references(value) if env.get(name)]
            try:
                node[key] = expand(value, env)
            except UnsetVariable as exc:
                problems.append((where, exc.describe(env)))
        else:
            expand_tree(value, [*path, key], problems, env, warnings)
