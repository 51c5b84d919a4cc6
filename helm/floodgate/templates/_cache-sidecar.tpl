{{/* The per-pod cache Redis container (native sidecar in initContainers, or a plain container). */}}
{{- define "floodgate.cacheContainer" -}}
{{- $sidecar := .Values.cacheSidecar }}
name: cache
image: {{ include "floodgate.imageRef" (dict "image" $sidecar.image "default" "") | quote }}
imagePullPolicy: {{ $sidecar.image.pullPolicy }}
# redis-server directly (not the image's entrypoint, which would chown as root): loopback only,
# no persistence, bounded memory with LRU eviction. It holds cache entries and nothing else.
command: [redis-server]
args:
  - --bind
  - 127.0.0.1
  - --port
  - {{ $sidecar.port | quote }}
  - --protected-mode
  - "yes"
  - --save
  - ""
  - --appendonly
  - "no"
  - --maxmemory
  - {{ $sidecar.maxmemory | quote }}
  - --maxmemory-policy
  - allkeys-lru
  - --dir
  - /data
{{- if $sidecar.native }}
# A native sidecar: started (and probed) before the app, stopped after it, never blocks Job-like exit.
restartPolicy: Always
startupProbe:
  exec:
    command: [sh, -c, 'test "$(redis-cli -h 127.0.0.1 -p {{ $sidecar.port }} ping)" = PONG']
  periodSeconds: 1
  failureThreshold: 30
{{- end }}
readinessProbe:
  exec:
    command: [sh, -c, 'test "$(redis-cli -h 127.0.0.1 -p {{ $sidecar.port }} ping)" = PONG']
  periodSeconds: 10
  timeoutSeconds: 2
livenessProbe:
  exec:
    command: [sh, -c, 'test "$(redis-cli -h 127.0.0.1 -p {{ $sidecar.port }} ping)" = PONG']
  periodSeconds: 20
  timeoutSeconds: 2
  failureThreshold: 3
resources:
  {{- toYaml $sidecar.resources | nindent 2 }}
securityContext:
  {{- include "floodgate.redisSecurityContext" . | nindent 2 }}
volumeMounts:
  - {name: cache-data, mountPath: /data}
{{- end }}
