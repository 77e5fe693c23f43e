{{/*
The operator's RBAC rules, least privilege, from what its code calls (src/arena_operator/kube.py and the kopf
handlers in src/arena_operator/operator/): nothing else is granted. Used by a ClusterRole, or by a Role per
namespace of watchNamespaces.
*/}}
{{- define "arena.rbac.rules" -}}
# kopf watches the reconciled kinds (timers, indexes) and patches them: finalizer and progress annotations.
- apiGroups: ["omnia.altairalabs.ai"]
  resources: ["arenasources", "arenaconfigs", "arenajobs"]
  verbs: ["list", "watch", "patch"]
# Status (phase, conditions, artifact, progress, results) is written through the status subresource.
- apiGroups: ["omnia.altairalabs.ai"]
  resources: ["arenasources/status", "arenaconfigs/status", "arenajobs/status"]
  verbs: ["patch"]
# ArenaJobs the operator makes itself: the runs of a schedule or of a source change are created, a superseded
# run is suspended (patch, above), and ttlSecondsAfterFinished deletes a finished job.
- apiGroups: ["omnia.altairalabs.ai"]
  resources: ["arenajobs"]
  verbs: ["create", "delete"]
# Worker Jobs are owned by their ArenaJob (blockOwnerDeletion), which needs this where the
# OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: ["omnia.altairalabs.ai"]
  resources: ["arenajobs/finalizers"]
  verbs: ["update"]
# Providers and ToolRegistries are only read, from in-memory indexes kept by watches.
- apiGroups: ["omnia.altairalabs.ai"]
  resources: ["providers", "toolregistries"]
  verbs: ["list", "watch"]
# configmap sources: read the bundle, and notice edits through a watch.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# Secrets are read by name only (no list/watch): ArenaSource credentials, and the keys of the Secrets an ArenaJob
# references (Provider credentials, S3), checked before any pod starts. Workers get them as secretKeyRefs.
# create (only: no update, patch or delete; the name carries the job's uid, so it is never rewritten): the worker
# Secret of each ArenaJob, owned by it, holding the Redis URL with its password, which the worker pods read as a
# secretKeyRef instead of a literal in their spec. Garbage collection deletes it with the ArenaJob.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
# output.type pvc: the claim must exist before a job starts.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# The worker batch/v1 Job of each ArenaJob: indexed (list, watch), created, scaled (patch), deleted on cancel.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Worker pods are only watched (an index): a failed pod's units are handed back at once, and a pod that cannot
# start (image pull, scheduling, a missing Secret) gives the reason a job that never started fails with.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
{{- end -}}
