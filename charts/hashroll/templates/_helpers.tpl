{{/* The name of every object: the release name, or "hashroll" when the release is named
after the chart. One hashroll per cluster. */}}
{{- define "hashroll.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hashroll.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
{{- end -}}

{{- define "hashroll.labels" -}}
{{ include "hashroll.selectorLabels" . }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* `hashroll run` arguments: only what differs from hashroll's own defaults. */}}
{{- define "hashroll.args" -}}
{{- $full := include "hashroll.fullname" . -}}
- run
{{- if .Values.namespaced }}
{{- if .Values.namespaceSelector }}
{{- fail "namespaced: namespaceSelector reads Namespaces, which a Role cannot grant: list them in namespaces" }}
{{- end }}
{{- if .Values.enableCSIIntegration }}
{{- fail "namespaced: enableCSIIntegration reads the CSI driver's pod statuses cluster-wide" }}
{{- end }}
- --namespaced
{{- else }}
{{- if eq .Values.certificates.mode "self-managed" }}
- --self-managed-certs
{{- if ne .Values.certificates.secretName "hashroll-tls" }}
- --tls-secret={{ .Values.certificates.secretName }}
{{- end }}
{{- if ne $full "hashroll" }}
- --webhook-config={{ $full }}
- --service-name={{ $full }}
{{- end }}
{{- else if or (eq .Values.certificates.mode "secret") (eq .Values.certificates.mode "cert-manager") }}
- --tls-cert-file=/tls/tls.crt
- --tls-key-file=/tls/tls.key
{{- else }}
{{- fail (printf "certificates.mode must be self-managed, cert-manager or secret, not %q" .Values.certificates.mode) }}
{{- end }}
- --webhook-addr=0.0.0.0:9443
{{- end }}
- --metrics-addr=0.0.0.0:9090
- --owner-deployment={{ $full }}
{{- if .Values.enableHA }}
- --enable-ha
{{- end }}
{{- $ns := .Values.namespaces }}
{{- if or (not .Values.watchGlobally) (and .Values.namespaced (not $ns)) }}
{{- $ns = list .Release.Namespace }}
{{- end }}
{{- if $ns }}
- --namespaces={{ join "," $ns }}
{{- end }}
{{- if .Values.ignoreNamespaces }}
- --namespaces-to-ignore={{ join "," .Values.ignoreNamespaces }}
{{- end }}
{{- if .Values.namespaceSelector }}
- --namespace-selector={{ .Values.namespaceSelector }}
{{- end }}
{{- if .Values.maxConcurrentRollouts }}
- --max-concurrent-rollouts={{ .Values.maxConcurrentRollouts }}
{{- end }}
{{- if ne (toString .Values.rolloutTimeout) "10m" }}
- --rollout-timeout={{ .Values.rolloutTimeout }}
{{- end }}
{{- if .Values.paused }}
- --paused
{{- end }}
{{- if .Values.windowNamespaceLabel }}
- --window-namespace-label={{ .Values.windowNamespaceLabel }}
{{- end }}
{{- if .Values.resourceLabelSelector }}
- --resource-label-selector={{ .Values.resourceLabelSelector }}
{{- end }}
{{- if and .Values.ignoreSecrets .Values.ignoreConfigMaps }}
{{- fail "ignoreSecrets and ignoreConfigMaps together leave nothing to track" }}
{{- else if .Values.ignoreSecrets }}
- --resources-to-ignore=secrets
{{- else if .Values.ignoreConfigMaps }}
- --resources-to-ignore=configMaps
{{- end }}
{{- $kinds := list }}
{{- if .Values.ignoreJobs }}{{ $kinds = append $kinds "jobs" }}{{ end }}
{{- if .Values.ignoreCronJobs }}{{ $kinds = append $kinds "cronjobs" }}{{ end }}
{{- if $kinds }}
- --ignored-workload-types={{ join "," $kinds }}
{{- end }}
{{- if ne (toString .Values.isArgoRollouts) "" }}
- --is-argo-rollouts={{ .Values.isArgoRollouts }}
{{- end }}
{{- if not .Values.reloadOnCreate }}
- --reload-on-create=false
{{- end }}
{{- if not .Values.reloadOnDelete }}
- --reload-on-delete=false
{{- end }}
{{- if .Values.autoReloadAll }}
- --auto-reload-all
{{- end }}
{{- if .Values.enableCSIIntegration }}
- --enable-csi-integration
{{- end }}
{{- if not .Values.cronjobRunOnChange }}
- --cronjob-run-on-change=false
{{- end }}
{{- if ne .Values.logFormat "text" }}
- --log-format={{ .Values.logFormat }}
{{- end }}
{{- if ne .Values.logLevel "info" }}
- --log-level={{ .Values.logLevel }}
{{- end }}
{{- if .Values.clientCA.existingSecret }}
- --client-ca-file=/client-ca/ca.crt
{{- end }}
{{- if ne .Values.leaseName "hashroll-leader" }}
- --lease-name={{ .Values.leaseName }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}
