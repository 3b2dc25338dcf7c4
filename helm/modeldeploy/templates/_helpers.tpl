{{/* Names, labels and the image reference shared by every template. */}}

{{- define "modeldeploy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy.fullname" -}}
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

{{- define "modeldeploy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modeldeploy.labels" -}}
helm.sh/chart: {{ include "modeldeploy.chart" . }}
{{ include "modeldeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modeldeploy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "modeldeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldeploy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modeldeploy.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "modeldeploy.authSecretNamespace" -}}
{{- default .Release.Namespace .Values.prometheus.authSecret.namespace }}
{{- end }}

{{/*
The rules the operator needs in every namespace it manages. Derived from operator/modeldeploy/kube/client.py
(the only module calling the API) and operator/modeldeploy/handlers.py (what kopf watches);
tests/unit/helm/test_rbac.py fails when the two drift apart. docs/operations.md#rbac explains each rule.
*/}}
{{- define "modeldeploy.namespacedRules" -}}
# The ModelDeployments: watched by kopf, listed by the resync, read by the reconciler. Never written: the
# operator does not change the spec and adds no finalizer.
- apiGroups: ["serving.modeldeploy.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch"]
# Status: server-side apply of the status subresource.
- apiGroups: ["serving.modeldeploy.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
# Serving workloads: watched by kopf (managed-by label), server-side applied (create or patch), deleted.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Route tables of the routers (`<md>-routes`). `watch` is not used by the operator itself; it is needed to grant
# the router's role (get/list/watch configmaps): RBAC refuses to grant what the granter does not hold.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Routers: their ServiceAccount, Role and RoleBinding; Gateway API HTTPRoutes when traffic goes through a Gateway.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "create", "patch", "delete"]
# Events on ModelDeployments (kubectl describe / kubectl events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
