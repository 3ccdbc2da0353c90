{{/* An image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "warden.image" -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}
