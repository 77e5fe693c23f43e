"""What provider and tool resolution share: the error it raises and Kubernetes label-selector matching over
objects as listed from the API (plain dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..api import conditions as c
from ..api.common import LabelSelector

M = TypeVar("M", bound=BaseModel)


class ResolutionError(ValueError):
    """Providers or tools cannot be resolved; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def as_model(model: type[M], value: M | Mapping[str, Any], what: str) -> M:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(dict(value))  # kopf hands over Mapping views, strict models want a dict
    except ValidationError as exc:
        raise ResolutionError(c.INVALID_SPEC, f"{what}: {first_error(exc)}") from None


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where + ': ' if where else ''}{error['msg']}{more}"


def selector_matches(selector: LabelSelector | Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every matchExpressions term must hold.

    An empty selector matches everything; ``NotIn`` and ``DoesNotExist`` hold when the key is absent.
    """
    sel = as_model(LabelSelector, selector, "label selector")
    labels = labels or {}
    for key, value in (sel.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for term in sel.match_expressions or []:
        present = term.key in labels
        values = term.values or []
        holds = {
            "In": present and labels.get(term.key) in values,
            "NotIn": not present or labels.get(term.key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[term.operator]
        if not holds:
            return False
    return True


def format_selector(selector: LabelSelector | Mapping[str, Any]) -> str:
    """``{role: evaluator, model-size in (large, xlarge)}``: a selector as people read it in messages."""
    sel = as_model(LabelSelector, selector, "label selector")
    parts = [f"{key}: {value}" for key, value in sorted((sel.match_labels or {}).items())]
    for term in sel.match_expressions or []:
        if term.operator in ("In", "NotIn"):
            op = "in" if term.operator == "In" else "notin"
            parts.append(f"{term.key} {op} ({', '.join(term.values or [])})")
        else:
            parts.append(term.key if term.operator == "Exists" else f"!{term.key}")
    return "{" + ", ".join(parts) + "}"


def object_name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def object_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def select_objects(objects: list[Mapping[str, Any]], selector: LabelSelector) -> list[Mapping[str, Any]]:
    return sorted((o for o in objects if selector_matches(selector, object_labels(o))), key=object_name)


def inventory(kind: str, objects: list[Mapping[str, Any]]) -> str:
    names = sorted(object_name(o) for o in objects)
    if not names:
        return f"there are no {kind} objects in the namespace"
    shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
    return f"{kind}s in the namespace: {shown}"


# -- providers -------------------------------------------------------------------------------------------
