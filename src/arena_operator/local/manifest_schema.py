"""`arena validate` of Kubernetes manifests: each document of our five kinds against the same pydantic models the
operator parses with (and the CRDs are rendered from), every problem as `file:line:column: field.path: message`
with what was expected, and an unknown field named with the closest known one (`configRf` → `configRef`)."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api.common import API_VERSION, DURATION_PATTERN, GROUP
from ..api.crds import object_schema
from ..api.kinds import KINDS_BY_NAME
from ..engine.errors import BundleProblem
from ..engine.yamlsrc import LineDict, LineList, format_path, position_of

TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
SHOWN_FIELDS = 12  # known fields listed when an unknown one has no close match
_TYPES = {"int_type": "an integer", "int_parsing": "an integer", "string_type": "a string",
          "bool_type": "a boolean (true or false)", "bool_parsing": "a boolean (true or false)",
          "float_type": "a number", "float_parsing": "a number", "list_type": "a list", "dict_type": "a mapping",
          "model_type": "a mapping", "model_attributes_type": "a mapping"}
_BOUNDS = {"greater_than_equal": ("ge", "≥"), "greater_than": ("gt", ">"), "less_than_equal": ("le", "≤"),
           "less_than": ("lt", "<")}


@dataclass
class Findings:
    """What `arena validate` found: errors, warnings (errors with --strict), the kinds of the valid objects and a
    line per bundle or runnable job checked."""

    problems: list[BundleProblem] = field(default_factory=list)
    warnings: list[BundleProblem] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """`3 objects valid (1 ArenaConfig, 2 Provider)`, then the bundles and jobs."""
        kinds = Counter(self.objects)
        shown = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        return ([f"{len(self.objects)} objects valid ({shown})"] if self.objects else []) + self.checked


def is_ours(doc: Any) -> bool:
    return isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(GROUP + "/")


def problem(file: str, doc: Any, path: Iterable[str | int], message: str) -> BundleProblem:
    """A problem at the deepest element of `path` present in `doc`, the field named in kubectl's form."""
    path = list(path)
    line, column = position_of(doc, path)
    return BundleProblem(file, line, format_path(path), message, column)


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def doc_path(doc: Any, loc: tuple[int | str, ...]) -> list[str | int]:
    """pydantic's location without the union member tags it inserts (`providers.default.list[0]` → `[0]`)."""
    node, path = doc, []
    for index, step in enumerate(loc):
        nxt = loc[index + 1] if index + 1 < len(loc) else None
        tag = isinstance(step, str) and (isinstance(node, list) or (
            isinstance(node, dict) and step not in node and nxt is not None and nxt in node))
        if tag:
            continue
        path.append(step)
        present = (isinstance(node, dict) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node))
        node = node[step] if present else None  # type: ignore[index]
    return path


def schema_at(schema: dict[str, Any], path: list[str | int]) -> dict[str, Any] | None:
    """The structural schema node at `path` (for the known field names of an object), None where it is free."""
    node: dict[str, Any] | None = schema
    for step in path:
        if node is None:
            return None
        if isinstance(step, int):
            node = node.get("items")
        elif step in node.get("properties", {}):
            node = node["properties"][step]
        else:
            extra = node.get("additionalProperties")
            node = extra if isinstance(extra, dict) else None
    return node


def message(error: dict[str, Any], schema: dict[str, Any], path: list[str | int]) -> str:
    """One pydantic error as a sentence saying what was found and what was expected."""
    kind, found = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        known = sorted((schema_at(schema, path[:-1]) or {}).get("properties", {}))
        hint = suggest(str(path[-1]), known)
        if not hint and known:
            more = ", …" if len(known) > SHOWN_FIELDS else ""
            hint = f"; known fields: {', '.join(known[:SHOWN_FIELDS])}{more}"
        return f"unknown field {path[-1]!r}{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind in ("literal_error", "enum"):
        choices = [c.strip().strip("'") for c in str(ctx.get("expected", "")).replace(" or ", ", ").split(",")]
        return f"got {_shown(found)}, expected one of {ctx.get('expected')}{suggest(str(found), choices)}"
    if kind in _TYPES:
        quoted = " (without quotes)" if isinstance(found, str) and kind.startswith(("int", "float", "bool")) else ""
        return f"got {_shown(found)}, expected {_TYPES[kind]}{quoted}"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return f"got {_shown(found)}, expected a number {sign} {ctx.get(key)}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DURATION_PATTERN:
            return f"got {_shown(found)}, expected a duration such as 30s, 5m or 1h30m (units ms, s, m, h)"
        return f"got {_shown(found)}, expected a string matching {ctx.get('pattern')}"
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    return f"{error['msg']} (got {_shown(found)})"


def check_document(doc: Any, file: str, out: Findings) -> bool:
    """Validate one document of our group; True when it is a valid object."""
    before = len(out.problems)
    if doc.get("apiVersion") != API_VERSION:
        out.problems.append(problem(file, doc, ["apiVersion"], f"got {doc.get('apiVersion')!r}, expected "
                                                               f"{API_VERSION!r}"))
        return False
    kind = KINDS_BY_NAME.get(str(doc.get("kind")))
    if kind is None:
        out.problems.append(problem(file, doc, ["kind"], f"unknown kind {doc.get('kind')!r}"
                                    f"{suggest(str(doc.get('kind')), KINDS_BY_NAME)}; expected one of "
                                    f"{', '.join(KINDS_BY_NAME)}"))
        return False
    for key in doc:
        if key not in TOP_LEVEL:
            out.problems.append(problem(file, doc, [key], f"unknown field {key!r}{suggest(str(key), TOP_LEVEL)}"))
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        out.problems.append(problem(file, doc, ["metadata", "name"], "required field is missing (every object "
                                                                     "needs a name)"))
    try:
        kind.model.model_validate(doc)
    except ValidationError as exc:
        schema = object_schema(kind)
        for error in exc.errors(include_url=False):
            path = doc_path(doc, error["loc"])
            out.problems.append(problem(file, doc, path, message(error, schema, path)))
    if len(out.problems) > before:
        return False
    out.objects.append(kind.kind)
    return True


def plain(value: Any) -> Any:
    """A line-numbered YAML tree as plain dicts and lists (what the API models and the runplan code read)."""
    if isinstance(value, LineDict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, LineList):
        return [plain(v) for v in value]
    return value
