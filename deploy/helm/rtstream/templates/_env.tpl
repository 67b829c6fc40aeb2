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
