"""OCI sources: a bundle stored as an OCI artifact (pushed by `arena push`, `oras push` or `helm push`).

`remote_revision()` costs one HEAD request; `fetch()` reads the manifest, downloads each layer (size-limited,
sha256-verified) and unpacks it: tar layers are extracted safely, other layers titled with
`org.opencontainers.image.title` are written as that file (how `oras push registry/x:v1 bundle/x.yaml` stores
files). The revision is `<tag>@sha256:<manifest digest>`, or the digest alone for a digest reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from .artifact import DEFAULT_MAX_BYTES, safe_extract
from .errors import ARTIFACT_TOO_LARGE, INVALID_BUNDLE_LAYOUT, SourceError
from .oci_push import ARTIFACT_TYPE, Layer, push_artifact, push_bundle
from .oci_ref import OCIReference, parse_reference
from .paths import safe_relpath
from .registry import (
    INDEX_TYPES,
    Descriptor,
    OCIAuth,
    RegistryClient,
    deadline,
    transport_errors,
)
from .revision import oci_revision

__all__ = ["ARTIFACT_TYPE", "DEFAULT_TIMEOUT", "Layer", "OCIAuth", "OCISource", "push_artifact", "push_bundle"]

DEFAULT_TIMEOUT = 60.0
TITLE = "org.opencontainers.image.title"
UNPACK = "io.deis.oras.content.unpack"


def is_tar_media_type(media_type: str) -> bool:
    """Tar layers, compressed or not: OCI/Docker image layers, Helm charts, Flux artifacts, any `…tar+gzip`."""
    return re.search(r"(?<![a-z])tar(?![a-z])", media_type.split(";")[0].strip().lower()) is not None


def is_archive_layer(layer: Descriptor, blob: Path) -> bool:
    """Whether to extract a layer (else it is a file named by its title).

    oras gives plain files the media type `application/vnd.oci.image.layer.v1.tar` too, with a title, and marks
    directories with an unpack annotation; so a titled layer is extracted only when marked or when it really is
    a tar archive, an untitled one whenever its media type says tar.
    """
    if layer.annotations.get(UNPACK) == "true":
        return True
    if not is_tar_media_type(layer.media_type):
        return False
    return TITLE not in layer.annotations or tarfile.is_tarfile(blob)


class OCISource:
    """One `spec.oci`: an `oci://` reference, optional credentials, and whether the registry speaks plain HTTP."""

    def __init__(self, url: str, auth: OCIAuth | None = None, insecure: bool = False,
                 timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.ref: OCIReference = parse_reference(url)
        self.auth = auth
        self.insecure = insecure
        self.timeout = timeout
        self.max_bytes = max_bytes

    @staticmethod
    def host_of(url: str) -> str:
        """The registry host[:port] of an `oci://` URL — the key to look up in a `.dockerconfigjson`."""
        return parse_reference(url).host

    def __repr__(self) -> str:
        return f"OCISource({str(self.ref)!r}, insecure={self.insecure})"

    async def remote_revision(self) -> str:
        """The manifest digest the tag points to now (one HEAD request); a digest reference needs no network."""
        if self.ref.digest:
            return oci_revision(self.ref.digest, self.ref.tag)
        async with self._client() as client, self._deadline("revision check"):
            digest = await client.manifest_digest(self.ref.repository, self.ref.reference)
        return oci_revision(digest, self.ref.tag)

    async def fetch(self, dest: Path) -> str:
        """Download and unpack the artifact into `dest` (created if needed); returns its revision."""
        dest.mkdir(parents=True, exist_ok=True)
        async with self._client() as client, self._deadline("fetch"):
            body, media_type, digest = await client.get_manifest(self.ref.repository, self.ref.reference)
            layers = self._layers(body, media_type)
            # Layers are downloaded beside `dest`: on the operator's volume, not in a possibly small /tmp.
            with tempfile.TemporaryDirectory(prefix=".arena-oci-", dir=dest.parent) as tmp:
                downloaded = 0
                unpacked = 0
                for index, layer in enumerate(layers):
                    blob = Path(tmp) / f"layer-{index}"
                    async with transport_errors(self.ref.host, f"download of {layer.digest}", client.secrets):
                        await client.download_blob(self.ref.repository, layer, blob, self.max_bytes - downloaded)
                    downloaded += layer.size
                    unpacked += await asyncio.to_thread(self._unpack, layer, blob, dest, self.max_bytes - unpacked)
        return oci_revision(digest, self.ref.tag)

    def _client(self) -> RegistryClient:
        return RegistryClient(self.ref.host, self.auth, self.insecure, self.timeout)

    def _deadline(self, what: str) -> contextlib.AbstractAsyncContextManager[None]:
        return deadline(self.timeout, f"{what} of {self.ref}")

    def _layers(self, body: bytes, media_type: str) -> list[Descriptor]:
        where = f"manifest of {self.ref}"
        try:
            manifest: Any = json.loads(body)
        except ValueError:
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"{where} is not JSON") from None
        kind = manifest.get("mediaType", media_type) if isinstance(manifest, dict) else media_type
        if kind in INDEX_TYPES or (isinstance(manifest, dict) and "manifests" in manifest):
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"{where} is an image index (multi-platform image), not a "
                                                     "bundle artifact")
        raw_layers = manifest.get("layers") if isinstance(manifest, dict) else None
        if not isinstance(raw_layers, list) or not raw_layers:
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"{where} has no layers; expected a tar+gzip layer or files "
                                                     f"titled with {TITLE}")
        layers = [Descriptor.parse(raw, where) for raw in raw_layers]
        total = sum(layer.size for layer in layers)
        if total > self.max_bytes:
            raise SourceError(ARTIFACT_TOO_LARGE, f"{where}: layers total {total} bytes, over the limit of "
                                                  f"{self.max_bytes} bytes")
        return layers

    def _unpack(self, layer: Descriptor, blob: Path, dest: Path, budget: int) -> int:
        """Extract a tar layer or place a titled file; returns the bytes written."""
        if is_archive_layer(layer, blob):
            return safe_extract(blob, dest, budget)
        title = layer.annotations.get(TITLE)
        if not title:
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"layer {layer.digest} of {self.ref} has media type "
                                                     f"{layer.media_type!r}, which is not a tar, and no {TITLE} "
                                                     "annotation naming the file it holds")
        target = dest / safe_relpath(title, f"{TITLE} of layer {layer.digest}")
        if target == dest or target.exists():
            raise SourceError(INVALID_BUNDLE_LAYOUT, f"layer {layer.digest} of {self.ref} is titled {title!r}, "
                                                     "which another layer already provides")
        if layer.size > budget:
            raise SourceError(ARTIFACT_TOO_LARGE, f"layer {title!r} of {self.ref} exceeds the remaining limit of "
                                                  f"{budget} bytes")
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.replace(target)
        target.chmod(0o644)
        return layer.size
