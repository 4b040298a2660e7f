{{/*
Names, labels and the values derived from several others. Kept here so every template agrees on them.
*/}}

{{- define "micboard-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, shortened to 63 characters (the DNS label limit of Service names). When the
release name already contains the chart name it is used alone, so `helm install micboard-exporter .` doesn't
produce "micboard-exporter-micboard-exporter".
*/}}
{{- define "micboard-exporter.fullname" -}}
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

{{- define "micboard-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of a release (a Deployment's selector is immutable). */}}
{{- define "micboard-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "micboard-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "micboard-exporter.labels" -}}
helm.sh/chart: {{ include "micboard-exporter.chart" . }}
{{ include "micboard-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: micboard-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "micboard-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "micboard-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "micboard-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "micboard-exporter.configMapName" -}}
{{- default (printf "%s-config" (include "micboard-exporter.fullname" .)) .Values.existingConfigMap }}
{{- end }}

{{- define "micboard-exporter.configKey" -}}
{{- if .Values.existingConfigMap }}{{ .Values.existingConfigMapKey }}{{ else }}config.yaml{{ end }}
{{- end }}

{{- define "micboard-exporter.sharded" -}}
{{- if gt (int .Values.sharding.replicas) 1 }}true{{ end }}
{{- end }}

{{/*
Environment variable -> {key, optional}, as JSON. Every `*_env` option of a device names a variable that
must come from deviceSecrets.existingSecret (key = variable name). Variables named only in
config.defaults are optional: a device's own reference replaces the default, so the Secret may rightly lack
them, and if a device does need one the exporter's config check names it. deviceSecrets.env adds or
renames (required). Fails the render when the config needs a Secret and none is given, so the mistake shows
at install time, not as a device stuck on AuthError.
*/}}
{{- define "micboard-exporter.secretEnv" -}}
{{- $env := dict }}
{{- if not .Values.existingConfigMap }}
{{- $config := .Values.config | default dict }}
{{- range $plugin, $options := ($config.defaults | default dict) }}
{{- range $key, $value := ($options | default dict) }}
{{- if and (hasSuffix "_env" $key) (kindIs "string" $value) }}
{{- $_ := set $env $value (dict "key" $value "optional" true) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $device := ($config.devices | default list) }}
{{- range $key, $value := ($device.options | default dict) }}
{{- if and (hasSuffix "_env" $key) (kindIs "string" $value) }}
{{- $_ := set $env $value (dict "key" $value "optional" false) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $key := .Values.deviceSecrets.env }}
{{- $_ := set $env $name (dict "key" $key "optional" false) }}
{{- end }}
{{- if and $env (not .Values.deviceSecrets.existingSecret) }}
{{- fail (printf "the exporter config reads secrets from the environment variables %s: set deviceSecrets.existingSecret to a Secret holding them" (keys $env | sortAlpha | join ", ")) }}
{{- end }}
{{- toJson $env }}
{{- end }}

{{/* Pod template shared by the Deployment and the StatefulSet. */}}
{{- define "micboard-exporter.podTemplate" -}}
{{- $sharded := include "micboard-exporter.sharded" . -}}
{{- $secretEnv := include "micboard-exporter.secretEnv" . | fromJson -}}
metadata:
  labels:
    {{- include "micboard-exporter.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
    {{- with .Values.commonLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if or (not .Values.existingConfigMap) .Values.podAnnotations }}
  annotations:
    {{- if not .Values.existingConfigMap }}
    {{- /* Rolls the pods when the rendered config changes: kubelet would update the mounted file, but the
    exporter rereads it only on SIGHUP or POST /-/reload. */}}
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  serviceAccountName: {{ include "micboard-exporter.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.hostNetwork }}
  hostNetwork: true
  {{- end }}
  {{- if .Values.dnsPolicy }}
  dnsPolicy: {{ .Values.dnsPolicy }}
  {{- else if .Values.hostNetwork }}
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: exporter
      image: {{ include "micboard-exporter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --config=/etc/micboard-exporter/config/config.yaml
        - --listen=:{{ .Values.containerPort }}
        - --log-level={{ .Values.logLevel }}
        - --log-format={{ .Values.logFormat }}
        {{- if $sharded }}
        {{- /* Kubernetes expands $(POD_NAME) to e.g. "<statefulset>-2"; the exporter takes the trailing ordinal. */}}
        - --shard-index=$(POD_NAME)
        - --shard-count={{ .Values.sharding.replicas }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- if or $sharded $secretEnv .Values.extraEnv }}
      env:
        {{- if $sharded }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- range $name, $ref := $secretEnv }}
        - name: {{ $name }}
          valueFrom:
            secretKeyRef:
              name: {{ $.Values.deviceSecrets.existingSecret }}
              key: {{ $ref.key }}
              {{- if $ref.optional }}
              optional: true
              {{- end }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- /* A directory mount, not subPath: kubelet then updates the file when the ConfigMap changes, so an
        existingConfigMap can be reloaded with POST /-/reload without a restart. */}}
        - name: config
          mountPath: /etc/micboard-exporter/config
          readOnly: true
        {{- /* The root filesystem is read-only; Python's tempfile needs somewhere to write. */}}
        - name: tmp
          mountPath: /tmp
        {{- if and .Values.deviceSecrets.mountFiles .Values.deviceSecrets.existingSecret }}
        - name: device-secrets
          mountPath: {{ .Values.deviceSecrets.mountPath }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "micboard-exporter.configMapName" . }}
        items:
          - key: {{ include "micboard-exporter.configKey" . }}
            path: config.yaml
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if and .Values.deviceSecrets.mountFiles .Values.deviceSecrets.existingSecret }}
    - name: device-secrets
      secret:
        secretName: {{ .Values.deviceSecrets.existingSecret }}
        defaultMode: 0440 # r--r-----: the exporter reads them through fsGroup
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
