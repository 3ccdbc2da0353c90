{{/* An image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "warden.image" -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}

{{/* The webhook's configuration file: admission.config, and injector under "injection" with the sidecar
     image and the engine URL; JSON with sorted keys, as deploy/manifests.ts writes the base's. */}}
{{- define "warden.admissionConfig" -}}
{{- $injection := merge (dict "proxyImage" (include "warden.image" .Values.images.sidecar) "engineUrl" "https://warden-engine.warden-system.svc:8443") (deepCopy .Values.injector) -}}
{{- printf "%s\n" (merge (dict "injection" $injection) (deepCopy .Values.admission.config) | mustToPrettyJson) -}}
{{- end -}}
