"""The layering of docs/architecture.md, enforced: only operator/ talks to kopf, only kube.py to the Kubernetes
API, the domain packages never reach up into operator/, the two runtimes (worker/, local/) never import the
controllers, and the engine knows nothing of Kubernetes, Redis or the operator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "arena_operator"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything `path` imports (relative imports resolved against its package)."""
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)]
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return found


def top_levels(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def sources(*parts: str) -> list[Path]:
    return sorted((PACKAGE.joinpath(*parts)).rglob("*.py")) if parts else sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", [p for p in sources() if "operator" not in p.relative_to(PACKAGE).parts],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_operator_imports_kopf(path: Path) -> None:
    assert "kopf" not in top_levels(path)


@pytest.mark.parametrize("path", [p for p in sources() if p.name != "kube.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_kube_module_imports_the_kubernetes_client(path: Path) -> None:
    assert "kubernetes" not in top_levels(path)


@pytest.mark.parametrize("path", sources("engine"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_engine_is_plain_python(path: Path) -> None:
    assert not {"kopf", "kubernetes", "redis", "boto3"} & top_levels(path)
    ours = {m for m in imported_modules(path) if m.startswith("arena_operator")}
    assert all(m.startswith("arena_operator.engine") for m in ours), f"engine imports outside itself: {ours}"


DOMAIN = ("reconcile", "runplan", "workqueue", "results", "engine", "sources", "api", "loadtest", "datagen")


def _ours(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m.startswith("arena_operator.")}


@pytest.mark.parametrize("path", [p for d in DOMAIN for p in sources(d)], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_domain_packages_never_import_kopf_or_the_operator(path: Path) -> None:
    assert "kopf" not in top_levels(path)
    assert not {m for m in _ours(path) if m.startswith("arena_operator.operator")}


@pytest.mark.parametrize("path", sources("worker") + sources("local"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_runtimes_never_import_the_operator_or_the_controllers(path: Path) -> None:
    wrong = {m for m in _ours(path) if m.startswith(("arena_operator.operator", "arena_operator.reconcile"))}
    assert not wrong, f"{path.name} imports {wrong}"


@pytest.mark.parametrize("path", sources("loadtest"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_load_test_engine_serves_both_runtimes_and_imports_neither(path: Path) -> None:
    wrong = {m for m in _ours(path) if m.startswith(("arena_operator.reconcile", "arena_operator.worker",
                                                     "arena_operator.local", "arena_operator.cli"))}
    assert not wrong, f"{path.name} imports {wrong}"


@pytest.mark.parametrize("path", sources("api"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_api_is_the_bottom_layer(path: Path) -> None:
    assert all(m.startswith("arena_operator.api") for m in _ours(path)), _ours(path)


def test_only_the_top_level_modules_the_layout_names() -> None:
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= {"__init__.py", "cli.py", "kube.py", "logs.py"}, top


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_source_file_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400


def test_the_api_group_is_spelled_once() -> None:
    spelled = [p.relative_to(PACKAGE) for p in sources() if '"omnia.altairalabs.ai' in p.read_text()]
    assert [str(p) for p in spelled] == ["api/common.py"], spelled
