"""Reading one bundle manifest: YAML with line numbers, kind and apiVersion checks, pydantic validation, and
the collector that gathers every problem with file, line and field so `arena validate` can show them all."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .envexpand import current_env, expand_tree
from .errors import BundleProblem
from .yamlsrc import YamlSyntaxError, format_path, load_yaml_file, position_of

log = logging.getLogger("arena_operator.engine.bundle")

API_VERSION = "promptkit.altairalabs.ai/v1alpha1"

M = TypeVar("M", bound=BaseModel)


@dataclass
class Loaded:
    """A validated spec with where it came from, so later checks can point at the right line."""

    id: str
    spec: Any
    file: str
    doc: Any
    prefix: tuple[str | int, ...] = ("spec",)  # where the spec sits in `doc`: inline specs live deeper


class Collector:
    """Accumulates problems (errors) and warnings so `arena validate` can print all of them at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[BundleProblem] = []
        self.warnings: list[BundleProblem] = []

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def add(self, file: str, doc: Any, path: Iterable[str | int], message: str) -> None:
        self.problems.append(self._problem(file, doc, path, message))

    def warn(self, file: str, doc: Any, path: Iterable[str | int], message: str) -> None:
        self.warnings.append(self._problem(file, doc, path, message))

    def _problem(self, file: str, doc: Any, path: Iterable[str | int], message: str) -> BundleProblem:
        path = list(path)
        line, column = position_of(doc, path) if doc is not None else (0, 0)
        # Fields are named as users think of them: `turns[2].type`, not `spec.turns[2].type`.
        shown = path[1:] if len(path) > 1 and path[0] == "spec" else path
        return BundleProblem(file, line, format_path(shown), message, column)


OUTSIDE_BUNDLE = "is outside the bundle (absolute, '..' or a symlink leading out); a bundle may only use its own files"


def escapes(root: Path, ref: str) -> bool:
    """True when `root/ref` is not inside `root` once symlinks are followed (checked before the file's existence,
    so validation cannot be used to probe the host's files)."""
    try:
        return not (root / ref).resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL
        return True


def pydantic_message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error") or error.get("msg", "invalid value"))
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"got {error.get('input')!r}, expected one of {expected}"
    return str(error.get("msg", "invalid value"))


def validate_model(model: type[M], raw: Any, file: str, doc: Any, prefix: list[str | int], out: Collector) -> M | None:
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        for error in exc.errors():
            out.add(file, doc, prefix + list(error["loc"]), pydantic_message(error))
        return None


def read_manifest(path: Path, kind: str, out: Collector) -> tuple[Any, Any] | None:
    """Read a manifest, check its kind; returns (document, raw spec)."""
    file = out.rel(path)
    if not path.is_file():
        out.problems.append(BundleProblem(file, 0, "", "file not found"))
        return None
    try:
        doc = load_yaml_file(path)
    except YamlSyntaxError as exc:
        out.problems.append(BundleProblem(file, exc.line, "", str(exc), exc.column))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        out.problems.append(BundleProblem(file, 0, "", f"cannot read file: {exc}"))
        return None
    if not isinstance(doc, dict):
        out.add(file, doc, [], f"expected a {kind} manifest (a mapping), got {type(doc).__name__}")
        return None
    if doc.get("kind") != kind:
        out.add(file, doc, ["kind"], f"expected kind {kind!r}, got {doc.get('kind')!r}")
        return None
    api = doc.get("apiVersion")
    if api is not None and api != API_VERSION:
        log.debug("%s: apiVersion %r is not %r; reading it anyway", file, api, API_VERSION)
    return doc, doc.get("spec")


def manifest_id(doc: Any, spec_obj: Any, path: Path) -> str:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if isinstance(meta, dict) and meta.get("name"):
        return str(meta["name"])
    return str(getattr(spec_obj, "id", None) or getattr(spec_obj, "name", None) or path.stem)


def report_unknown(model: BaseModel, file: str, path: str = "spec") -> None:
    extra = model.model_extra or {}
    if extra:
        log.debug("%s: %s: keeping unknown keys %s", file, path, sorted(extra))


def load_kind(
    base: Path, ref: str, kind: str, model: type[M], out: Collector
) -> Loaded | None:
    path = base / ref
    read = read_manifest(path, kind, out)
    if read is None:
        return None
    doc, raw = read
    file = out.rel(path)
    if kind == "Provider":
        unset: list[tuple[list[str | int], str]] = []
        secret_like: list[tuple[list[str | int], str]] = []
        expand_tree(doc, [], unset, current_env(), secret_like)
        for where, message in secret_like:
            out.warn(file, doc, where, message)
        for where, message in unset:
            out.add(file, doc, where, message)
        if unset:
            return None
    if raw is None:
        out.add(file, doc, ["spec"], "required field is missing")
        return None
    obj = validate_model(model, raw, file, doc, ["spec"], out)
    if obj is None:
        return None
    report_unknown(obj, file)
    return Loaded(manifest_id(doc, obj, path), obj, file, doc)


def register(
    target: dict[str, Any], loaded: Loaded, out: Collector, where: dict[str, str], kind: str
) -> None:
    if loaded.id in target:
        out.add(loaded.file, loaded.doc, ["metadata", "name"],
                f"duplicate {kind} id {loaded.id!r} (also defined in {where[loaded.id]})")
        return
    target[loaded.id] = loaded.spec
    where[loaded.id] = loaded.file


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
