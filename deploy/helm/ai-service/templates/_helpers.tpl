{{/* Names and labels. */}}
{{- define "ai-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ai-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ai-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ai-service.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ai-service.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Secret the pods read keys from: the operator's, or the chart's own. */}}
{{- define "ai-service.secretName" -}}
{{- default (include "ai-service.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* Whether the chart creates its own Secret: a key is given and no existingSecret. */}}
{{- define "ai-service.createSecret" -}}
{{- if and (not .Values.existingSecret) (or .Values.secrets.openai_key .Values.secrets.anthropic_key .Values.secrets.groq_key) -}}
true
{{- end -}}
{{- end -}}

{{/* A duration value as the service reads it: "30s" stays, a bare number means seconds. */}}
{{- define "ai-service.duration" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- printf "%ds" (int .) -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
The service config file. The documented values map onto it (config.max_retries ->
routing.max_retries, config.timeout -> server.request_timeout, config.pool_size ->
provider_defaults.pool_size); providers and routes are copied verbatim; TLS, Redis and
client-key settings appear only when set; extraConfig is deep-merged last and wins.
*/}}
{{- define "ai-service.config" -}}
{{- $v := .Values -}}
{{- $server := dict
  "listen" "0.0.0.0:8080"
  "admin_listen" (printf "0.0.0.0:%d" (int $v.metrics.port))
  "request_timeout" (include "ai-service.duration" $v.config.timeout)
  "shutdown_delay" (printf "%ds" (int $v.shutdown.delaySeconds))
  "shutdown_grace" (printf "%ds" (int $v.shutdown.graceSeconds)) -}}
{{- if $v.tls.enabled -}}
{{- $tls := dict "cert_file" "/var/run/ai-service/tls/tls.crt" "key_file" "/var/run/ai-service/tls/tls.key" -}}
{{- if $v.tls.clientAuth -}}
{{- $_ := set $tls "client_ca_file" "/var/run/ai-service/tls/ca.crt" -}}
{{- end -}}
{{- $_ := set $server "tls" $tls -}}
{{- end -}}
{{- $cfg := dict
  "server" $server
  "log" (dict "level" $v.log.level "format" "json")
  "routing" (dict "max_retries" (int $v.config.max_retries))
  "provider_defaults" (dict "pool_size" (int $v.config.pool_size)) -}}
{{- if $v.providers -}}
{{- $_ := set $cfg "providers" (deepCopy $v.providers) -}}
{{- end -}}
{{- if $v.routes -}}
{{- $_ := set $cfg "routes" (deepCopy $v.routes) -}}
{{- end -}}
{{- if $v.redis.url -}}
{{- /* One Redis for the fleet: rate limits hold across replicas, and the cache (when
       enabled with extraConfig.cache.enabled) is shared. */ -}}
{{- $_ := set $cfg "redis" (dict "url" $v.redis.url) -}}
{{- $_ := set $cfg "limits" (dict "backend" "redis") -}}
{{- $_ := set $cfg "cache" (dict "backend" "redis") -}}
{{- end -}}
{{- if $v.auth.keysSecret -}}
{{- $_ := set $cfg "auth" (dict "keys_file" "/var/run/ai-service/auth/keys.yaml") -}}
{{- end -}}
{{- if $v.tracing.endpoint -}}
{{- $otlp := dict "endpoint" $v.tracing.endpoint "protocol" $v.tracing.protocol -}}
{{- if $v.tracing.headers -}}
{{- $_ := required "tracing.headersSecret is required when tracing.headers is set" $v.tracing.headersSecret -}}
{{- $headers := dict -}}
{{- range $name, $key := $v.tracing.headers -}}
{{- $_ := set $headers $name (dict "value_file" (printf "/var/run/ai-service/otlp/%s" $key)) -}}
{{- end -}}
{{- $_ := set $otlp "headers" $headers -}}
{{- end -}}
{{- $_ := set $cfg "tracing" (dict "sample_ratio" $v.tracing.sampleRatio "otlp" $otlp) -}}
{{- end -}}
{{- if $v.backup.enabled -}}
{{- /* The replica name comes from POD_NAME (set in the Deployment). */ -}}
{{- $_ := set $cfg "audit" (dict
  "sink" "/var/lib/ai-service/audit/audit.jsonl"
  "rotate" (dict "max_bytes" (int64 $v.backup.rotate.maxBytes) "max_age" (include "ai-service.duration" $v.backup.rotate.maxAge))) -}}
{{- $backup := dict
  "enabled" true
  "storage" (required "backup.storage (s3://bucket/prefix) is required when backup.enabled" $v.backup.storage)
  "region" $v.backup.region
  "interval" (include "ai-service.duration" $v.backup.interval)
  "retention_days" (int $v.backup.retentionDays) -}}
{{- if $v.backup.endpoint -}}
{{- $_ := set $backup "endpoint" $v.backup.endpoint -}}
{{- end -}}
{{- $_ := set $cfg "backup" $backup -}}
{{- end -}}
{{- if $v.vault.enabled -}}
{{- /* Secrets from Vault/OpenBao (docs/vault.md): Kubernetes auth with the pod's
       service-account token; vault.keys names each provider's key, vault.clientKeys the
       client keys. */ -}}
{{- $vault := dict
  "address" (required "vault.address is required when vault.enabled" $v.vault.address)
  "refresh_interval" $v.vault.refreshInterval
  "auth" (dict "method" "kubernetes" "role" $v.vault.role "mount" $v.vault.authPath) -}}
{{- if $v.vault.namespace -}}
{{- $_ := set $vault "namespace" $v.vault.namespace -}}
{{- end -}}
{{- if $v.vault.caSecret -}}
{{- $_ := set $vault "ca_cert" "/var/run/ai-service/vault-ca/ca.crt" -}}
{{- end -}}
{{- $_ := set $cfg "vault" $vault -}}
{{- if $v.vault.keys -}}
{{- $providers := default (dict) (get $cfg "providers") -}}
{{- range $name, $ref := $v.vault.keys -}}
{{- $provider := default (dict) (get $providers $name) -}}
{{- $_ := set $provider "api_key_vault" (deepCopy $ref) -}}
{{- $_ := set $providers $name $provider -}}
{{- end -}}
{{- $_ := set $cfg "providers" $providers -}}
{{- end -}}
{{- if $v.vault.clientKeys -}}
{{- if $v.auth.keysSecret -}}
{{- fail "set at most one of auth.keysSecret and vault.clientKeys" -}}
{{- end -}}
{{- $_ := set $cfg "auth" (dict "keys_vault" (deepCopy $v.vault.clientKeys)) -}}
{{- end -}}
{{- end -}}
{{- $cfg = mustMergeOverwrite $cfg (deepCopy $v.extraConfig) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Whether the chart creates the pods' ServiceAccount: asked for, or a cloud identity set. */}}
{{- define "ai-service.createServiceAccount" -}}
{{- if or .Values.serviceAccount.create .Values.cloudIdentity.awsRoleArn .Values.cloudIdentity.gcpServiceAccount -}}
true
{{- end -}}
{{- end -}}

{{/* The ServiceAccount's annotations: the operator's, plus the cloud identities'. */}}
{{- define "ai-service.serviceAccountAnnotations" -}}
{{- $annotations := deepCopy .Values.serviceAccount.annotations -}}
{{- with .Values.cloudIdentity.awsRoleArn -}}
{{- $_ := set $annotations "eks.amazonaws.com/role-arn" . -}}
{{- end -}}
{{- with .Values.cloudIdentity.gcpServiceAccount -}}
{{- $_ := set $annotations "iam.gke.io/gcp-service-account" . -}}
{{- end -}}
{{- if $annotations -}}
{{- toYaml $annotations -}}
{{- end -}}
{{- end -}}

{{/* The pods' ServiceAccount, when the chart creates one or one is named. */}}
{{- define "ai-service.serviceAccountName" -}}
{{- if include "ai-service.createServiceAccount" . -}}
{{- default (include "ai-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
