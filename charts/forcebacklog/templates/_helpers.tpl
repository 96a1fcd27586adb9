{{/* Name of the chart, overridable. */}}
{{- define "forcebacklog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, or release-chart. */}}
{{- define "forcebacklog.fullname" -}}
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

{{- define "forcebacklog.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "forcebacklog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forcebacklog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "forcebacklog.labels" -}}
helm.sh/chart: {{ include "forcebacklog.chart" . }}
{{ include "forcebacklog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The image of the webhook, which is also the injected init container's image. */}}
{{- define "forcebacklog.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "forcebacklog.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "forcebacklog.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding tls.crt and tls.key, mounted into the webhook pods. */}}
{{- define "forcebacklog.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "secret" }}
{{- required "certificates.secret.name is required with certificates.mode=secret" .Values.certificates.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "forcebacklog.fullname" .) }}
{{- end }}
{{- end }}

{{/* The DNS names the apiserver uses for the Service. */}}
{{- define "forcebacklog.dnsNames" -}}
{{- $svc := include "forcebacklog.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/*
The generated certificate, as a dict {crt, key, ca} of PEM strings.
Computed ONCE per render and memoised in the render context (shared by all
templates of the chart, never stored with the release), so the Secret and
the webhook configurations agree. An existing Secret (found with lookup) is reused: the
certificate is generated at the first install only and stays the same across
upgrades. (`helm template` cannot look up, and renders a fresh one.)
*/}}
{{- define "forcebacklog.generatedCert" -}}
{{- if not (hasKey . "forcebacklogGeneratedCert") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "forcebacklog.tlsSecretName" .) }}
{{- $data := dict }}
{{- if $existing }}{{ $data = default dict $existing.data }}{{ end }}
{{- if and (hasKey $data "tls.crt") (hasKey $data "tls.key") (hasKey $data "ca.crt") }}
{{- $_ := set . "forcebacklogGeneratedCert" (dict "crt" (index $data "tls.crt" | b64dec) "key" (index $data "tls.key" | b64dec) "ca" (index $data "ca.crt" | b64dec)) }}
{{- else }}
{{- $days := int .Values.certificates.generate.validityDays }}
{{- $ca := genCA (printf "%s-ca" (include "forcebacklog.fullname" .)) $days }}
{{- $names := include "forcebacklog.dnsNames" . | fromJsonArray }}
{{- $cert := genSignedCert (index $names 2) nil $names $days $ca }}
{{- $_ := set . "forcebacklogGeneratedCert" (dict "crt" $cert.Cert "key" $cert.Key "ca" $ca.Cert) }}
{{- end }}
{{- end }}
{{- toJson .forcebacklogGeneratedCert }}
{{- end }}

{{/* Namespaces the webhook never touches. */}}
{{- define "forcebacklog.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.webhook.systemNamespaces .Values.webhook.excludeNamespaces | uniq | toJson }}
{{- end }}

{{/*
namespaceSelector of one webhook entry: the excluded namespaces, the
entry's own forcebacklog/inject label expression, and the user's additions
(webhook.namespaceSelector), all ANDed. Arguments: (list $root $operator $values).
*/}}
{{- define "forcebacklog.namespaceSelector" -}}
{{- $root := index . 0 }}
{{- $extra := default dict $root.Values.webhook.namespaceSelector -}}
namespaceSelector:
  {{- with $extra.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "forcebacklog.excludedNamespaces" $root }}
    - key: forcebacklog/inject
      operator: {{ index . 1 }}
      values: {{ index . 2 | toJson }}
    {{- with $extra.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- with $root.Values.webhook.objectSelector }}
objectSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
matchConditions of /mutate: only pods that carry a forcebacklog/* annotation
(Kubernetes >= 1.30; webhook.matchConditions=false turns them off).
*/}}
{{- define "forcebacklog.mutateMatchConditions" -}}
{{- if .Values.webhook.matchConditions -}}
matchConditions:
  - name: forcebacklog-annotated
    expression: >-
      has(object.metadata.annotations) &&
      object.metadata.annotations.exists(k, k.startsWith('forcebacklog/'))
{{- end }}
{{- end }}

{{/*
matchConditions of /validate: objects written by people (no ownerReferences;
the webhook allows the rest anyway) whose pod template, or the Pod itself,
carries a forcebacklog/* annotation. Each step is guarded with has(), so a
kind without that path evaluates to false, never to an error.
*/}}
{{- define "forcebacklog.validateMatchConditions" -}}
{{- if .Values.webhook.matchConditions -}}
{{- $annotated := "exists(k, k.startsWith('forcebacklog/'))" -}}
matchConditions:
  - name: not-controller-created
    expression: >-
      !has(object.metadata.ownerReferences) ||
      size(object.metadata.ownerReferences) == 0
  - name: forcebacklog-annotated
    expression: >-
      (has(object.metadata.annotations) &&
      object.metadata.annotations.{{ $annotated }}) ||
      (has(object.spec) && has(object.spec.template) &&
      has(object.spec.template.metadata) &&
      has(object.spec.template.metadata.annotations) &&
      object.spec.template.metadata.annotations.{{ $annotated }}) ||
      (has(object.spec) && has(object.spec.jobTemplate) &&
      has(object.spec.jobTemplate.spec) &&
      has(object.spec.jobTemplate.spec.template) &&
      has(object.spec.jobTemplate.spec.template.metadata) &&
      has(object.spec.jobTemplate.spec.template.metadata.annotations) &&
      object.spec.jobTemplate.spec.template.metadata.annotations.{{ $annotated }})
{{- end }}
{{- end }}

{{/* Serve flags for what is injected where (lists). */}}
{{- define "forcebacklog.injectionArgs" -}}
{{- range .Values.initContainer.imagePullSecrets }}
- --image-pull-secret={{ . }}
{{- end }}
{{- range .Values.injection.excludeContainers }}
- --exclude-container={{ . }}
{{- else }}
- --exclude-container=
{{- end }}
{{- $native := .Values.injection.nativeSidecars }}
{{- if eq (toString $native) "auto" }}
{{- $native = semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version }}
{{- end }}
{{- if not $native }}
- --native-sidecars=false
{{- end }}
{{- end }}

{{/*
caBundle line or cert-manager annotation, per certificate mode. The
annotation names the serving Certificate (templates/certificate.yaml says
why): the cainjector injects its Secret's ca.crt, the CA that signed it.
*/}}
{{- define "forcebacklog.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "certManager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "forcebacklog.fullname" .) }}
{{- end }}
{{- end }}

{{- define "forcebacklog.caBundle" -}}
{{- if eq .Values.certificates.mode "generate" }}
{{- (include "forcebacklog.generatedCert" . | fromJson).ca | b64enc }}
{{- else if eq .Values.certificates.mode "secret" }}
{{- required "certificates.secret.caBundle is required with certificates.mode=secret" .Values.certificates.secret.caBundle }}
{{- end }}
{{- end }}

{{/* clientConfig of one webhook entry. */}}
{{- define "forcebacklog.clientConfig" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 -}}
clientConfig:
  service:
    name: {{ include "forcebacklog.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ $path }}
    port: {{ $root.Values.service.port }}
  {{- with include "forcebacklog.caBundle" $root }}
  caBundle: {{ . }}
  {{- end }}
{{- end }}
