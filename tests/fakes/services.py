"""Real services for integration tests, each on a free 127.0.0.1 port and stopped by PID at teardown.

Fixtures (enable with `pytest_plugins = ["tests.fakes.services"]` in tests/conftest.py):

    git_daemon        `git daemon` over a temp root; `create_repo(name)` makes a bare repo (HEAD → main),
                      `work(name)` a clone to commit/tag/push from, `upload_pack_commands()` what clients asked
                      the server for (protocol v2 `ls-refs` / `fetch`, read from a packet trace).
    git_http_server   the same root over smart HTTP (`git http-backend`) behind HTTP Basic auth.
    oci_registry      CNCF distribution (`docker-registry`), anonymous.
    oci_auth_registry the same registry with `auth: token`: a token server (`TokenIssuer`) issuing ES256 JWTs,
                      as Docker Hub and most registries do; credentials `OCI_USER` / `OCI_PASSWORD`.
    oci_basic_registry the same registry with `auth: htpasswd` (a Basic challenge), same credentials.
    redis_server      `redis-server` without persistence.

Recipes follow /work/shared/TESTING_NOTES.md.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

GIT_USER, GIT_PASSWORD = "arena", "s3cr3t-git-password-0042"
OCI_USER, OCI_PASSWORD = "puller", "s3cr3t-oci-password-0042"
# bcrypt of OCI_PASSWORD (cost 5), precomputed: Python has no bcrypt without an extra package.
_OCI_HTPASSWD = f"{OCI_USER}:$2b$05$abcdefghijklmnopqrstuuGPKNHRAeFIOdAY8ZQrW1Fhx1X06b.m2\n"
_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "Arena Test",
            "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "Arena Test",
            "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_TERMINAL_PROMPT": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout}s")
        time.sleep(0.01)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate one process we started, by its PID; kill it if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, check=True,
                          capture_output=True, text=True).stdout.strip()


class GitWork:
    """A work clone to make commits and tags in and push them to the served bare repo."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def commit(self, files: dict[str, str | bytes], message: str = "change") -> str:
        """Write `files` (relative path → text or bytes), commit all, push the current branch; returns the sha."""
        for name, content in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                (self.path / name).write_bytes(content)
            else:
                (self.path / name).write_text(content)
        git("add", "-A", cwd=self.path)
        git("commit", "-q", "-m", message, cwd=self.path)
        git("push", "-q", "origin", "HEAD", cwd=self.path)
        return git("rev-parse", "HEAD", cwd=self.path)

    def tag(self, name: str, annotated: bool = True) -> str:
        """Tag HEAD and push the tag; returns the sha of the tag object (annotated) or the commit."""
        git("tag", *(["-a", "-m", name] if annotated else []), name, cwd=self.path)
        git("push", "-q", "origin", f"refs/tags/{name}", cwd=self.path)
        return git("rev-parse", f"refs/tags/{name}", cwd=self.path)

    def branch(self, name: str) -> None:
        git("checkout", "-q", "-b", name, cwd=self.path)


class GitDaemon:
    """`git daemon` serving every repo under `root` (push enabled) with a server-side packet trace."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos = root / "repos"
        self.repos.mkdir(parents=True)
        self.trace = root / "packet-trace.log"
        self.log = root / "daemon.log"
        self.port = free_port()
        env = {**os.environ, **_GIT_ENV, "GIT_TRACE_PACKET": str(self.trace)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["git", "daemon", "--verbose", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
                 f"--base-path={self.repos}", "--export-all", "--enable=receive-pack", str(self.repos)],
                stdout=subprocess.DEVNULL, stderr=log, env=env)
        wait_until(lambda: "Ready to rumble" in self.log.read_text(), self.proc, "git daemon")

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def create_repo(self, name: str) -> Path:
        path = self.repos / name
        git("init", "-q", "--bare", "-b", "main", str(path))
        return path

    def work(self, name: str) -> GitWork:
        path = self.root / "work" / name
        git("clone", "-q", self.url(name), str(path))
        git("checkout", "-q", "-B", "main", cwd=path)
        return GitWork(path)

    def upload_pack_commands(self) -> list[str]:
        """The protocol v2 commands clients sent to upload-pack, in order (`ls-refs`, `fetch`)."""
        if not self.trace.exists():
            return []
        return [line.rsplit("command=", 1)[1].strip() for line in self.trace.read_text().splitlines()
                if "upload-pack< command=" in line]


class BackgroundApp:
    """An aiohttp app on its own loop in a thread, so sync fixtures of any scope can serve HTTP."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app, access_log=None)

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return self.runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class GitHTTPServer:
    """Smart HTTP (`git http-backend` as CGI) over `root`, requiring Basic auth `username`/`password`."""

    def __init__(self, root: Path, username: str = GIT_USER, password: str = GIT_PASSWORD) -> None:
        self.root, self.username, self.password = root, username, password
        self.auth_failures = 0
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self.server = BackgroundApp(app)
        self.port = self.server.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            self.auth_failures += "Authorization" in request.headers
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="git"'})
        body = await request.read()  # aiohttp already undid any Content-Encoding
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "REQUEST_METHOD": request.method, "PATH_INFO": request.path, "QUERY_STRING": request.query_string,
               "CONTENT_TYPE": request.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_USER": self.username, "REMOTE_ADDR": "127.0.0.1",
               "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""), **_GIT_ENV}
        proc = await asyncio.create_subprocess_exec("git", "http-backend", env=env, stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out, _ = await proc.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name] = value.strip()
        return web.Response(status=status, headers=headers, body=payload)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """A Docker token server (distribution's `auth: token`): GET /token with Basic credentials → an ES256 JWT.

    Right credentials get every action they ask for, no credentials get a token without access (as anonymous
    pulls of private repos on Docker Hub do), wrong credentials get 401. `requests` records (user, scopes).
    """

    service, issuer = "arena-test-registry", "arena-test-issuer"

    def __init__(self, root: Path, username: str, password: str) -> None:
        root.mkdir(parents=True)
        self.username, self.password = username, password
        self.realm = ""  # set once the server listens
        self.requests: list[tuple[str | None, list[str]]] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                      .public_key(self._key.public_key()).serial_number(1)
                      .not_valid_before(now - datetime.timedelta(hours=1))
                      .not_valid_after(now + datetime.timedelta(days=1))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                      .sign(self._key, hashes.SHA256()))
        self.cert_path = root / "token-cert.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def registry_config(self) -> str:
        return (f"auth: {{token: {{realm: '{self.realm}', service: {self.service}, issuer: {self.issuer}, "
                f"rootcertbundle: '{self.cert_path}'}}}}\n")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        scopes = request.query.getall("scope", [])
        header = request.headers.get("Authorization", "")
        user = None
        if header:
            expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if header != f"Basic {expected}":
                self.requests.append(("<rejected>", scopes))
                return web.json_response({"details": "invalid credentials"}, status=401)
            user = self.username
        self.requests.append((user, scopes))
        access = [self._access(scope) for scope in scopes] if user else []
        token = self._jwt(user or "", access)
        return web.json_response({"token": token, "access_token": token, "expires_in": 300})

    @staticmethod
    def _access(scope: str) -> dict[str, object]:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        return {"type": kind, "name": name, "actions": actions.split(",")}

    def _jwt(self, subject: str, access: list[dict[str, object]]) -> str:
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class OCIRegistry:
    """CNCF distribution (`docker-registry serve`) on a free port: anonymous, token auth (`issuer`) or htpasswd."""

    def __init__(self, root: Path, issuer: TokenIssuer | None = None, htpasswd: str | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.issuer = issuer
        self.storage = root / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        auth = issuer.registry_config() if issuer else ""
        if htpasswd:
            (root / "htpasswd").write_text(htpasswd)
            auth = f"auth: {{htpasswd: {{realm: arena-test, path: '{root / 'htpasswd'}'}}}}\n"
        config = root / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{self.host}', secret: arena-test-secret}}\n" + auth)
        self.log = root / "registry.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
        wait_until(self._answers, self.proc, "docker-registry")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"GET /v2/ HTTP/1.0\r\n\r\n")
                return sock.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False

    def url(self, repo: str, tag: str = "latest") -> str:
        return f"oci://{self.host}/{repo}:{tag}"

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob — for tests that corrupt storage behind the registry's back."""
        hexpart = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._pong, self.proc, "redis-server")

    def _pong(self) -> bool:
        return redis_answers(self.port)


def redis_answers(port: int) -> bool:
    """A redis-server on 127.0.0.1:`port` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(7) == b"+PONG\r\n"
    except OSError:
        return False


def _require(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed")


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    _require("git")
    daemon = GitDaemon(tmp_path / "git-daemon")
    yield daemon
    stop(daemon.proc)


@pytest.fixture
def git_http_server(git_daemon: GitDaemon) -> Iterator[GitHTTPServer]:
    """Serves `git_daemon`'s repos over HTTP with Basic auth (GIT_USER / GIT_PASSWORD)."""
    server = GitHTTPServer(git_daemon.repos)
    yield server
    server.server.stop()


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[OCIRegistry]:
    _require("docker-registry")
    registry = OCIRegistry(tmp_path / "oci-registry")
    yield registry
    stop(registry.proc)


@pytest.fixture
def oci_auth_registry(tmp_path: Path) -> Iterator[OCIRegistry]:
    """A registry that wants a bearer token from a token server accepting OCI_USER / OCI_PASSWORD."""
    _require("docker-registry")
    issuer = TokenIssuer(tmp_path / "oci-token", OCI_USER, OCI_PASSWORD)
    server = BackgroundApp(issuer.app())
    issuer.realm = f"http://127.0.0.1:{server.start()}/token"
    try:
        registry = OCIRegistry(tmp_path / "oci-auth-registry", issuer)
        yield registry
        stop(registry.proc)
    finally:
        server.stop()


@pytest.fixture
def oci_basic_registry(tmp_path: Path) -> Iterator[OCIRegistry]:
    """A registry that wants HTTP Basic auth (htpasswd) with OCI_USER / OCI_PASSWORD."""
    _require("docker-registry")
    registry = OCIRegistry(tmp_path / "oci-basic-registry", htpasswd=_OCI_HTPASSWD)
    yield registry
    stop(registry.proc)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    _require("redis-server")
    server = RedisServer()
    yield server
    stop(server.proc)


# --- S3 (moto_server) -----------------------------------------------------------------------------------------------

S3_REGION = "us-east-1"
S3_TEST_KEY = {"AWS_ACCESS_KEY_ID": "AKIAARENATESTKEY0001", "AWS_SECRET_ACCESS_KEY": "arena-test-secret-key-0001"}
S3_AUTH_BUCKET = "arena-auth-results"
_S3_WRITER_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
_S3_READER_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}]}


class S3Server:
    """`moto_server` on a free port; it answers locally and never calls out.

    With `auth`, moto enforces IAM (INITIAL_NO_AUTH_ACTION_COUNT) after a fixed set of unauthenticated setup calls:
    bucket S3_AUTH_BUCKET, users `writer` (s3:*) and `reader` (list + get) whose keys are in `credentials`.
    Known moto limit there: its signature check rejects any request with '/' in the query string, such as a
    listing under a prefix (getmoto/moto#5948). Without `auth`, any access key works."""

    _AUTH_SETUP_CALLS = 7  # create_bucket + 2 × (create_user, put_user_policy, create_access_key)

    def __init__(self, log: Path, auth: bool = False) -> None:
        self.port = free_port()
        self.endpoint = self.url = f"http://127.0.0.1:{self.port}"  # the endpoint URL for boto3 / spec.output.s3
        self.credentials: dict[str, dict[str, str]] = {}
        env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
        if auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self._AUTH_SETUP_CALLS)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)], stdout=out,
                                         stderr=out, env=env)
        wait_until(self._listening, self.proc, "moto_server", timeout=30)
        if auth:
            self._setup_auth()

    def _listening(self) -> bool:
        # A bare TCP connect: an HTTP request would use up one of auth mode's unauthenticated calls.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def client(self, service: str = "s3", key: dict[str, str] | None = None):
        """A boto3 client of this server (S3 unless `service` says otherwise), with `key` or S3_TEST_KEY."""
        import boto3
        from botocore.config import Config

        key = key or S3_TEST_KEY
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=S3_REGION, aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))

    def _setup_auth(self) -> None:
        self.client().create_bucket(Bucket=S3_AUTH_BUCKET)
        iam = self.client("iam")
        for user, policy in (("writer", _S3_WRITER_POLICY), ("reader", _S3_READER_POLICY)):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=f"{user}-s3", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            self.credentials[user] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                                      "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture(scope="session")
def _s3_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    _require("moto_server")
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    stop(server.proc)


@pytest.fixture
def s3_server(_s3_server_process: S3Server) -> S3Server:
    """An S3 API (moto) accepting any access key, empty at the start of each test: one process per session,
    its state wiped through moto's reset API (a few ms) instead of a restart (about a second)."""
    import urllib.request

    server = _s3_server_process
    request = urllib.request.Request(f"{server.endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return server


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 API (moto) enforcing IAM: `credentials['writer']` may do anything, `credentials['reader']` only list
    and get, any other key is rejected (InvalidAccessKeyId). Bucket S3_AUTH_BUCKET exists."""
    _require("moto_server")
    server = S3Server(tmp_path_factory.mktemp("s3-auth") / "moto.log", auth=True)
    yield server
    stop(server.proc)
