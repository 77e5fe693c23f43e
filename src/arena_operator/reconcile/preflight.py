"""Preflight of an ArenaJob's worker references: what a worker pod would need but cannot get fails the job now,
naming the object (never a value), instead of leaving pods stuck in CreateContainerConfigError or FailedMount."""

from __future__ import annotations

from ..api import conditions as c
from ..api.arenajob import OutputSpec
from ..kube import Kube, NotFound
from ..runplan.providers import SecretEnv

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


async def preflight(kube: Kube, namespace: str, secrets: list[SecretEnv],
                    output: OutputSpec | None) -> tuple[str, str] | None:
    """(reason, message) of the first missing Secret, Secret key or PVC, or None when all exist."""
    needed = [(s.secret_name, s.key, f"Provider credential {s.env}") for s in secrets]
    if output and output.s3 and output.s3.secret_ref:
        needed += [(output.s3.secret_ref.name, key, "spec.output.s3.secretRef") for key in S3_KEYS]
    for name, key, what in needed:
        try:
            keys = await kube.secret_keys(namespace, name)
        except NotFound:
            return c.SECRET_NOT_FOUND, f"Secret {namespace}/{name} ({what}) not found"
        if key not in keys:
            return c.SECRET_KEY_NOT_FOUND, f"Secret {namespace}/{name} has no key {key!r} ({what})"
    if output and output.pvc and not await kube.has_pvc(namespace, output.pvc.claim_name):
        return c.CLAIM_NOT_FOUND, (f"PersistentVolumeClaim {namespace}/{output.pvc.claim_name} (spec.output.pvc) "
                                   "not found")
    return None
