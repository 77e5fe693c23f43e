"""Pushing a bundle directory as an OCI artifact — for tests now, and for an `arena push` command.

The artifact is one deterministic tar+gzip layer (artifact.py), the OCI empty config and a manifest with
`artifactType` set, serialised with sorted keys and no timestamps: pushing the same directory twice gives the
same manifest digest, so a re-push never looks like a new revision.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .artifact import build_artifact
from .errors import INVALID_URL, SourceError
from .oci_ref import parse_reference
from .registry import MANIFEST_OCI, OCIAuth, RegistryClient, deadline, transport_errors

ARTIFACT_TYPE = "application/vnd.promptkit.bundle.v1"
BUNDLE_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"


@dataclass(frozen=True)
class Layer:
    """One layer to push: its bytes, media type and annotations (e.g. `org.opencontainers.image.title`)."""

    data: bytes
    media_type: str = BUNDLE_LAYER_TYPE
    annotations: Mapping[str, str] = field(default_factory=dict)


async def push_artifact(url: str, layers: Sequence[Layer], auth: OCIAuth | None = None, insecure: bool = False,
                        timeout: float = 60.0, artifact_type: str = ARTIFACT_TYPE) -> str:
    """Upload `layers` and an empty config, tag a manifest at `url` (`oci://host/repo:tag`); returns its digest."""
    ref = parse_reference(url)
    if ref.digest or not ref.tag:
        raise SourceError(INVALID_URL, f"cannot push to {url!r}: a push needs a tag, not a digest")
    async with RegistryClient(ref.host, auth, insecure, timeout) as client, \
            deadline(timeout, f"push to {ref}"), transport_errors(ref.host, f"push to {ref}", client.secrets):
        config_digest = await client.upload_blob(ref.repository, EMPTY_CONFIG)
        descriptors = []
        for layer in layers:
            digest = await client.upload_blob(ref.repository, layer.data)
            descriptor: dict[str, object] = {"mediaType": layer.media_type, "digest": digest, "size": len(layer.data)}
            if layer.annotations:
                descriptor["annotations"] = dict(layer.annotations)
            descriptors.append(descriptor)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_OCI,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_CONFIG_TYPE, "digest": config_digest, "size": len(EMPTY_CONFIG)},
            "layers": descriptors,
        }
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        return await client.put_manifest(ref.repository, ref.tag, body, MANIFEST_OCI)


async def push_bundle(directory: Path, url: str, auth: OCIAuth | None = None, insecure: bool = False,
                      timeout: float = 60.0) -> str:
    """Push `directory` as a PromptKit bundle artifact (one deterministic tar+gzip layer); returns the digest."""
    with tempfile.TemporaryDirectory(prefix="arena-push-") as tmp:
        archive = Path(tmp) / "bundle.tar.gz"
        build_artifact(directory, archive)
        data = archive.read_bytes()
    return await push_artifact(url, [Layer(data)], auth=auth, insecure=insecure, timeout=timeout)
