"""Compiled JSON-schema validators, cached: checking a schema costs ~100× validating against it."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.protocols import Validator


@lru_cache(maxsize=1024)
def _compiled(schema_json: str) -> Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validator_for(schema: dict[str, Any]) -> Validator:
    """Raises jsonschema.SchemaError for an invalid schema, once per distinct schema."""
    return _compiled(json.dumps(schema, sort_keys=True))


def first_error(schema: dict[str, Any], instance: Any) -> jsonschema.ValidationError | None:
    """The most relevant validation error, or None when the instance is valid."""
    return jsonschema.exceptions.best_match(validator_for(schema).iter_errors(instance))
