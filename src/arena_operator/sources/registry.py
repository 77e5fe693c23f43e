"""A minimal client of the OCI distribution API: manifests, blobs, uploads, and the auth challenge dance.

Authentication follows the distribution token spec: a request answered 401 with
`WWW-Authenticate: Bearer realm=…,service=…,scope=…` is retried once with a token from the realm (asked with the
secret's credentials as Basic auth, or anonymously); `Basic` challenges are answered with the credentials directly.
A new challenge (e.g. a push needing a wider scope) simply repeats the dance.

Where credentials may go (issue 16): the secret's credentials go to a Bearer realm only over https (http only when
the source is `insecure`) and only on the registry's own host or a host beside it (`registry-1.docker.io` →
`auth.docker.io`); a realm elsewhere is refused when credentials are set, else asked anonymously. The
Authorization header goes only to the registry's origin (an upload Location elsewhere gets none). Redirects:
same origin followed; to another origin only for reads (GET/HEAD: registries send blobs to their storage), never
from https to http, and without credentials (httpx drops Authorization across origins). Every request and
redirect passes the egress policy (engine/egress.py).

Every failure becomes a SourceError whose message names the registry, repository and reference, never a credential.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..engine.egress import EgressRefused, EgressTransport
from .errors import (
    ARTIFACT_TOO_LARGE,
    AUTHENTICATION_FAILED,
    DIGEST_MISMATCH,
    FETCH_TIMEOUT,
    INVALID_BUNDLE_LAYOUT,
    REVISION_NOT_FOUND,
    UNREACHABLE,
    SourceError,
)

MANIFEST_OCI = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_ACCEPT = ", ".join((MANIFEST_OCI, MANIFEST_DOCKER, *INDEX_TYPES))
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the limit registries apply themselves
_CHUNK = 1024 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]+))')
# Docker Hub is written many ways in config.json; they all mean the same registry.
_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True)
class OCIAuth:
    """Registry credentials (user name and password or token)."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def from_dockerconfigjson(cls, json_text: str, registry_host: str) -> OCIAuth:
        """The credentials for `registry_host` in a `.dockerconfigjson` (`auths[host].auth` or username/password).

        Keys may be written `host`, `host:port`, `https://host/v1/` …; all forms match. AuthenticationFailed when
        the document has no usable entry for the host (the message lists the hosts it has, never their values).
        """
        try:
            auths = json.loads(json_text).get("auths") or {}
            if not isinstance(auths, dict):
                raise ValueError("auths is not an object")
        except (ValueError, AttributeError):
            raise SourceError(AUTHENTICATION_FAILED, "the .dockerconfigjson of the secretRef is not valid JSON with "
                                                     "an 'auths' object") from None
        wanted = _normal_host(registry_host)
        for key, entry in auths.items():
            if _normal_host(key) == wanted and isinstance(entry, dict):
                return cls._from_entry(entry, registry_host)
        known = ", ".join(sorted(auths)) or "none"
        raise SourceError(AUTHENTICATION_FAILED, f"the .dockerconfigjson of the secretRef has no credentials for "
                                                 f"registry {registry_host} (it has: {known})")

    @classmethod
    def _from_entry(cls, entry: Mapping[str, Any], host: str) -> OCIAuth:
        username, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                username, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, TypeError):
                raise SourceError(AUTHENTICATION_FAILED, f"auths[{host!r}].auth in the .dockerconfigjson is not "
                                                         "base64 of 'user:password'") from None
        if not username or not password:
            raise SourceError(AUTHENTICATION_FAILED, f"auths[{host!r}] in the .dockerconfigjson has no user name "
                                                     "and password (identity tokens are not supported)")
        return cls(str(username), str(password))

    @property
    def basic(self) -> str:
        """The value of an `Authorization: Basic …` header."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def secrets(self) -> tuple[str, ...]:
        return (self.password, self.basic.removeprefix("Basic "))


def _normal_host(value: str) -> str:
    host = re.sub(r"^[a-z]+://", "", value.strip().lower()).split("/", 1)[0]
    return "docker.io" if host in _DOCKER_HUB else host


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor, validated enough to be used in a URL and as a size limit."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str]

    @classmethod
    def parse(cls, raw: Any, where: str) -> Descriptor:
        ok = (isinstance(raw, dict) and isinstance(raw.get("digest"), str)
              and re.fullmatch(r"sha256:[0-9a-f]{64}", raw["digest"]) and isinstance(raw.get("size"), int)
              and raw["size"] >= 0 and isinstance(raw.get("mediaType", ""), str))
        if not ok:
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"{where}: a descriptor lacks a sha256 digest, a size or a "
                                                     "media type")
        annotations = raw.get("annotations") or {}
        return cls(raw.get("mediaType", ""), raw["digest"], raw["size"],
                   {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {})


class RegistryClient:
    """One registry host, used as `async with RegistryClient(...) as client:`."""

    def __init__(self, host: str, auth: OCIAuth | None = None, insecure: bool = False, timeout: float = 60.0) -> None:
        self.host = host
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.auth = auth
        self.secrets = auth.secrets() if auth else ()
        self.insecure = insecure
        self._client = httpx.AsyncClient(transport=EgressTransport(), timeout=httpx.Timeout(timeout),
                                         follow_redirects=True, event_hooks={"response": [self._check_redirect]})
        self._authorization: str | None = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def manifest_digest(self, repository: str, reference: str) -> str:
        """The digest of a manifest by HEAD (cheap); falls back to GET when the registry omits the header."""
        response = await self._send("HEAD", f"/v2/{repository}/manifests/{reference}",
                                    headers={"Accept": MANIFEST_ACCEPT}, what=_manifest(repository, reference))
        digest = response.headers.get("Docker-Content-Digest", "")
        if re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            return digest
        return (await self.get_manifest(repository, reference))[2]

    async def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, sha256 digest of the body); DigestMismatch when a digest reference does not match."""
        what = _manifest(repository, reference)
        response = await self._send("GET", f"/v2/{repository}/manifests/{reference}",
                                    headers={"Accept": MANIFEST_ACCEPT}, what=what, stream=True)
        try:
            async with transport_errors(self.host, f"download of {what}", self.secrets):
                body = await _read_limited(response, MAX_MANIFEST_BYTES, what)
        finally:
            await response.aclose()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise SourceError(DIGEST_MISMATCH, f"{what} from {self.host} has digest {digest}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return body, media_type, digest

    async def download_blob(self, repository: str, blob: Descriptor, out: Path, limit: int) -> None:
        """Stream a blob to `out`, stopping at `limit` bytes, and verify its size and sha256 against `blob`."""
        what = f"blob {blob.digest} of {repository}"
        if blob.size > limit:
            raise SourceError(ARTIFACT_TOO_LARGE, f"{what} is {blob.size} bytes, over the remaining limit of "
                                                  f"{limit} bytes")
        response = await self._send("GET", f"/v2/{repository}/blobs/{blob.digest}", what=what, stream=True)
        hasher, received = hashlib.sha256(), 0
        try:
            with open(out, "wb") as fh:
                async for chunk in response.aiter_bytes(_CHUNK):
                    received += len(chunk)
                    if received > blob.size:
                        raise SourceError(DIGEST_MISMATCH, f"{what} is longer than the {blob.size} bytes its "
                                                           "descriptor declares")
                    hasher.update(chunk)
                    fh.write(chunk)
        finally:
            await response.aclose()
        actual = "sha256:" + hasher.hexdigest()
        if received != blob.size or actual != blob.digest:
            raise SourceError(DIGEST_MISMATCH, f"{what}: received {received} bytes with digest {actual}, expected "
                                               f"{blob.size} bytes with digest {blob.digest}")

    async def blob_exists(self, repository: str, digest: str) -> bool:
        response = await self._send("HEAD", f"/v2/{repository}/blobs/{digest}", what=f"blob {digest}",
                                    allow={404})
        return response.status_code == 200

    async def upload_blob(self, repository: str, data: bytes) -> str:
        """Monolithic upload (POST then PUT ?digest=); skipped when the registry has the blob already."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if await self.blob_exists(repository, digest):
            return digest
        started = await self._send("POST", f"/v2/{repository}/blobs/uploads/", what=f"upload to {repository}")
        location = started.headers.get("Location", "")
        if not location:
            raise SourceError(UNREACHABLE, f"{self.host} started an upload to {repository} without a Location")
        url = httpx.URL(self.base).join(location)
        # Append, not replace: the Location carries upload state in its query.
        url = url.copy_merge_params({"digest": digest})
        await self._send("PUT", str(url), what=f"upload of {digest} to {repository}", content=data,
                         headers={"Content-Type": "application/octet-stream"})
        return digest

    async def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        await self._send("PUT", f"/v2/{repository}/manifests/{tag}", what=f"manifest {repository}:{tag}",
                         content=body, headers={"Content-Type": media_type})
        return "sha256:" + hashlib.sha256(body).hexdigest()

    async def _send(self, method: str, path: str, *, what: str, headers: Mapping[str, str] | None = None,
                    content: bytes | None = None, stream: bool = False, allow: Collection[int] = ()) -> httpx.Response:
        """Send with the current authorization; on 401 authenticate from the challenge and retry once."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        for attempt in range(2):
            request = self._client.build_request(method, url, headers=self._headers(headers, url), content=content)
            async with transport_errors(self.host, f"{method} {what}", self.secrets):
                response = await self._client.send(request, stream=True)
            if response.status_code == 401 and attempt == 0:
                challenge = response.headers.get("WWW-Authenticate", "")
                await response.aclose()
                await self._authenticate(challenge, what)
                continue
            if response.status_code < 300 or response.status_code in allow:
                if not stream:
                    await response.aread()
                    await response.aclose()
                return response
            await response.aread()
            await response.aclose()
            raise self._error(response, what)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _headers(self, extra: Mapping[str, str] | None, url: str) -> dict[str, str]:
        headers = dict(extra or {})
        if self._authorization and _origin(httpx.URL(url)) == _origin(httpx.URL(self.base)):
            headers["Authorization"] = self._authorization
        return headers

    async def _check_redirect(self, response: httpx.Response) -> None:
        """Refuse a redirect this client must not follow (see the module's docstring), before it is followed."""
        if not response.has_redirect_location:
            return
        source = response.request.url
        target = source.join(response.headers["Location"])
        if _origin(target) == _origin(source):
            return
        reading = response.request.method in ("GET", "HEAD")
        why = ("a redirect to another origin is followed only for reads" if not reading else
               "a redirect from https to http" if source.scheme == "https" and target.scheme != "https" else "")
        if why:
            raise SourceError(UNREACHABLE, f"registry {self.host}: {response.request.method} redirected to "
                                           f"{target.host}: refused ({why})")

    def _realm_refusal(self, realm: httpx.URL) -> str | None:
        """Why the secret's credentials may not go to the token service at `realm`, or None."""
        if realm.scheme != "https" and not self.insecure:
            return "it is plain http and the source is not insecure"
        registry = httpx.URL(self.base).host
        if realm.host != registry and realm.host.partition(".")[2] != registry.partition(".")[2]:
            return f"it is not on the registry's host {registry} or beside it"
        return None

    async def _authenticate(self, challenge: str, what: str) -> None:
        scheme, _, rest = challenge.strip().partition(" ")
        params = {m[1].lower(): m[2] or m[3] for m in _CHALLENGE_PARAM.finditer(rest)}
        if scheme.lower() == "basic":
            if not self.auth:
                raise SourceError(AUTHENTICATION_FAILED, f"registry {self.host} requires credentials for {what} and "
                                                         "no secretRef is set")
            self._authorization = self.auth.basic
            return
        if scheme.lower() != "bearer" or not params.get("realm", "").startswith(("http://", "https://")):
            raise SourceError(AUTHENTICATION_FAILED, f"registry {self.host} refused {what} with an unsupported "
                                                     f"challenge {scheme or '(none)'!r}")
        query = {k: params[k] for k in ("service", "scope") if k in params}
        realm = httpx.URL(params["realm"])
        if self.auth and (why := self._realm_refusal(realm)):
            raise SourceError(AUTHENTICATION_FAILED, f"registry {self.host} asks for a token from {realm.host}; the "
                                                     f"secretRef credentials are not sent there: {why}")
        basic = (self.auth.username, self.auth.password) if self.auth else None
        try:
            response = await self._client.get(realm, params=query, auth=basic)
        except EgressRefused as exc:
            raise SourceError(UNREACHABLE, f"the token service of {self.host}: {exc}") from None
        except httpx.HTTPError as exc:
            raise SourceError(UNREACHABLE, f"cannot reach the token service of {self.host} "
                                           f"({type(exc).__name__})", secrets=self.secrets) from None
        if response.status_code in (401, 403):
            raise SourceError(AUTHENTICATION_FAILED, f"the token service of registry {self.host} rejected the "
                                                     "secretRef credentials" if self.auth else
                              f"the token service of registry {self.host} requires credentials")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise SourceError(UNREACHABLE, f"the token service of registry {self.host} answered "
                                           f"{response.status_code} without a token")
        self._authorization = f"Bearer {token}"

    def _error(self, response: httpx.Response, what: str) -> SourceError:
        status = response.status_code
        detail = _registry_errors(response)
        where = f"{what} on registry {self.host}"
        if status in (401, 403):
            hint = ("credentials are required and no secretRef is set" if not self.auth else
                    "the secretRef credentials were rejected" if status == 401 else
                    "the secretRef credentials lack access")
            return SourceError(AUTHENTICATION_FAILED, f"{where}: {status} {detail or 'denied'} ({hint})",
                               secrets=self.secrets)
        if status == 404:
            return SourceError(REVISION_NOT_FOUND, f"{where}: not found ({detail or '404'})", secrets=self.secrets)
        return SourceError(UNREACHABLE, f"{where}: HTTP {status} {detail}".rstrip(), secrets=self.secrets,
                           retryable=status == 429 or status >= 500)


@contextlib.asynccontextmanager
async def deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """`what` within `seconds` in total, else FetchTimeout: per-request timeouts miss a server trickling bytes."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise SourceError(FETCH_TIMEOUT, f"{what} did not finish within {seconds:g}s") from None


@contextlib.asynccontextmanager
async def transport_errors(host: str, what: str, secrets: tuple[str, ...] = ()) -> AsyncIterator[None]:
    """Turn network failures while streaming a body into FetchTimeout / Unreachable naming `host` and `what`."""
    try:
        yield
    except EgressRefused as exc:
        raise SourceError(UNREACHABLE, f"{what} on registry {host}: {exc}") from None
    except httpx.TimeoutException:
        raise SourceError(FETCH_TIMEOUT, f"{what} on registry {host} timed out") from None
    except httpx.TransportError as exc:
        raise SourceError(UNREACHABLE, f"{what} on registry {host} failed: {type(exc).__name__}: {exc}",
                          secrets=secrets) from None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _manifest(repository: str, reference: str) -> str:
    separator = "@" if reference.startswith("sha256:") else ":"
    return f"manifest {repository}{separator}{reference}"


def _registry_errors(response: httpx.Response) -> str:
    """`CODE: message` pairs of a distribution error body, or ''."""
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))[:300]
    except (ValueError, AttributeError):
        return ""


async def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    chunks, total = [], 0
    async for chunk in response.aiter_bytes(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise SourceError(ARTIFACT_TOO_LARGE, f"{what} exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
