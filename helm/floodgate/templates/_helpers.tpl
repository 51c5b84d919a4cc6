{{/* The chart name, overridable with nameOverride. */}}
{{- define "floodgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource name prefix: fullnameOverride, the release name when it contains the chart name, else "<release>-<chart>". */}}
{{- define "floodgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "floodgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component (dict "ctx" $ "component" "api"); never the chart version: selectors are immutable. */}}
{{- define "floodgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "floodgate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All standard labels of one component (dict "ctx" $ "component" "api"). */}}
{{- define "floodgate.labels" -}}
helm.sh/chart: {{ include "floodgate.chart" .ctx }}
{{ include "floodgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Values.image.tag | default .ctx.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: floodgate
{{- end }}

{{/* An image reference from {repository, tag, digest} (dict "image" .Values.x.image "default" fallback-tag). */}}
{{- define "floodgate.imageRef" -}}
{{- $tag := .image.tag | default .default | toString }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Floodgate image (serve, operator and migrate share it). */}}
{{- define "floodgate.image" -}}
{{- include "floodgate.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) }}
{{- end }}

{{/* Name of the API pods' ServiceAccount. */}}
{{- define "floodgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "floodgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "floodgate.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "floodgate.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the cursor signing key (the user's, or the generated one). */}}
{{- define "floodgate.cursorSecretName" -}}
{{- default (printf "%s-cursor" (include "floodgate.fullname" .)) .Values.cursorSecret.existingSecret }}
{{- end }}

{{/* Key of the cursor signing key in that Secret. */}}
{{- define "floodgate.cursorSecretKey" -}}
{{- if .Values.cursorSecret.existingSecret }}{{ .Values.cursorSecret.existingSecretKey }}{{ else }}cursor-secret{{ end }}
{{- end }}

{{/* True ("true") when the chart deploys its own shared Redis. */}}
{{- define "floodgate.internalRedis" -}}
{{- if and .Values.sharedRedis.enabled (not .Values.sharedRedis.existingSecret) }}true{{ end }}
{{- end }}

{{/* Name of the in-chart shared Redis (Deployment, Service, Secret). */}}
{{- define "floodgate.redisName" -}}
{{- printf "%s-redis" (include "floodgate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Env entries giving FLOODGATE_LIMITS_URL: the external Secret, the in-chart Redis (password from its Secret), or memory://. */}}
{{- define "floodgate.limitsEnv" -}}
{{- if not .Values.sharedRedis.enabled -}}
- name: FLOODGATE_LIMITS_URL
  value: memory://
{{- else if .Values.sharedRedis.existingSecret -}}
- name: FLOODGATE_LIMITS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.sharedRedis.existingSecret }}
      key: {{ .Values.sharedRedis.existingSecretKey }}
{{- else -}}
- name: FLOODGATE_SHARED_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "floodgate.redisName" . }}
      key: password
# $(VAR) is expanded by the kubelet from the entry above: the password never appears in the spec.
- name: FLOODGATE_LIMITS_URL
  value: {{ printf "redis://:$(FLOODGATE_SHARED_REDIS_PASSWORD)@%s.%s.svc:6379/0" (include "floodgate.redisName" .) .Release.Namespace | quote }}
{{- end }}
{{- end }}

{{/* Env entry of the database URL (from the user's existing Secret). */}}
{{- define "floodgate.databaseEnv" -}}
- name: FLOODGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
{{- end }}

{{/* Downward-API env: pod identity for logs, metrics and OpenTelemetry resource attributes. */}}
{{- define "floodgate.podEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_UID
  valueFrom: {fieldRef: {fieldPath: metadata.uid}}
- name: NODE_NAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
{{- end }}

{{/* Minimum number of API replicas the chart guarantees (for the PDB). */}}
{{- define "floodgate.minReplicas" -}}
{{- if .Values.keda.enabled }}{{ .Values.keda.minReplicaCount }}
{{- else if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}
{{- else }}{{ .Values.api.replicas }}
{{- end }}
{{- end }}

{{/* Minimum number of worker replicas the chart guarantees (for the workers' PDB). */}}
{{- define "floodgate.workerMinReplicas" -}}
{{- $w := .Values.worker }}
{{- if $w.keda.enabled }}{{ $w.keda.minReplicaCount }}
{{- else if $w.autoscaling.enabled }}{{ $w.autoscaling.minReplicas }}
{{- else }}{{ $w.replicas }}
{{- end }}
{{- end }}

{{/* Container security context of the Redis containers: the chart's, as Redis's own non-root uid. */}}
{{- define "floodgate.redisSecurityContext" -}}
{{- toYaml (merge (dict "runAsUser" 999 "runAsGroup" 999 "runAsNonRoot" true) .Values.securityContext) }}
{{- end }}

{{/* Refuses contradictory values with a message that says what to change. */}}
{{- define "floodgate.validate" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are mutually exclusive: KEDA creates its own HPA for the same Deployment. Enable one of them." }}
{{- end }}
{{- if and .Values.operator.enabled (not .Values.sharedRedis.enabled) }}
{{- fail "operator.enabled needs sharedRedis.enabled: the operator publishes policies to the API pods through the shared Redis." }}
{{- end }}
{{- if and .Values.keda.enabled (not (.Capabilities.APIVersions.Has "keda.sh/v1alpha1")) }}
{{- fail "keda.enabled, but this cluster does not serve keda.sh/v1alpha1: install KEDA first (with `helm template`, pass --api-versions keda.sh/v1alpha1)." }}
{{- end }}
{{- if and .Values.worker.enabled (not .Values.sharedRedis.enabled) }}
{{- fail "worker.enabled needs sharedRedis.enabled: the job queue lives in the shared Redis (without it, set worker.enabled=false and the API processes run jobs themselves)." }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled .Values.worker.keda.enabled }}
{{- fail "worker.autoscaling.enabled and worker.keda.enabled are mutually exclusive: KEDA creates its own HPA for the worker Deployment. Enable one of them." }}
{{- end }}
{{- if and .Values.worker.keda.enabled (not (.Capabilities.APIVersions.Has "keda.sh/v1alpha1")) }}
{{- fail "worker.keda.enabled, but this cluster does not serve keda.sh/v1alpha1: install KEDA first (with `helm template`, pass --api-versions keda.sh/v1alpha1)." }}
{{- end }}
{{- if and .Values.worker.enabled .Values.worker.keda.enabled .Values.sharedRedis.existingSecret (not .Values.worker.keda.address) }}
{{- fail "worker.keda.enabled with an external shared Redis needs worker.keda.address (host:port as KEDA reaches it) and, if it has a password, worker.keda.authenticationRef." }}
{{- end }}
{{- if not .Values.database.existingSecret }}
{{- fail "database.existingSecret is required: the name of a Secret holding the PostgreSQL URL." }}
{{- end }}
{{- end }}

{{/* A generated secret value that survives upgrades (dict "ctx" $ "name" secret-name "key" data-key): the live Secret's value when there is one, else a new random one. Already base64-encoded. */}}
{{- define "floodgate.persistentSecretValue" -}}
{{- $live := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $live $live.data (hasKey $live.data .key) }}
{{- index $live.data .key }}
{{- else }}
{{- randAlphaNum 48 | b64enc }}
{{- end }}
{{- end }}

{{/* The operator's RBAC rules: read RateLimitPolicies, write their status, post Events. */}}
{{- define "floodgate.operatorRules" -}}
- apiGroups: [floodgate.dev]
  resources: [ratelimitpolicies]
  verbs: [get, list, watch]
- apiGroups: [floodgate.dev]
  resources: [ratelimitpolicies/status]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}
