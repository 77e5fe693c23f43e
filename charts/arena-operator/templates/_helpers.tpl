{{/* Names, labels and the values several templates share. */}}

{{- define "arena.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "arena.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "arena.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "arena.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "arena.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "arena.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: arena-operator
{{- end -}}

{{- define "arena.selectorLabels" -}}
app.kubernetes.io/name: {{ include "arena.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "arena.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "arena.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "arena.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "arena.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "arena.worker.serviceAccountName" -}}
{{- default (printf "%s-worker" (include "arena.fullname" .)) .Values.worker.serviceAccount.name -}}
{{- end -}}

{{/* Namespaces where worker ServiceAccounts are created. */}}
{{- define "arena.worker.namespaces" -}}
{{- $namespaces := list -}}
{{- if .Values.watchNamespaces -}}
{{- $namespaces = .Values.watchNamespaces -}}
{{- else -}}
{{- $namespaces = prepend .Values.worker.serviceAccount.namespaces .Release.Namespace -}}
{{- end -}}
{{- $namespaces | uniq | toJson -}}
{{- end -}}

{{- define "arena.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "arena.worker.image" -}}
{{- if .Values.worker.image.repository -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) -}}
{{- else -}}
{{- include "arena.image" . -}}
{{- end -}}
{{- end -}}

{{- define "arena.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "arena.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "arena.redis.fullname" -}}
{{- printf "%s-redis" (include "arena.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret and key holding the Redis password, as "name/key"; empty when there is none. */}}
{{- define "arena.redis.passwordRef" -}}
{{- if .Values.redis.existingSecret -}}
{{- printf "%s/%s" .Values.redis.existingSecret .Values.redis.existingSecretPasswordKey -}}
{{- else if and .Values.redis.enabled .Values.redis.auth.enabled -}}
{{- printf "%s/redis-password" (include "arena.redis.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Redis URL the operator and workers use; $(ARENA_REDIS_PASSWORD) is expanded by the kubelet. */}}
{{- define "arena.redis.url" -}}
{{- $url := "" -}}
{{- if .Values.redis.enabled -}}
{{- $url = printf "redis://%s.%s.svc.%s:6379/0" (include "arena.redis.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- $url = required "redis.url is required when redis.enabled is false" .Values.redis.url -}}
{{- end -}}
{{- if include "arena.redis.passwordRef" . -}}
{{- $parts := splitn "://" 2 $url -}}
{{- printf "%s://:$(ARENA_REDIS_PASSWORD)@%s" $parts._0 $parts._1 -}}
{{- else -}}
{{- $url -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for every container of the chart. */}}
{{- define "arena.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
