"""OCISource and push_bundle against a real CNCF distribution registry (`docker-registry`), with and without auth."""

from __future__ import annotations

import base64
import io
import json
import socket
import tarfile
from pathlib import Path

import pytest

from arena_operator.sources.errors import SourceError
from arena_operator.sources.oci import Layer, OCIAuth, OCISource, push_artifact, push_bundle
from arena_operator.sources.oci_ref import parse_reference
from arena_operator.sources.registry import MANIFEST_OCI, RegistryClient
from tests.fakes.services import OCI_PASSWORD, OCI_USER, OCIRegistry, free_port

BUNDLE = {"config.arena.yaml": "kind: Arena\n", "scenarios/a.yaml": "id: a\n", "prompts/p.yaml": "p: 1\n"}
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"  # what oras gives plain files, tar or not
TITLE = "org.opencontainers.image.title"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def tar_gz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def dockerconfig(host: str, user: str = OCI_USER, password: str = OCI_PASSWORD) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": token}}})


async def test_push_then_revision_and_fetch_round_trip(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_registry.url("arena/bundles", "v1")
    digest = await push_bundle(write_tree(tmp_path / "src", BUNDLE), url, insecure=True)
    assert digest.startswith("sha256:")
    assert await push_bundle(tmp_path / "src", url, insecure=True) == digest  # deterministic manifest
    source = OCISource(url, insecure=True, timeout=10)
    assert await source.remote_revision() == f"v1@{digest}"
    assert await source.fetch(tmp_path / "out") == f"v1@{digest}"
    assert files(tmp_path / "out") == BUNDLE

    pinned = OCISource(f"oci://{oci_registry.host}/arena/bundles@{digest}", insecure=True, timeout=10)
    assert await pinned.remote_revision() == digest
    assert await pinned.fetch(tmp_path / "pinned") == digest
    assert files(tmp_path / "pinned") == BUNDLE


async def test_new_content_and_new_tag_give_new_revisions(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    v1 = oci_registry.url("arena/bundles", "v1")
    first = await push_bundle(write_tree(tmp_path / "a", BUNDLE), v1, insecure=True)
    changed = write_tree(tmp_path / "b", {**BUNDLE, "scenarios/b.yaml": "id: b\n"})
    second = await push_bundle(changed, oci_registry.url("arena/bundles", "v2"), insecure=True)
    assert second != first
    assert await OCISource(oci_registry.url("arena/bundles", "v2"), insecure=True).remote_revision() == f"v2@{second}"
    assert await OCISource(v1, insecure=True).remote_revision() == f"v1@{first}"
    await push_bundle(changed, v1, insecure=True)  # move the tag
    assert await OCISource(v1, insecure=True).remote_revision() == f"v1@{second}"


@pytest.mark.parametrize("url", ["arena/bundles:v9", "arena/other:v1"])
async def test_unknown_tag_or_repository_is_revision_not_found(oci_registry: OCIRegistry, tmp_path: Path,
                                                               url: str) -> None:
    await push_bundle(write_tree(tmp_path / "src", BUNDLE), oci_registry.url("arena/bundles", "v1"), insecure=True)
    source = OCISource(f"oci://{oci_registry.host}/{url}", insecure=True, timeout=10)
    for call in (source.remote_revision(), source.fetch(tmp_path / "out")):
        with pytest.raises(SourceError) as err:
            await call
        assert err.value.reason == "RevisionNotFound" and url.replace(":", ":") in err.value.message


async def test_blob_corrupted_in_storage_is_a_digest_mismatch(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_registry.url("arena/bundles", "v1")
    manifest_digest = await push_bundle(write_tree(tmp_path / "src", BUNDLE), url, insecure=True)
    async with RegistryClient(oci_registry.host, insecure=True) as client:
        body, _, _ = await client.get_manifest("arena/bundles", manifest_digest)
    layer = json.loads(body)["layers"][0]
    blob = oci_registry.blob_path(layer["digest"])
    blob.write_bytes(bytes(len(blob.read_bytes())))  # same length, different bytes
    with pytest.raises(SourceError) as err:
        await OCISource(url, insecure=True, timeout=10).fetch(tmp_path / "out")
    assert err.value.reason == "DigestMismatch" and layer["digest"] in err.value.message and err.value.retryable


async def test_layer_escaping_the_destination_is_unsafe(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_registry.url("arena/evil", "v1")
    await push_artifact(url, [Layer(tar_gz({"ok.yaml": b"ok", "../evil": b"pwned"}))], insecure=True)
    with pytest.raises(SourceError) as err:
        await OCISource(url, insecure=True, timeout=10).fetch(tmp_path / "dest" / "out")
    assert err.value.reason == "UnsafeArtifact" and "'../evil'" in err.value.message
    assert not (tmp_path / "dest" / "evil").exists()
    title = oci_registry.url("arena/evil", "title")
    await push_artifact(title, [Layer(b"x", "text/plain", {TITLE: "../../etc/x"})], insecure=True)
    with pytest.raises(SourceError) as err:
        await OCISource(title, insecure=True, timeout=10).fetch(tmp_path / "dest2" / "out")
    assert err.value.reason == "UnsafeArtifact"


async def test_size_limits(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_registry.url("arena/big", "v1")
    await push_bundle(write_tree(tmp_path / "src", {"big.txt": "x" * 50_000}), url, insecure=True)
    with pytest.raises(SourceError) as err:  # compressed it is tiny: the uncompressed size counts
        await OCISource(url, insecure=True, timeout=10, max_bytes=20_000).fetch(tmp_path / "out")
    assert err.value.reason == "ArtifactTooLarge" and "20000" in err.value.message
    await push_artifact(url, [Layer(b"y" * 5000, "text/plain", {TITLE: "y.txt"})], insecure=True)
    with pytest.raises(SourceError) as err:  # declared layer sizes are checked before downloading
        await OCISource(url, insecure=True, timeout=10, max_bytes=4000).fetch(tmp_path / "out2")
    assert err.value.reason == "ArtifactTooLarge"


async def test_oras_style_file_and_directory_layers(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_registry.url("arena/oras", "v1")
    layers = [Layer(b"kind: Arena\n", OCI_LAYER, {TITLE: "config.arena.yaml"}),
              Layer(b"p: 1\n", "application/yaml", {TITLE: "prompt.yaml"}),
              Layer(tar_gz({"scenarios/a.yaml": b"id: a\n"}), "application/vnd.oci.image.layer.v1.tar+gzip",
                    {TITLE: "scenarios", "io.deis.oras.content.unpack": "true"}),
              Layer(tar_gz({"extra/b.yaml": b"id: b\n"}), "application/vnd.cncf.helm.chart.content.v1.tar+gzip")]
    await push_artifact(url, layers, insecure=True, artifact_type="application/vnd.unknown.artifact.v1")
    await OCISource(url, insecure=True, timeout=10).fetch(tmp_path / "out")
    assert files(tmp_path / "out") == {"config.arena.yaml": "kind: Arena\n", "prompt.yaml": "p: 1\n",
                                       "scenarios/a.yaml": "id: a\n", "extra/b.yaml": "id: b\n"}


async def test_layouts_that_are_not_bundles(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    untitled = oci_registry.url("arena/odd", "untitled")
    await push_artifact(untitled, [Layer(b"{}", "application/json")], insecure=True)
    with pytest.raises(SourceError) as err:
        await OCISource(untitled, insecure=True, timeout=10).fetch(tmp_path / "a")
    assert err.value.reason == "InvalidBundleLayout" and "application/json" in err.value.message

    digest = await push_bundle(write_tree(tmp_path / "src", BUNDLE), oci_registry.url("arena/odd", "v1"),
                               insecure=True)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": MANIFEST_OCI, "digest": digest, "size": 1}]}
    async with RegistryClient(oci_registry.host, insecure=True) as client:
        body, _, _ = await client.get_manifest("arena/odd", digest)
        index["manifests"][0]["size"] = len(body)  # type: ignore[index]
        await client.put_manifest("arena/odd", "index", json.dumps(index).encode(),
                                  "application/vnd.oci.image.index.v1+json")
    with pytest.raises(SourceError) as err:
        await OCISource(oci_registry.url("arena/odd", "index"), insecure=True, timeout=10).fetch(tmp_path / "b")
    assert err.value.reason == "InvalidBundleLayout" and "index" in err.value.message


async def test_unreachable_and_tls_by_default(oci_registry: OCIRegistry, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        await OCISource(f"oci://127.0.0.1:{free_port()}/arena/x:v1", insecure=True, timeout=5).remote_revision()
    assert err.value.reason == "Unreachable" and err.value.retryable
    with pytest.raises(SourceError) as err:  # insecure=False speaks https to this plain-HTTP registry
        await OCISource(oci_registry.url("arena/x", "v1"), timeout=5).remote_revision()
    assert err.value.reason == "Unreachable" and oci_registry.host in err.value.message


async def test_a_registry_that_never_answers_times_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # connections wait in the backlog, nothing is ever sent back
        url = f"oci://127.0.0.1:{sock.getsockname()[1]}/arena/x:v1"
        with pytest.raises(SourceError) as err:
            await OCISource(url, insecure=True, timeout=0.5).remote_revision()
    assert err.value.reason == "FetchTimeout" and err.value.retryable


async def test_bearer_token_auth_with_dockerconfigjson(oci_auth_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_auth_registry.url("team/bundles", "v1")
    auth = OCIAuth.from_dockerconfigjson(dockerconfig(oci_auth_registry.host), OCISource.host_of(url))
    digest = await push_bundle(write_tree(tmp_path / "src", BUNDLE), url, auth=auth, insecure=True)
    source = OCISource(url, auth=auth, insecure=True, timeout=10)
    assert await source.remote_revision() == f"v1@{digest}"
    assert await source.fetch(tmp_path / "out") == f"v1@{digest}"
    assert files(tmp_path / "out") == BUNDLE
    issuer = oci_auth_registry.issuer
    assert issuer is not None
    assert (OCI_USER, ["repository:team/bundles:pull"]) in issuer.requests
    assert any("push" in scope for user, scopes in issuer.requests if user == OCI_USER for scope in scopes)


@pytest.mark.parametrize("password", [None, "wrong-password-0007"])
async def test_bearer_token_auth_fails_without_or_with_wrong_credentials(
        oci_auth_registry: OCIRegistry, tmp_path: Path, password: str | None) -> None:
    url = oci_auth_registry.url("team/bundles", "v1")
    auth = OCIAuth(OCI_USER, password) if password else None
    source = OCISource(url, auth=auth, insecure=True, timeout=10)
    for call in (source.remote_revision(), source.fetch(tmp_path / "out"),
                 push_bundle(write_tree(tmp_path / "src", BUNDLE), url, auth=auth, insecure=True)):
        with pytest.raises(SourceError) as err:
            await call
        assert err.value.reason == "AuthenticationFailed", err.value
        assert oci_auth_registry.host in err.value.message and not err.value.retryable
        for secret in (OCI_PASSWORD, "wrong-password-0007", base64.b64encode(f"{OCI_USER}:".encode()).decode()):
            assert secret not in str(err.value)


async def test_basic_auth_challenge(oci_basic_registry: OCIRegistry, tmp_path: Path) -> None:
    url = oci_basic_registry.url("team/bundles", "v1")
    auth = OCIAuth(OCI_USER, OCI_PASSWORD)
    digest = await push_bundle(write_tree(tmp_path / "src", BUNDLE), url, auth=auth, insecure=True)
    assert await OCISource(url, auth=auth, insecure=True).fetch(tmp_path / "out") == f"v1@{digest}"
    for bad in (None, OCIAuth(OCI_USER, "wrong-password-0007")):
        with pytest.raises(SourceError) as err:
            await OCISource(url, auth=bad, insecure=True).remote_revision()
        assert err.value.reason == "AuthenticationFailed" and "wrong-password-0007" not in str(err.value)


def test_dockerconfigjson_forms() -> None:
    b64 = base64.b64encode(b"u:p:with:colons").decode()
    assert OCIAuth.from_dockerconfigjson(json.dumps({"auths": {"reg:5000": {"auth": b64}}}), "reg:5000") \
        == OCIAuth("u", "p:with:colons")
    doc = json.dumps({"auths": {"https://reg.example.com/v1/": {"username": "u", "password": "p"}}})
    assert OCIAuth.from_dockerconfigjson(doc, "reg.example.com") == OCIAuth("u", "p")
    hub = json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": b64}}})
    assert OCIAuth.from_dockerconfigjson(hub, "registry-1.docker.io").username == "u"
    assert "p:with" not in repr(OCIAuth("u", "p:with:colons"))


@pytest.mark.parametrize(("doc", "needle"), [
    ("not json", "not valid JSON"), (json.dumps({"auths": {"other:5000": {"auth": "dTpzZWNyZXQ="}}}), "other:5000"),
    (json.dumps({"auths": {"reg:5000": {"auth": "!!!"}}}), "base64"),
    (json.dumps({"auths": {"reg:5000": {"identitytoken": "secret-refresh-token"}}}), "identity tokens"),
])
def test_dockerconfigjson_problems(doc: str, needle: str) -> None:
    with pytest.raises(SourceError) as err:
        OCIAuth.from_dockerconfigjson(doc, "reg:5000")
    assert err.value.reason == "AuthenticationFailed" and needle in err.value.message
    assert "secret" not in err.value.message.replace("secretRef", "")


@pytest.mark.parametrize("url", ["https://reg/x:v1", "oci://reg/Upper:v1", "oci://reg/a/../b:v1", "oci://reg/x:v 1",
                                 "oci://user:pw@reg/x:v1", "oci://reg/x@sha256:abc", "oci://-reg/x", "oci://reg/",
                                 "oci://reg/x?y=1", "oci://reg/x:v1\n"])
def test_reference_policy(url: str) -> None:
    with pytest.raises(SourceError) as err:
        OCISource(url)
    assert err.value.reason == "InvalidURL" and "pw" not in err.value.message


def test_reference_parsing() -> None:
    ref = parse_reference("oci://ghcr.io:443/acme/prompts/bundle:1.2.3")
    assert (ref.host, ref.repository, ref.tag, ref.digest) == ("ghcr.io:443", "acme/prompts/bundle", "1.2.3", None)
    assert parse_reference("oci://localhost:5000/b").tag == "latest"
    pinned = parse_reference("oci://r/b:v1@sha256:" + "a" * 64)
    assert pinned.reference == "sha256:" + "a" * 64 and pinned.tag == "v1"
    assert OCISource.host_of("oci://r.example.com:5000/x:v1") == "r.example.com:5000"
