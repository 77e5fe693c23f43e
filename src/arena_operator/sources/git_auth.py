"""Git credentials, and the environment that hands them to git without exposing them.

Credentials never go into a URL or onto a command line (both are visible in `ps` and in git's error output):
- HTTP(S): a GIT_ASKPASS helper script that prints the user name / password from environment variables, which
  only processes of the same user can read. Git asks it only after the server answered 401.
- SSH: the private key is written to a 0600 file in a private temp dir and passed with `-i`, together with
  `IdentitiesOnly=yes` and, when `known_hosts` is given, `StrictHostKeyChecking=yes`.
The temp dir is removed when the `git_environment` context ends.

Git also runs hermetically: no system/global config (no credential helpers or URL rewrites from the machine),
HOME inside the temp dir, no terminal prompts, and only the network protocols the URL policy allows.
"""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_USERNAME = "git"  # GitHub, GitLab, Gitea and Bitbucket accept any user name with a token
ALLOWED_PROTOCOLS = "http:https:ssh:git"  # GIT_ALLOW_PROTOCOL: blocks ext::, file:// even in redirects/submodules
# Variables passed through from the operator's environment: proxies and CA bundles matter in clusters.
_PASS_THROUGH = ("PATH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "ALL_PROXY", "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "TZ")
_USERNAME_VAR, _PASSWORD_VAR = "ARENA_GIT_USERNAME", "ARENA_GIT_PASSWORD"
_ASKPASS = f"""#!/bin/sh
# Prompts look like "Username for 'https://host': " and "Password for 'https://user@host': ".
case "$1" in
  [Uu]sername*) printf '%s\\n' "${_USERNAME_VAR}" ;;
  *) printf '%s\\n' "${_PASSWORD_VAR}" ;;
esac
"""


@dataclass(frozen=True)
class GitAuth:
    """Credentials for one git remote: HTTP basic (user name + password or token) and/or an SSH key."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssh_private_key: str | None = field(default=None, repr=False)
    known_hosts: str | None = None

    @classmethod
    def from_secret(cls, data: Mapping[str, str]) -> GitAuth:
        """Build from a Secret's decoded data.

        Keys: `username`, `password`, `token` (used as the password; the user name defaults to "git"),
        `identity` or `ssh-privatekey` (the kubernetes.io/ssh-auth key), `known_hosts`. Trailing newlines of
        user name, password and token are dropped: `kubectl create secret --from-file` keeps them, and they
        are never part of a real password.
        """
        def text(*keys: str) -> str | None:
            for key in keys:
                value = data.get(key)
                if value:
                    return value
            return None

        password = text("password", "token")
        password = password.rstrip("\r\n") if password else None
        username = text("username")
        username = username.rstrip("\r\n") if username else None
        if password and not username:
            username = DEFAULT_USERNAME
        key = text("identity", "ssh-privatekey")
        if key and not key.endswith("\n"):
            key += "\n"  # OpenSSH refuses a key file without the final newline
        return cls(username=username, password=password, ssh_private_key=key, known_hosts=text("known_hosts"))

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a message or log line."""
        return tuple(s for s in (self.password, self.ssh_private_key) if s)


@contextmanager
def git_environment(auth: GitAuth | None, scheme: str) -> Iterator[dict[str, str]]:
    """The complete environment for a git process talking to a `scheme` URL with `auth`; temp files removed after."""
    with tempfile.TemporaryDirectory(prefix="arena-git-auth-") as tmp:
        home = Path(tmp)
        home.chmod(stat.S_IRWXU)
        env = {name: os.environ[name] for name in _PASS_THROUGH if name in os.environ}
        env.update({
            "HOME": tmp,
            "LC_ALL": "C",  # error classification reads git's English messages
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
            "SSH_ASKPASS": "",  # with no GIT_ASKPASS and prompts off, git fails at once when asked for a password
        })
        if auth and auth.password and scheme in {"http", "https"}:
            env.update(_askpass(home, auth))
        if scheme == "ssh":
            env["GIT_SSH_COMMAND"] = _ssh_command(home, auth)
            env["GIT_SSH_VARIANT"] = "ssh"
        yield env


def _askpass(home: Path, auth: GitAuth) -> dict[str, str]:
    script = home / "askpass.sh"
    script.write_text(_ASKPASS)
    script.chmod(stat.S_IRWXU)
    return {"GIT_ASKPASS": str(script), _USERNAME_VAR: auth.username or DEFAULT_USERNAME,
            _PASSWORD_VAR: auth.password or ""}


def _ssh_command(home: Path, auth: GitAuth | None) -> str:
    known_hosts = home / "known_hosts"
    _write_private(known_hosts, auth.known_hosts if auth and auth.known_hosts else "")
    # Without known_hosts the host key cannot be verified; accept-new on an empty file is the honest spelling.
    checking = "yes" if auth and auth.known_hosts else "accept-new"
    parts = ["ssh", "-F", os.devnull, "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
             "-o", f"StrictHostKeyChecking={checking}", "-o", "IdentitiesOnly=yes"]
    if auth and auth.ssh_private_key:
        key = home / "identity"
        _write_private(key, auth.ssh_private_key)
        parts += ["-i", str(key)]
    return shlex.join(parts)


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
