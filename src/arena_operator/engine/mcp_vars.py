"""`${NAME}` / `${NAME:-default}` in an MCP server's `env` and `headers`, read as every `${…}` of a bundle is
(:mod:`.envexpand`): locally from the process's environment, in the cluster only the names the job owner granted
(``ARENA_BUNDLE_ENV``, from ``workers.podOverrides.extraEnv``).

Values are resolved when the server starts, not when the bundle loads: they go to the server's process or its
HTTP requests and nowhere else — not into the loaded spec (which reports and results may show), not into a log.
What they resolved to is remembered only to cut it out of what the server says back (stderr tail, errors, tool
results): a server echoing its token must not put it into the results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .envexpand import BundleEnv, UnsetVariable, expand, references

FIELDS = ("env", "headers")
REDACTED = "[redacted]"
MIN_REDACTED_CHARS = 4  # shorter values ("1", "on") would blank out ordinary text and protect nothing


class MissingVariable(ValueError):
    """A `${NAME}` of a server's field that this process may not read or that is unset (without a default)."""


def expand_fields(field: str, mapping: Mapping[str, str], env: BundleEnv) -> tuple[dict[str, str], list[str]]:
    """`mapping` with its `${…}` expanded, and the values the variables gave (to redact). Raises MissingVariable
    naming `field.key` and the variable (never a value)."""
    expanded, secrets = {}, []
    for key, value in mapping.items():
        try:
            expanded[key] = expand(value, env)
        except UnsetVariable as exc:
            raise MissingVariable(f"{field}.{key}: {exc.describe(env)}") from None
        secrets += [v for name in references(value) if (v := env.get(name))]
    return expanded, secrets


def reference_problems(entry: Mapping[str, object], env: BundleEnv) -> list[tuple[list[str], str]]:
    """(path, message) for each `${…}` of the entry's env and headers that cannot be resolved here: the load-time
    check of a local run. Empty when `env` is restricted (the cluster: the worker's grant decides, at start)."""
    if env.restricted:
        return []
    problems = []
    for field in FIELDS:
        mapping = entry.get(field)
        for key, value in mapping.items() if isinstance(mapping, Mapping) else ():
            if isinstance(value, str) and "${" in value:
                try:
                    expand(value, env)
                except UnsetVariable as exc:
                    problems.append(([field, str(key)], exc.describe(env)))
    return problems


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` without the values in `secrets` (longest first, so a value containing another goes whole)."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_REDACTED_CHARS}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
