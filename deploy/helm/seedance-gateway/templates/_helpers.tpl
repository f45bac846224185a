{{/* Names, labels and the pod template shared by the `serve` and `worker` Deployments. */}}

{{- define "seedance-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "seedance-gateway.fullname" -}}
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

{{/* The name of a role's objects: the full name for serve, "<fullname>-worker" for the worker. */}}
{{- define "seedance-gateway.roleName" -}}
{{- $full := include "seedance-gateway.fullname" .root }}
{{- if eq .role "serve" }}{{ $full }}{{ else }}{{ printf "%s-%s" ($full | trunc 56 | trimSuffix "-") .role }}{{ end }}
{{- end }}

{{- define "seedance-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "seedance-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of a role's objects: (dict "root" $ "role" "serve"|"worker"). */}}
{{- define "seedance-gateway.roleLabels" -}}
{{ include "seedance-gateway.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "seedance-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seedance-gateway.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "seedance-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "seedance-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "seedance-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* HTTPS when the gateway itself serves TLS (GATEWAY_TLS_CERT_FILE in config). */}}
{{- define "seedance-gateway.scheme" -}}
{{- if .Values.config.GATEWAY_TLS_CERT_FILE }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* Checks of the values that the schema cannot express; rendered (as nothing) by the ConfigMap. */}}
{{- define "seedance-gateway.validate" -}}
{{- $simulator := and (hasKey .Values.config "GATEWAY_SIMULATOR") (eq (toString .Values.config.GATEWAY_SIMULATOR | lower) "true") }}
{{- if and (not .Values.secrets.falKey.name) (not $simulator) }}
{{- fail "secrets.falKey.name is required: the Secret holding GATEWAY_FAL_KEY (or set config.GATEWAY_SIMULATOR: true, never in production)" }}
{{- end }}
{{- if and (not .Values.redis.url) (not .Values.redis.existingSecret.name) }}
{{- fail "set redis.url, or redis.existingSecret.name for a URL that carries a password" }}
{{- end }}
{{- if and .Values.redis.tls.caSecret.name .Values.redis.url (not .Values.redis.existingSecret.name) }}
{{- if not (hasPrefix "rediss://" .Values.redis.url) }}
{{- fail "redis.tls.caSecret is set, so redis.url must be a rediss:// URL" }}
{{- end }}
{{- $ca := printf "ssl_ca_certs=%s/%s" (trimSuffix "/" .Values.redis.tls.mountPath) .Values.redis.tls.caSecret.key }}
{{- if not (contains $ca .Values.redis.url) }}
{{- fail (printf "redis.tls.caSecret is mounted, but redis.url does not use it: add ?%s to the URL" $ca) }}
{{- end }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) 15 | int) }}
{{- fail "terminationGracePeriodSeconds must be at least preStopSleepSeconds + 15 (the gateway drains for up to 15 s after SIGTERM)" }}
{{- end }}
{{- if and .Values.metrics.port (eq (int .Values.metrics.port) (int .Values.containerPort)) }}
{{- fail "metrics.port must differ from containerPort" }}
{{- end }}
{{- end }}

{{/* A secretKeyRef env entry: (dict "env" "GATEWAY_X" "ref" .Values.secrets.x). */}}
{{- define "seedance-gateway.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name }}
      key: {{ .ref.key }}
{{- end }}

{{/* The pod template of a role: (dict "root" $ "role" "serve"|"worker" "values" .Values.serve|.Values.worker). */}}
{{- define "seedance-gateway.podTemplate" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $scheme := include "seedance-gateway.scheme" $root -}}
metadata:
  labels:
    {{- include "seedance-gateway.roleLabels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "seedance-gateway.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
  containers:
    - name: {{ .role }}
      image: {{ include "seedance-gateway.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        - {{ .role }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      ports:
        - name: http
          containerPort: {{ $root.Values.containerPort }}
          protocol: TCP
        {{- if $root.Values.metrics.port }}
        - name: metrics
          containerPort: {{ $root.Values.metrics.port }}
          protocol: TCP
        {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "seedance-gateway.fullname" $root }}
      env:
        {{- if and (eq .role "serve") $root.Values.worker.enabled }}
        - name: GATEWAY_TRACKER_ENABLED
          value: "false"
        {{- end }}
        {{- if $root.Values.redis.existingSecret.name }}
        {{- include "seedance-gateway.secretEnv" (dict "env" "GATEWAY_REDIS_URL" "ref" $root.Values.redis.existingSecret) | nindent 8 }}
        {{- end }}
        {{- if $root.Values.secrets.falKey.name }}
        {{- include "seedance-gateway.secretEnv" (dict "env" "GATEWAY_FAL_KEY" "ref" $root.Values.secrets.falKey) | nindent 8 }}
        {{- end }}
        {{- if and (eq .role "serve") $root.Values.secrets.adminToken.name }}
        {{- include "seedance-gateway.secretEnv" (dict "env" "GATEWAY_ADMIN_TOKEN" "ref" $root.Values.secrets.adminToken) | nindent 8 }}
        {{- end }}
        {{- if $root.Values.secrets.webhookSigningKeys.name }}
        {{- include "seedance-gateway.secretEnv" (dict "env" "GATEWAY_WEBHOOK_SIGNING_KEYS" "ref" $root.Values.secrets.webhookSigningKeys) | nindent 8 }}
        {{- end }}
        {{- with $root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
          scheme: {{ $scheme }}
        {{- toYaml $root.Values.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
          scheme: {{ $scheme }}
        {{- toYaml $root.Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
          scheme: {{ $scheme }}
        {{- toYaml $root.Values.probes.readiness | nindent 8 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ $root.Values.preStopSleepSeconds }}"]
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $root.Values.redis.tls.caSecret.name }}
        - name: redis-tls
          mountPath: {{ $root.Values.redis.tls.mountPath }}
          readOnly: true
        {{- end }}
        {{- with $root.Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if $root.Values.redis.tls.caSecret.name }}
    - name: redis-tls
      secret:
        secretName: {{ $root.Values.redis.tls.caSecret.name }}
        items:
          - key: {{ $root.Values.redis.tls.caSecret.key }}
            path: {{ $root.Values.redis.tls.caSecret.key }}
    {{- end }}
    {{- with $root.Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if $root.Values.topologySpread.enabled }}
  topologySpreadConstraints:
    {{- range $root.Values.topologySpread.topologyKeys }}
    - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
      topologyKey: {{ . }}
      whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "seedance-gateway.selectorLabels" (dict "root" $root "role" $.role) | nindent 10 }}
      matchLabelKeys:
        - pod-template-hash
    {{- end }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* A role's Deployment: (dict "root" $ "role" ... "values" ...). */}}
{{- define "seedance-gateway.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "seedance-gateway.roleName" . }}
  labels:
    {{- include "seedance-gateway.roleLabels" . | nindent 4 }}
spec:
  {{- if not .values.autoscaling.enabled }}
  replicas: {{ .values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "seedance-gateway.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    {{- include "seedance-gateway.podTemplate" . | nindent 4 }}
{{- end }}

{{/* A role's HorizontalPodAutoscaler. */}}
{{- define "seedance-gateway.hpa" -}}
{{- $a := .values.autoscaling }}
{{- if not (or $a.targetCPUUtilizationPercentage $a.targetMemoryUtilizationPercentage) }}
{{- fail (printf "%s.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" .role) }}
{{- end }}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas is above maxReplicas" .role) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "seedance-gateway.roleName" . }}
  labels:
    {{- include "seedance-gateway.roleLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "seedance-gateway.roleName" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- if $a.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
    {{- end }}
    {{- if $a.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ $a.targetMemoryUtilizationPercentage }}
    {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* A role's PodDisruptionBudget. */}}
{{- define "seedance-gateway.pdb" -}}
{{- $p := .values.podDisruptionBudget }}
{{- if and (kindIs "invalid" $p.minAvailable) (kindIs "invalid" $p.maxUnavailable) }}
{{- fail (printf "%s.podDisruptionBudget needs minAvailable or maxUnavailable" .role) }}
{{- end }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "seedance-gateway.roleName" . }}
  labels:
    {{- include "seedance-gateway.roleLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $p.minAvailable) }}
  minAvailable: {{ $p.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $p.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "seedance-gateway.selectorLabels" . | nindent 6 }}
{{- end }}
