"""The layering STYLE.md asks for, enforced: only operator/ talks to kopf, only kube.py to the Kubernetes API,
and the engine knows nothing of Kubernetes, Redis or the operator."""

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
