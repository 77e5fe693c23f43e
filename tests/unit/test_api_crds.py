"""The rendered CRDs: checked in and current, structural, explained, and complete in their API surface."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from arena_operator.api import KINDS, render_crds
from arena_operator.api.crds import SchemaError, check_crds, crd_files, structural_schema, write_crds
from arena_operator.cli import main

REPO = Path(__file__).resolve().parents[2]
CRDS = render_crds()
#: The only free-form fields: everything else is pruned/validated by the API server.
FREE_FORM = {
    ("ArenaJob", "status.result.summary"),
    ("ArenaJob", "status.result.comparison"),
    ("ArenaJob", "status.lastRun.summary"),
    # The Go operator's form: a provider group is an array or an object (untyped, as in its CRD); core/v1 parts.
    ("ArenaJob", "spec.providers{}"),
    ("ArenaJob", "spec.workers.podOverrides.affinity"),
    ("ArenaJob", "spec.workers.podOverrides.extraEnv[].valueFrom"),
    ("ArenaJob", "spec.workers.podOverrides.extraVolumes[]"),
    ("ArenaJob", "spec.workers.podOverrides.extraVolumeMounts[]"),
    ("Provider", "spec.mockConfig"),
    ("ToolRegistry", "spec.handlers[].tool.inputSchema"),
}
EXPECTED_NAMES = {
    "ArenaSource": ("arenasources", ["asrc"], ["TYPE", "REVISION", "READY", "AGE"]),
    "ArenaConfig": ("arenaconfigs", ["acfg"], ["SOURCE", "REVISION", "SCENARIOS", "READY", "AGE"]),
    "ArenaJob": ("arenajobs", ["ajob"], ["TYPE", "PHASE", "PROGRESS", "WORKERS", "AGE"]),
    "Provider": ("providers", ["prov"], ["TYPE", "MODEL", "AGE"]),
    "ToolRegistry": ("toolregistries", ["treg"], ["READY", "AGE"]),
}


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (``spec.handlers[].tool``, ``spec.providerOverrides{}``)."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def test_checked_in_crds_equal_the_models() -> None:
    stale = check_crds(REPO / "crds")
    assert not stale, f"crds/ is stale ({', '.join(stale)}): run `arena crds` and commit crds/"


def test_rendering_is_byte_identical_and_round_trips() -> None:
    assert crd_files() == crd_files()
    for name, text in crd_files().items():
        assert yaml.safe_load(text) == CRDS[name.removesuffix(".yaml")]


def test_cli_writes_then_checks_and_reports_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"
    assert main(["crds", "--check", "--out", str(out)]) == 1
    assert "arenajobs.omnia.altairalabs.ai.yaml: missing" in capsys.readouterr().err
    assert main(["crds", "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(crd_files())
    assert main(["crds", "--check", "--out", str(out)]) == 0
    (out / "providers.omnia.altairalabs.ai.yaml").write_text("# edited by hand\n")
    assert main(["crds", "--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "providers.omnia.altairalabs.ai.yaml: stale" in err and "run `arena crds" in err
    assert "arenajobs" not in err


def test_write_crds_writes_one_file_per_kind(tmp_path: Path) -> None:
    written = write_crds(tmp_path)
    assert sorted(path.name for path in written) == sorted(f"{kind.plural}.omnia.altairalabs.ai.yaml" for kind in KINDS)


@pytest.mark.parametrize("kind", list(EXPECTED_NAMES))
def test_crd_names_scope_subresources_and_columns(kind: str) -> None:
    plural, short_names, columns = EXPECTED_NAMES[kind]
    crd = CRDS[f"{plural}.omnia.altairalabs.ai"]
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert spec["group"] == "omnia.altairalabs.ai" and spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                             "shortNames": short_names, "categories": ["arena"]}
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [column["name"] for column in version["additionalPrinterColumns"]] == columns
    age = version["additionalPrinterColumns"][-1]
    assert (age["jsonPath"], age["type"]) == (".metadata.creationTimestamp", "date")


@pytest.mark.parametrize("name", list(CRDS))
def test_schema_is_structural(name: str) -> None:
    kind = CRDS[name]["spec"]["names"]["kind"]
    for path, node in _nodes(_schema(CRDS[name])):
        where = f"{kind} {path or '(root)'}"
        assert not {"$ref", "$defs", "title", "anyOf", "oneOf", "allOf", "not", "const"} & set(node), where
        free = bool(node.get("x-kubernetes-preserve-unknown-fields"))
        assert free == ((kind, path) in FREE_FORM), f"{where}: preserve-unknown-fields only on the free-form fields"
        if not free and not node.get("x-kubernetes-int-or-string"):
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, where
        if "additionalProperties" in node:
            assert isinstance(node["additionalProperties"], dict) and "properties" not in node, where
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), where
        assert node.get("default", "") is not None and "nullable" not in node, where


@pytest.mark.parametrize("name", list(CRDS))
def test_every_field_is_explained(name: str) -> None:
    """kubectl explain shows these; the envelope's metadata is the only field left to the API server."""
    for path, node in _nodes(_schema(CRDS[name])):
        if path != "metadata" and not path.endswith(("[]", "{}")):
            assert node.get("description", "").strip(), f"{name} {path}: no description"


@pytest.mark.parametrize("name", list(CRDS))
def test_defaults_enums_and_list_map_keys_are_consistent(name: str) -> None:
    for path, node in _nodes(_schema(CRDS[name])):
        if "default" in node:  # the API server rejects a CRD whose default does not validate
            jsonschema.validate(node["default"], node)
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], f"{path}.{key}"
        for rule in node.get("x-kubernetes-validations") or []:
            assert set(rule) == {"rule", "message"} and rule["message"], path
        if "enum" in node:
            assert node["maxLength"] == max(len(value) for value in node["enum"]), path


def test_documented_defaults_are_in_the_crds() -> None:
    job = _schema(CRDS["arenajobs.omnia.altairalabs.ai"])["properties"]["spec"]["properties"]
    assert job["type"]["default"] == "evaluation"
    assert (job["loadTest"]["properties"]["rampUp"]["default"], job["loadTest"]["properties"]["duration"]["default"]) \
        == ("30s", "5m")
    assert job["dataGen"]["properties"]["count"]["default"] == 100
    assert job["dataGen"]["properties"]["format"]["default"] == "jsonl"
    assert job["workers"]["properties"]["replicas"]["default"] == 1
    assert job["schedule"]["properties"]["timezone"]["default"] == "UTC"
    assert job["schedule"]["properties"]["concurrencyPolicy"]["default"] == "Forbid"
    assert (job["suspend"]["default"], job["maxAttempts"]["default"]) == (False, 3)
    assert job["output"]["required"] == ["type"]
    job_spec = _schema(CRDS["arenajobs.omnia.altairalabs.ai"])["properties"]["spec"]
    assert "required" not in job_spec  # configRef or (Go form) sourceRef, exactly one: a CEL rule
    assert job_spec["x-kubernetes-validations"][0] == {"rule": "has(self.configRef) != has(self.sourceRef)",
                                                       "message": "set exactly one of configRef and sourceRef"}
    assert "has(self.loadTest.targetRPS)" in job_spec["x-kubernetes-validations"][1]["rule"]
    source = _schema(CRDS["arenasources.omnia.altairalabs.ai"])["properties"]["spec"]["properties"]
    assert (source["interval"]["default"], source["timeout"]["default"], source["suspend"]["default"]) == \
        ("5m", "60s", False)
    handler = _schema(CRDS["toolregistries.omnia.altairalabs.ai"])["properties"]["spec"]["properties"]["handlers"]
    assert handler["items"]["properties"]["httpConfig"]["properties"]["method"]["default"] == "POST"
    assert handler["items"]["properties"]["timeout"]["default"] == "10s"


def test_every_documented_arenajob_field_is_in_the_crd() -> None:
    """The ArenaJob reference page's tables, field by field (spec and status)."""
    schema = _schema(CRDS["arenajobs.omnia.altairalabs.ai"])
    paths = {path for path, _ in _nodes(schema)}
    documented = [
        "spec.configRef.name", "spec.type", "spec.scenarios.include", "spec.scenarios.exclude",
        "spec.evaluation.outputFormats", "spec.loadTest.rampUp", "spec.loadTest.duration", "spec.loadTest.targetRPS",
        "spec.dataGen.count", "spec.dataGen.format", "spec.workers.replicas", "spec.workers.minReplicas",
        "spec.workers.maxReplicas", "spec.providerOverrides{}.selector.matchLabels",
        "spec.providerOverrides{}.selector.matchExpressions[].key",
        "spec.providerOverrides{}.selector.matchExpressions[].operator",
        "spec.providerOverrides{}.selector.matchExpressions[].values", "spec.toolRegistryOverride.selector",
        "spec.output.type", "spec.output.s3.bucket", "spec.output.s3.prefix", "spec.output.s3.region",
        "spec.output.s3.endpoint", "spec.output.s3.secretRef.name", "spec.output.pvc.claimName",
        "spec.output.pvc.subPath", "spec.schedule.cron", "spec.schedule.timezone", "spec.schedule.concurrencyPolicy",
        "spec.ttlSecondsAfterFinished", "status.phase", "status.progress.total", "status.progress.completed",
        "status.progress.failed", "status.progress.pending", "status.result.url", "status.result.summary",
        "status.conditions", "status.startTime", "status.completionTime", "status.lastScheduleTime",
        "status.nextScheduleTime", "status.activeWorkers",
    ]
    assert [path for path in documented if path not in paths] == []
    operators = schema["properties"]["spec"]["properties"]["providerOverrides"]["additionalProperties"][
        "properties"]["selector"]["properties"]["matchExpressions"]["items"]["properties"]["operator"]["enum"]
    assert operators == ["In", "NotIn", "Exists", "DoesNotExist"]


def test_unsupported_model_shapes_fail_at_render_time() -> None:
    """A union or an unmarked free-form dict would be rejected by the API server: refuse to render it."""
    from pydantic import BaseModel

    class Union(BaseModel):
        value: int | str

    class FreeForm(BaseModel):
        value: dict[str, Any]

    with pytest.raises(SchemaError, match=r"Union\.value: anyOf"):
        structural_schema(Union)
    with pytest.raises(SchemaError, match=r"FreeForm\.value: a free-form object must be declared"):
        structural_schema(FreeForm)
