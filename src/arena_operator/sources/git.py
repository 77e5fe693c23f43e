"""Git sources: the cheap remote revision check (`git ls-remote`) and a shallow fetch of one ref.

Git runs as a subprocess under asyncio rather than through GitPython: a timeout or a cancelled reconcile must kill
git and its helpers (`git-remote-http`, `ssh`) — a thread blocked in GitPython cannot be cancelled — and the
environment must be exactly the one `git_environment` builds, while GitPython always merges in the operator's
own (a stray GIT_DIR or credential helper would change what is fetched or leak).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import tempfile
import time
from pathlib import Path

from .errors import (
    AUTHENTICATION_FAILED,
    FETCH_TIMEOUT,
    REVISION_NOT_FOUND,
    UNREACHABLE,
    SourceError,
    redact,
)
from .git_auth import GitAuth, git_environment
from .git_url import check_commit, check_git_url, check_ref_name
from .paths import copy_subtree, safe_relpath
from .revision import git_revision

__all__ = ["DEFAULT_TIMEOUT", "GitAuth", "GitCommandFailed", "GitSource"]

DEFAULT_TIMEOUT = 60.0
_NETWORK_COMMANDS = {"fetch", "ls-remote"}
# Classification of git's (LC_ALL=C) stderr; the first matching group wins.
_AUTH = ("authentication failed", "could not read username", "could not read password", "terminal prompts disabled",
         "permission denied", "host key verification failed", "http 401", "http 403",
         "the requested url returned error: 401", "the requested url returned error: 403", "access denied to")
_NOT_FOUND = ("couldn't find remote ref", "not our ref", "no such remote ref", "unadvertised object")
_TIMEOUT = ("timed out", "operation too slow")
_BOILERPLATE = re.compile(r"(?i)^(please make sure you have the correct access rights|and the repository exists)")


class GitCommandFailed(RuntimeError):
    """A local git step (init, checkout, rev-parse) failed: a disk or environment problem, not the remote's."""


class GitSource:
    """One `spec.git`: URL, at most one of branch/tag/commit (none: the remote's default branch), and `path`.

    Construction validates everything that can be checked offline (URL policy, ref names, path) and raises
    SourceError before any process runs.
    """

    def __init__(self, url: str, branch: str | None = None, tag: str | None = None, commit: str | None = None,
                 path: str | None = None, auth: GitAuth | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.scheme = check_git_url(url)
        self.url = url
        self.branch = check_ref_name(branch, "branch") if branch else None
        self.tag = check_ref_name(tag, "tag") if tag else None
        self.commit = check_commit(commit) if commit else None
        self.path = str(safe_relpath(path or ".", "spec.git.path"))
        self.auth = auth
        self.timeout = timeout
        self._secrets = auth.secrets() if auth else ()

    def __repr__(self) -> str:
        return f"GitSource({redact(self.url)!r}, ref={self._ref_label()!r}, path={self.path!r})"

    async def remote_revision(self) -> str:
        """The revision the remote holds now, via `git ls-remote` (no clone); a pinned commit needs no network."""
        if self.commit:
            return git_revision(self.commit)
        deadline = time.monotonic() + self.timeout
        name, sha = await self._resolve(deadline)
        return git_revision(sha, name)

    async def fetch(self, dest: Path) -> str:
        """Shallow-fetch the ref, copy `path` of it into `dest` (created if needed), return its revision."""
        deadline = time.monotonic() + self.timeout
        dest.parent.mkdir(parents=True, exist_ok=True)
        # The checkout lives beside `dest`: on the operator's volume, not in a possibly small /tmp.
        with tempfile.TemporaryDirectory(prefix=".arena-git-", dir=dest.parent) as tmp:
            work = Path(tmp)
            await self._git(["init", "--quiet", "--", str(work)], deadline, cwd=work)
            if self.commit:
                name, want = None, self.commit
                await self._fetch_commit(work, deadline)
            else:
                name = self.tag or self.branch or (await self._resolve(deadline))[0]
                want = "FETCH_HEAD"
                ref = f"refs/tags/{self.tag}" if self.tag else f"refs/heads/{name}"
                await self._git(["fetch", "--quiet", "--depth=1", "--no-tags", "--", self.url, ref], deadline,
                                cwd=work)
            await self._checkout(work, want, deadline)
            sha = (await self._git(["rev-parse", "--verify", "HEAD^{commit}"], deadline, cwd=work)).strip()
            await asyncio.to_thread(copy_subtree, work, self.path, dest, what="spec.git.path", ignore=(".git",))
        if self.commit:
            return git_revision(self.commit)  # as pinned, so remote_revision() and fetch() agree
        return git_revision(sha, name)

    async def _fetch_commit(self, work: Path, deadline: float) -> None:
        """Fetch the pinned commit directly; else (abbreviated pin, or a server refusing unadvertised objects)
        fetch all branches and tags and let checkout find it."""
        assert self.commit is not None
        if len(self.commit) == 40:
            try:
                await self._git(["fetch", "--quiet", "--depth=1", "--no-tags", "--", self.url, self.commit], deadline,
                                cwd=work)
                return
            except SourceError as exc:
                if exc.reason != REVISION_NOT_FOUND:
                    raise
        await self._git(["fetch", "--quiet", "--no-tags", "--", self.url, "+refs/heads/*:refs/remotes/r/*",
                         "+refs/tags/*:refs/tags/*"], deadline, cwd=work)

    async def _checkout(self, work: Path, want: str, deadline: float) -> None:
        try:
            await self._git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", f"{want}^{{commit}}",
                             "--"], deadline, cwd=work)
        except GitCommandFailed:
            if want == "FETCH_HEAD":
                raise
            raise SourceError(REVISION_NOT_FOUND, f"commit {self.commit} not found (or ambiguous) in the branches "
                                                  f"and tags of {self.url}", secrets=self._secrets) from None

    async def _resolve(self, deadline: float) -> tuple[str, str]:
        """(ref name, commit sha) of the branch/tag/default branch, from `git ls-remote`."""
        if self.tag:
            refs = [f"refs/tags/{self.tag}", f"refs/tags/{self.tag}^{{}}"]
            found = _ls_remote_refs(await self._git(["ls-remote", "--", self.url, *refs], deadline))
            sha = found.get(refs[1]) or found.get(refs[0])  # the peeled commit of an annotated tag
            return self.tag, self._found(sha, f"tag {self.tag!r}")
        if self.branch:
            ref = f"refs/heads/{self.branch}"
            found = _ls_remote_refs(await self._git(["ls-remote", "--", self.url, ref], deadline))
            return self.branch, self._found(found.get(ref), f"branch {self.branch!r}")
        out = await self._git(["ls-remote", "--symref", "--", self.url, "HEAD"], deadline)
        branch, sha = None, None
        for line in out.splitlines():
            target, _, name = line.partition("\t")
            if name == "HEAD" and target.startswith("ref: refs/heads/"):
                branch = target.removeprefix("ref: refs/heads/")
            elif name == "HEAD":
                sha = target
        if not branch:
            raise SourceError(REVISION_NOT_FOUND, f"{self.url} does not name a default branch (empty repository, "
                                                  "or a server without symref support); set spec.git.ref.branch",
                              secrets=self._secrets)
        return branch, self._found(sha, f"default branch {branch!r}")

    def _found(self, sha: str | None, what: str) -> str:
        if not sha:
            raise SourceError(REVISION_NOT_FOUND, f"{what} not found in {self.url}", secrets=self._secrets)
        return sha

    def _ref_label(self) -> str:
        if self.commit:
            return f"commit {self.commit}"
        if self.tag:
            return f"tag {self.tag!r}"
        return f"branch {self.branch!r}" if self.branch else "the default branch"

    async def _git(self, args: list[str], deadline: float, cwd: Path | None = None) -> str:
        """Run git; stdout on success, a classified SourceError (redacted) otherwise."""
        with git_environment(self.auth, self.scheme) as env:
            code, out, err = await _run(["git", *args], env, cwd, deadline - time.monotonic())
        if code is None:
            raise SourceError(FETCH_TIMEOUT, f"git {args[0]} of {self.url} ({self._ref_label()}) did not finish "
                                             f"within {self.timeout:g}s", secrets=self._secrets)
        if code != 0 and args[0] not in _NETWORK_COMMANDS:
            detail = _last_lines(redact(err, self._secrets))
            raise GitCommandFailed(f"git {args[0]} failed in a local work tree: {detail}")
        if code != 0:
            raise self._classify(args[0], err)
        return out

    def _classify(self, command: str, stderr: str) -> SourceError:
        detail = _last_lines(redact(stderr, self._secrets))
        low = stderr.lower()
        where = f"git {command} of {self.url} ({self._ref_label()})"
        if any(s in low for s in _AUTH):
            what = ("the secretRef credentials were rejected" if self.auth else
                    "the server requires credentials and no secretRef is set")
            return SourceError(AUTHENTICATION_FAILED, f"{where}: {what}: {detail}", secrets=self._secrets)
        if any(s in low for s in _NOT_FOUND):
            return SourceError(REVISION_NOT_FOUND, f"{where}: {self._ref_label()} not found: {detail}",
                               secrets=self._secrets)
        if any(s in low for s in _TIMEOUT):
            return SourceError(FETCH_TIMEOUT, f"{where}: {detail}", secrets=self._secrets)
        return SourceError(UNREACHABLE, f"{where} failed: {detail}", secrets=self._secrets)


async def _run(argv: list[str], env: dict[str, str], cwd: Path | None, timeout: float) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr); code None when `timeout` passed. The whole process group dies on timeout or
    cancellation, so no git helper outlives the reconcile that started it."""
    if timeout <= 0:
        return None, "", ""
    proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return None, "", ""
    except BaseException:
        _kill_group(proc.pid)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _ls_remote_refs(output: str) -> dict[str, str]:
    """`<sha>\t<ref>` lines → {ref: sha}. Patterns match ref-name tails, so callers look up exact names."""
    refs = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        if ref:
            refs[ref] = sha
    return refs


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _last_lines(text: str, limit: int = 4) -> str:
    """The informative part of git's stderr: from the first `ssh:`/`remote:`/`error:`/`fatal:` line on, without
    git's boilerplate, at most `limit` lines."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("hint:") and not _BOILERPLATE.search(line)]
    first = next((i for i, line in enumerate(lines) if line.startswith(("ssh:", "remote:", "error:", "fatal:"))), 0)
    return " ".join(lines[first:first + limit]) or "no error output"
