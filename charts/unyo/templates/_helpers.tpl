{{/* Names are fixed: one release per cluster, the same names as manifests/controller. */}}
{{- define "unyo.name" -}}unyo-controller{{- end -}}

{{- define "unyo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "unyo.name" . }}
{{- end -}}

{{- define "unyo.labels" -}}
{{ include "unyo.selectorLabels" . }}
app.kubernetes.io/part-of: unyo
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "unyo.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}
