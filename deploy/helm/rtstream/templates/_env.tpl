{{- define "rtstream.env" -}}
- name: HTTP_ADDR
  value: ":8080"
- name: DATA_DIR
  value: /tmp/rtstream
- name: LOG_FORMAT
  value: json
- name: KAFKA_BROKERS
  value: {{ .Values.kafka.brokers | quote }}
- name: TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: TOPIC_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: TOPIC_REPLICATION
  value: {{ .Values.kafka.replication | quote }}
- name: KAFKA_SESSION_TIMEOUT
  value: {{ .Values.kafka.sessionTimeout | quote }}
{{- if .Values.kafka.staticMembership }}
- name: KAFKA_GROUP_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- with .Values.kafka.tls }}
{{- if .enabled }}
- name: KAFKA_TLS
  value: "true"
{{- if .caSecret }}
- name: KAFKA_TLS_CA_FILE
  value: /etc/rtstream/kafka-ca/{{ .caKey }}
{{- end }}
{{- if .clientSecret }}
- name: KAFKA_TLS_CERT_FILE
  value: /etc/rtstream/kafka-client/{{ .certKey }}
- name: KAFKA_TLS_KEY_FILE
  value: /etc/rtstream/kafka-client/{{ .keyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.kafka.sasl }}
{{- if .mechanism }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ required "kafka.sasl.username is required with kafka.sasl.mechanism" .username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.passwordSecret is required with kafka.sasl.mechanism" .passwordSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
- name: API_KEYS_FILE
  value: /etc/rtstream/api-keys.json
- name: TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "rtstream.secretName" . }}
      key: token-secret
{{- with .Values.redisURL }}
- name: REDIS_URL
  value: {{ . | quote }}
{{- end }}
- name: SHUTDOWN_DRAIN_DELAY
  value: "{{ .Values.shutdown.drainDelaySeconds }}s"
- name: SHUTDOWN_TIMEOUT
  value: "{{ .Values.shutdown.timeoutSeconds }}s"
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}
