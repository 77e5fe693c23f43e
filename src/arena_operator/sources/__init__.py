"""Where bundles come from: git, OCI and ConfigMap fetchers, revision strings, deterministic artifacts.

Domain code only (no kopf, no Kubernetes client): the operator layer builds a `GitSource` / `OCISource` from a
spec and plain secret dicts, calls `remote_revision()` (cheap) and `fetch(dest)` (only when the revision
changed), packs `dest` with `artifact.build_artifact`, and turns `errors.SourceError` into conditions.
"""
