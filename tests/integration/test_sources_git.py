"""GitSource against real servers: `git daemon` (git://) and `git http-backend` behind HTTP Basic auth."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from arena_operator.sources.artifact import build_artifact
from arena_operator.sources.errors import SourceError, redact
from arena_operator.sources.git import GitAuth, GitSource
from arena_operator.sources.git_auth import git_environment
from tests.fakes.services import GIT_PASSWORD, GIT_USER, GitDaemon, GitHTTPServer, GitWork

BUNDLE = {"bundle/config.arena.yaml": "kind: Arena\n", "bundle/scenarios/a.yaml": "id: a\n", "README.md": "hi\n"}


@pytest.fixture
def repo(git_daemon: GitDaemon) -> GitWork:
    git_daemon.create_repo("prompts.git")
    work = git_daemon.work("prompts.git")
    work.commit(BUNDLE, "first")
    return work


def files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_branch_revision_and_fetch(git_daemon: GitDaemon, repo: GitWork, tmp_path: Path) -> None:
    sha = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=repo.path, text=True).strip()
    source = GitSource(git_daemon.url("prompts.git"), branch="main", timeout=10)
    assert await source.remote_revision() == f"main@sha1:{sha}"
    assert await source.fetch(tmp_path / "out") == f"main@sha1:{sha}"
    assert files(tmp_path / "out") == BUNDLE
    assert not (tmp_path / "out" / ".git").exists()


async def test_default_branch_is_the_remote_head(git_daemon: GitDaemon, repo: GitWork, tmp_path: Path) -> None:
    source = GitSource(git_daemon.url("prompts.git"), timeout=10)
    revision = await source.remote_revision()
    assert revision.startswith("main@sha1:")
    assert await source.fetch(tmp_path / "out") == revision


async def test_remote_revision_only_lists_refs(git_daemon: GitDaemon, repo: GitWork, tmp_path: Path) -> None:
    before = git_daemon.upload_pack_commands()
    await GitSource(git_daemon.url("prompts.git"), branch="main", timeout=10).remote_revision()
    assert git_daemon.upload_pack_commands()[len(before):] == ["ls-refs"]
    await GitSource(git_daemon.url("prompts.git"), branch="main", timeout=10).fetch(tmp_path / "out")
    assert "fetch" in git_daemon.upload_pack_commands()[len(before) + 1:]


async def test_annotated_and_lightweight_tags_peel_to_the_commit(git_daemon: GitDaemon, repo: GitWork,
                                                                  tmp_path: Path) -> None:
    commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=repo.path, text=True).strip()
    tag_object = repo.tag("v1.0", annotated=True)
    repo.tag("light", annotated=False)
    assert tag_object != commit
    repo.commit({"bundle/scenarios/a.yaml": "id: a2\n"}, "after the tag")
    for tag in ("v1.0", "light"):
        source = GitSource(git_daemon.url("prompts.git"), tag=tag, path="bundle", timeout=10)
        assert await source.remote_revision() == f"{tag}@sha1:{commit}"
        assert await source.fetch(tmp_path / tag) == f"{tag}@sha1:{commit}"
        assert (tmp_path / tag / "scenarios" / "a.yaml").read_text() == "id: a\n"


async def test_pinned_commit_needs_no_network_and_fetches_that_commit(git_daemon: GitDaemon, repo: GitWork,
                                                                      tmp_path: Path) -> None:
    first = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=repo.path, text=True).strip()
    repo.commit({"bundle/scenarios/a.yaml": "id: changed\n"}, "second")
    before = git_daemon.upload_pack_commands()
    source = GitSource(git_daemon.url("prompts.git"), commit=first, path="bundle", timeout=10)
    assert await source.remote_revision() == f"sha1:{first}"
    assert git_daemon.upload_pack_commands() == before
    assert await source.fetch(tmp_path / "full") == f"sha1:{first}"
    assert (tmp_path / "full" / "scenarios" / "a.yaml").read_text() == "id: a\n"
    short = GitSource(git_daemon.url("prompts.git"), commit=first[:8].upper(), path="bundle", timeout=10)
    assert await short.remote_revision() == f"sha1:{first[:8]}"
    assert await short.fetch(tmp_path / "short") == f"sha1:{first[:8]}"
    assert files(tmp_path / "short") == files(tmp_path / "full")


async def test_path_selects_a_subdirectory(git_daemon: GitDaemon, repo: GitWork, tmp_path: Path) -> None:
    await GitSource(git_daemon.url("prompts.git"), branch="main", path="./bundle/", timeout=10).fetch(tmp_path / "o")
    assert files(tmp_path / "o") == {"config.arena.yaml": "kind: Arena\n", "scenarios/a.yaml": "id: a\n"}
    with pytest.raises(SourceError) as err:
        await GitSource(git_daemon.url("prompts.git"), path="nope", timeout=10).fetch(tmp_path / "x")
    assert err.value.reason == "InvalidBundleLayout" and "'nope'" in err.value.message


async def test_new_commit_changes_revision_and_digest_same_content_same_digest(
        git_daemon: GitDaemon, repo: GitWork, tmp_path: Path) -> None:
    source = GitSource(git_daemon.url("prompts.git"), branch="main", path="bundle", timeout=10)
    rev1 = await source.fetch(tmp_path / "a")
    rev1_again = await source.fetch(tmp_path / "b")
    art_a = build_artifact(tmp_path / "a", tmp_path / "a.tar.gz")
    art_b = build_artifact(tmp_path / "b", tmp_path / "b.tar.gz")
    assert rev1 == rev1_again and art_a.digest == art_b.digest

    repo.commit({"README.md": "outside the path\n"}, "touch outside path")
    rev2 = await source.remote_revision()
    await source.fetch(tmp_path / "c")
    assert rev2 != rev1
    assert build_artifact(tmp_path / "c", tmp_path / "c.tar.gz").digest == art_a.digest  # same bundle content

    repo.commit({"bundle/scenarios/b.yaml": "id: b\n"}, "new scenario")
    rev3 = await source.fetch(tmp_path / "d")
    assert rev3 not in (rev1, rev2) and rev3 == await source.remote_revision()
    assert build_artifact(tmp_path / "d", tmp_path / "d.tar.gz").digest != art_a.digest


@pytest.mark.parametrize("ref", [{"branch": "does-not-exist"}, {"tag": "v9.9"}, {"commit": "0" * 40}])
async def test_unknown_ref_is_revision_not_found(git_daemon: GitDaemon, repo: GitWork, tmp_path: Path,
                                                 ref: dict[str, str]) -> None:
    source = GitSource(git_daemon.url("prompts.git"), timeout=10, **ref)
    with pytest.raises(SourceError) as err:
        if "commit" in ref:
            await source.fetch(tmp_path / "out")
        else:
            await source.remote_revision()
    assert err.value.reason == "RevisionNotFound", err.value
    assert next(iter(ref.values())) in err.value.message and not err.value.retryable


async def test_unreachable_server_and_missing_repository(git_daemon: GitDaemon) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(SourceError) as err:
            await GitSource(f"git://127.0.0.1:{port}/prompts.git", branch="main", timeout=10).remote_revision()
    assert err.value.reason == "Unreachable" and err.value.retryable
    assert f"git://127.0.0.1:{port}/prompts.git" in err.value.message
    with pytest.raises(SourceError) as err:
        await GitSource(git_daemon.url("missing.git"), branch="main", timeout=10).remote_revision()
    assert err.value.reason == "Unreachable" and "missing.git" in err.value.message


async def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # accepts into the backlog, never replies
        port = sock.getsockname()[1]
        source = GitSource(f"git://127.0.0.1:{port}/slow.git", branch="main", timeout=0.5)
        started = asyncio.get_running_loop().time()
        with pytest.raises(SourceError) as err:
            await source.fetch(tmp_path / "out")
        assert asyncio.get_running_loop().time() - started < 5
    assert err.value.reason == "FetchTimeout" and err.value.retryable and "0.5s" in err.value.message


@pytest.mark.parametrize("url", [
    "ext::sh -c touch% /tmp/pwned", "ext::git-upload-pack /srv/repo", "fd::17", "file:///srv/repo.git", "/srv/repo",
    "../repo", "--upload-pack=touch /tmp/pwned", "-oProxyCommand=touch /tmp/pwned",
    "ssh://-oProxyCommand=touch%20pwned/repo", "git@github.com:acme/prompts.git", "ftp://example.com/repo.git",
    "https://example.com", "https://exa mple.com/repo", "https://example.com/repo\n--upload-pack=x", "",
    "https://user:hunter2-password@example.com/repo.git", "https://ghp_tokenvalue1234@example.com/repo.git",
])
def test_url_policy_rejects_before_running_git(url: str) -> None:
    with pytest.raises(SourceError) as err:
        GitSource(url, branch="main")
    assert err.value.reason == "InvalidURL" and not err.value.retryable
    assert "hunter2-password" not in str(err.value) and "ghp_tokenvalue1234" not in str(err.value)


@pytest.mark.parametrize("url", ["https://example.com/acme/prompts.git", "http://git.svc:8080/prompts",
                                 "ssh://git@example.com:2222/acme/prompts.git", "git://127.0.0.1:9418/p.git",
                                 "https://[::1]:8443/p.git"])
def test_url_policy_accepts_network_urls(url: str) -> None:
    assert GitSource(url).url == url


@pytest.mark.parametrize(("ref", "reason"), [
    ({"branch": "-x"}, "RevisionNotFound"), ({"branch": "a..b"}, "RevisionNotFound"),
    ({"tag": "v1\n"}, "RevisionNotFound"), ({"commit": "xyz"}, "RevisionNotFound"),
    ({"path": "../outside"}, "UnsafeArtifact"), ({"path": "/etc"}, "UnsafeArtifact"),
])
def test_refs_and_path_are_validated_offline(ref: dict[str, str], reason: str) -> None:
    with pytest.raises(SourceError) as err:
        GitSource("https://example.com/p.git", **ref)
    assert err.value.reason == reason


@pytest.fixture
def http_repo(git_daemon: GitDaemon, repo: GitWork, git_http_server: GitHTTPServer) -> Iterator[str]:
    yield git_http_server.url("prompts.git")


async def test_http_basic_auth_with_the_right_credentials(http_repo: str, tmp_path: Path) -> None:
    secrets = {"password": {"username": GIT_USER, "password": GIT_PASSWORD},
               "token": {"username": GIT_USER, "token": GIT_PASSWORD + "\n"}}
    for name, secret in secrets.items():
        source = GitSource(http_repo, branch="main", path="bundle", auth=GitAuth.from_secret(secret), timeout=10)
        revision = await source.remote_revision()
        assert await source.fetch(tmp_path / name) == revision
        assert files(tmp_path / name) == {"config.arena.yaml": "kind: Arena\n", "scenarios/a.yaml": "id: a\n"}


@pytest.mark.parametrize("secret", [{"username": GIT_USER, "password": "wrong-password-987"},
                                    {"token": "wrong-token-987654"}, None])
async def test_http_wrong_or_missing_credentials(http_repo: str, git_http_server: GitHTTPServer, tmp_path: Path,
                                                 secret: dict[str, str] | None) -> None:
    auth = GitAuth.from_secret(secret) if secret else None
    for call in (lambda s: s.remote_revision(), lambda s: s.fetch(tmp_path / "out")):
        with pytest.raises(SourceError) as err:
            await call(GitSource(http_repo, branch="main", auth=auth, timeout=10))
        assert err.value.reason == "AuthenticationFailed", err.value
        assert http_repo in err.value.message and not err.value.retryable
        for value in (*(secret or {}).values(), GIT_PASSWORD):
            if value != GIT_USER:
                assert value not in str(err.value) and value not in repr(err.value)
    assert git_http_server.auth_failures >= (2 if secret else 0)


def test_git_auth_from_secret() -> None:
    assert GitAuth.from_secret({"token": "tok\n"}) == GitAuth(username="git", password="tok")
    assert GitAuth.from_secret({"username": "u", "password": "p", "token": "t"}).password == "p"
    ssh = GitAuth.from_secret({"ssh-privatekey": "KEY", "known_hosts": "host ssh-ed25519 AAAA"})
    assert ssh.ssh_private_key == "KEY\n" and ssh.known_hosts == "host ssh-ed25519 AAAA"
    assert GitAuth.from_secret({"identity": "ID\n"}).ssh_private_key == "ID\n"
    assert "tok" not in repr(GitAuth.from_secret({"token": "tok"}))


def test_ssh_environment_uses_a_private_key_file_removed_afterwards() -> None:
    auth = GitAuth(ssh_private_key="-----BEGIN KEY-----\nabc\n-----END KEY-----\n", known_hosts="h ssh-ed25519 AAA")
    with git_environment(auth, "ssh") as env:
        command = env["GIT_SSH_COMMAND"]
        key = Path(command.split(" -i ", 1)[1].strip())
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_text() == auth.ssh_private_key
        assert "IdentitiesOnly=yes" in command and "StrictHostKeyChecking=yes" in command
        known = Path(command.split("UserKnownHostsFile=", 1)[1].split()[0])
        assert known.read_text() == "h ssh-ed25519 AAA"
        assert "abc" not in command and env["GIT_TERMINAL_PROMPT"] == "0"
        assert not any("abc" in value for value in env.values())
    assert not key.exists() and not known.exists()
    with git_environment(GitAuth(ssh_private_key="k\n"), "ssh") as env:
        assert "StrictHostKeyChecking=accept-new" in env["GIT_SSH_COMMAND"]


def test_askpass_helper_answers_from_the_environment_not_the_command_line() -> None:
    auth = GitAuth(username="alice", password="pa ss'word\"$x")
    with git_environment(auth, "https") as env:
        askpass = env["GIT_ASKPASS"]
        assert "pa ss" not in Path(askpass).read_text()
        run = {**env, "PATH": os.environ["PATH"]}
        user = subprocess.run([askpass, "Username for 'https://example.com': "], env=run, capture_output=True,
                              text=True, check=True).stdout
        password = subprocess.run([askpass, "Password for 'https://alice@example.com': "], env=run,
                                  capture_output=True, text=True, check=True).stdout
    assert (user, password) == ("alice\n", "pa ss'word\"$x\n")
    assert not Path(askpass).exists()


def test_redact_strips_userinfo_and_known_secrets() -> None:
    text = ("fatal: unable to access 'https://x-access-token:ghs_abcdef123@github.com/a/b.git/': 403\n"
            "Authorization: Bearer eyJhbGciOi.secret.part and also mysecretvalue")
    out = redact(text, ["mysecretvalue"])
    assert "ghs_abcdef123" not in out and "x-access-token" not in out and "eyJhbGciOi" not in out
    assert "mysecretvalue" not in out and "https://github.com/a/b.git/" in out
    err = SourceError("AuthenticationFailed", "token tok-123456 refused at https://u:p@h/x", secrets=["tok-123456"])
    assert "tok-123456" not in str(err) and "u:p@" not in str(err)
