#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) for development and tests.
#
#   scripts/kafka.sh start    fetch jars if needed, format storage if needed, start, wait until ready
#   scripts/kafka.sh stop     SIGTERM, wait up to 30 s, then SIGKILL
#   scripts/kafka.sh status   print running/stopped; exit 0 if running, 3 if stopped,
#                             1 if the process is alive but the port does not answer
#   scripts/kafka.sh kill9    SIGKILL the broker (for fault-injection tests)
#   scripts/kafka.sh reset    stop and delete the data dir (topics, offsets, cluster id)
#   scripts/kafka.sh log      print the tail of the broker log
#
# Environment:
#   RTSTREAM_CACHE         cache root (default: $HOME/.cache/rtstream); jars go to kafka-4.4.0/libs
#   KAFKA_DATA_DIR         config, log, pid and storage (default: $RTSTREAM_CACHE/kafka-data)
#   KAFKA_PORT             client listener port     (default: 9092)
#   KAFKA_CONTROLLER_PORT  controller listener port (default: 9093)
#   KAFKA_ADVERTISED_PORT  port the broker tells clients to connect to (default: KAFKA_PORT); a
#                          TCP proxy's port here sends every client connection through the proxy
#   KAFKA_SASL_PORT        also listen with SASL_PLAINTEXT here (PLAIN, user "rtstream" with
#                          password KAFKA_SASL_PLAIN_PASSWORD, default rtstream-secret; and
#                          SCRAM-SHA-512 for users a client creates); default: no such listener
#   KAFKA_TLS_PORT         also listen with TLS here, client certificates required; the CA, the
#                          broker's and a client's certificate and key (PEM) are made with
#                          openssl in KAFKA_DATA_DIR/tls; default: no such listener
#   KAFKA_HEAP_OPTS        JVM heap flags (default: -Xms256m -Xmx1g)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to be ready (default: 180)
#   KAFKA_MESSAGE_MAX_BYTES  broker message.max.bytes (default: 8388608); it bounds the whole
#                          record batch, so a value of exactly 8 MiB needs a little more
#   JAVA_HOME              if set, $JAVA_HOME/bin/java is used instead of java on PATH
set -euo pipefail

KAFKA_VERSION=4.4.0
SCALA_VERSION=2.13

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

CACHE="${RTSTREAM_CACHE:-$HOME/.cache/rtstream}"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
DATA_DIR="${KAFKA_DATA_DIR:-$CACHE/kafka-data}"
PORT="${KAFKA_PORT:-9092}"
CTRL_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
ADVERTISED_PORT="${KAFKA_ADVERTISED_PORT:-$PORT}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
MESSAGE_MAX_BYTES="${KAFKA_MESSAGE_MAX_BYTES:-8388608}"
SASL_PORT="${KAFKA_SASL_PORT:-}"
SASL_PLAIN_PASSWORD="${KAFKA_SASL_PLAIN_PASSWORD:-rtstream-secret}"
TLS_PORT="${KAFKA_TLS_PORT:-}"
STOP_TIMEOUT=30

STORAGE_DIR="$DATA_DIR/storage" # log.dirs (also holds the KRaft metadata log)
CONFIG="$DATA_DIR/server.properties"
LOG4J_CONFIG="$DATA_DIR/log4j2.yaml"
LOG_FILE="$DATA_DIR/kafka.log"
PID_FILE="$DATA_DIR/kafka.pid"
LOCK_FILE="${DATA_DIR%/}.lock"
FETCH_LOCK_FILE="$CACHE/kafka-fetch.lock"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

SCRIPT_NAME=kafka.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Serialise start/stop/kill9/reset of one broker (one data dir) between
# concurrent invocations. Brokers on other data dirs (the tests' private ones)
# are not held up: a kill -9 planned for the middle of a load must not wait
# behind another broker's start. The lock file is the data dir's sibling,
# as reset deletes the data dir. fd 9 is closed for the broker process so it
# does not inherit the lock.
lock() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  flock 9
}

# The jars are shared by every broker of this cache root: one fetch at a time.
lock_fetch() {
  mkdir -p "$CACHE"
  exec 8>"$FETCH_LOCK_FILE"
  flock 8
}

port_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Prints the broker pid if the pid file names a live kafka.Kafka process.
broker_pid() { live_pid "$PID_FILE" 'kafka\.Kafka'; }

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Java 17+ is required; set JAVA_HOME or install a JRE)"
}

fetch() {
  if [[ -f "$LIBS/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to fetch the Kafka $KAFKA_VERSION jars)"
  lock_fetch
  if [[ -f "$LIBS/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" ]]; then
    exec 8>&- # fetched by another invocation while this one waited
    return 0
  fi
  log "fetching Kafka $KAFKA_VERSION jars into $LIBS"
  mkdir -p "$KAFKA_HOME"
  rm -rf "$KAFKA_HOME"/libs.tmp.* # left by an interrupted fetch (we hold the fetch lock)
  local tmp
  tmp="$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")"
  # Only a complete download is renamed to libs/; a failed one is removed.
  # Maven's output is kept for errors only (Debian's mvn -q still emits stray
  # ANSI resets).
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "maven could not fetch the Kafka jars"
  fi
  rm -f "$tmp.log"
  if [[ ! -f "$tmp/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" ]]; then
    rm -rf "$tmp"
    die "maven finished but kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar is missing"
  fi
  rm -rf "$LIBS" # a stale, incomplete libs dir from some older layout
  mv "$tmp" "$LIBS"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars"
  exec 8>&-
}

# make_tls writes a CA, the broker's certificate for 127.0.0.1 and localhost,
# and a client certificate, all PEM, into $DATA_DIR/tls (once).
make_tls() {
  local dir="$DATA_DIR/tls"
  [[ -f "$dir/client.key" ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "KAFKA_TLS_PORT needs openssl"
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
    openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=rtstream test CA" -out ca.crt
    local who
    for who in broker client; do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$who.key"
      openssl req -new -key "$who.key" -subj "/CN=rtstream-$who" -out "$who.csr"
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$who.ext"
      openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$who.ext" -out "$who.crt"
    done
    cat broker.key broker.crt >broker.pem
  ) >/dev/null 2>&1 || die "openssl could not make the test certificates"
}

# extra_listeners prints the SASL and TLS listeners' settings, as asked.
extra_listeners() {
  if [[ -n "$SASL_PORT" ]]; then
    cat <<EOF
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_rtstream="$SASL_PLAIN_PASSWORD";
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
  fi
  if [[ -n "$TLS_PORT" ]]; then
    cat <<EOF
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$DATA_DIR/tls/broker.pem
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$DATA_DIR/tls/ca.crt
listener.name.ssl.ssl.client.auth=required
EOF
  fi
}

write_config() {
  mkdir -p "$DATA_DIR" "$STORAGE_DIR"
  local listeners="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT"
  local advertised="PLAINTEXT://127.0.0.1:$ADVERTISED_PORT"
  if [[ -n "$SASL_PORT" ]]; then
    listeners+=",SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"
    advertised+=",SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"
  fi
  if [[ -n "$TLS_PORT" ]]; then
    make_tls
    listeners+=",SSL://127.0.0.1:$TLS_PORT"
    advertised+=",SSL://127.0.0.1:$TLS_PORT"
  fi
  cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
log.dirs=$STORAGE_DIR
$(extra_listeners)

# Single node: everything replicated once.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1

# After a kill -9 the restarted broker cannot register until the old
# registration's session expires (default 9 s); keep that short for fault tests.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000

group.initial.rebalance.delay.ms=0
# Lets rtstream's KAFKA_SESSION_TIMEOUT go below Kafka's default floor of 6 s,
# so the failover benchmark can measure it (a production broker keeps its own).
group.min.session.timeout.ms=1000
num.partitions=1
auto.create.topics.enable=false
# rtstream sends records of up to 8 MiB (limit applies to the whole batch).
message.max.bytes=$MESSAGE_MAX_BYTES
EOF
  cat >"$LOG4J_CONFIG" <<'EOF'
# Generated by scripts/kafka.sh: warnings only, plus the broker's start/stop lines.
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
EOF
}

kafka_java() {
  "$JAVA" -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIBS/*" "$@"
}

format_storage() {
  if [[ -f "$STORAGE_DIR/meta.properties" ]]; then
    return 0
  fi
  local uuid
  uuid="$(kafka_java kafka.tools.StorageTool random-uuid | tail -n 1)"
  [[ -n "$uuid" ]] || die "StorageTool random-uuid printed nothing"
  log "formatting $STORAGE_DIR (cluster id $uuid)"
  kafka_java kafka.tools.StorageTool format -t "$uuid" -c "$CONFIG" >&2
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker exited during startup; last log lines ($LOG_FILE):"
      tail -n 50 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      exit 1
    fi
    if port_open "$PORT" && grep -q 'Kafka Server started' "$LOG_FILE" 2>/dev/null; then
      return 0
    fi
    sleep 0.25
  done
  log "broker (pid $pid) not ready after ${START_TIMEOUT}s; last log lines ($LOG_FILE):"
  tail -n 50 "$LOG_FILE" >&2 || true
  exit 1
}

cmd_start() {
  lock
  local pid
  if pid="$(broker_pid)"; then
    if port_open "$PORT"; then
      log "already running (pid $pid, 127.0.0.1:$PORT)"
      return 0
    fi
    log "process $pid is alive but 127.0.0.1:$PORT does not answer yet; waiting"
    wait_ready "$pid"
    log "ready (pid $pid, 127.0.0.1:$PORT)"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then
    die "127.0.0.1:$PORT is in use by a process not started from $DATA_DIR (set KAFKA_PORT / KAFKA_DATA_DIR)"
  fi
  if port_open "$CTRL_PORT"; then
    die "controller port 127.0.0.1:$CTRL_PORT is already in use (set KAFKA_CONTROLLER_PORT)"
  fi

  need_java
  fetch
  write_config
  format_storage

  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (data: $DATA_DIR)"
  # setsid: own session, so a Ctrl-C in the calling terminal does not reach the
  # broker. The inner shell records its own pid and then execs java, so the pid
  # file names the JVM whether or not setsid had to fork.
  # shellcheck disable=SC2086 # HEAP_OPTS is a list of flags
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
    "$JAVA" $HEAP_OPTS -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    </dev/null >"$LOG_FILE" 2>&1 8>&- 9>&- &

  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s "$PID_FILE" ]] && break
    sleep 0.05
  done
  [[ -s "$PID_FILE" ]] || die "broker did not write $PID_FILE"
  pid="$(<"$PID_FILE")"
  local t0=$SECONDS
  wait_ready "$pid"
  log "ready after ~$((SECONDS - t0))s (pid $pid, 127.0.0.1:$PORT)"
}

# signal_and_wait SIGNAL TIMEOUT: returns 0 once the broker is gone, 1 on timeout.
signal_and_wait() {
  local sig="$1" timeout="$2" pid="$3" deadline
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# not_running forgets a stale pid file and says so.
not_running() {
  rm -f "$PID_FILE"
  log "not running"
}

cmd_stop() {
  lock
  local pid
  pid="$(broker_pid)" || { not_running; return 0; }
  log "stopping (pid $pid)"
  if ! signal_and_wait TERM "$STOP_TIMEOUT" "$pid"; then
    log "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    signal_and_wait KILL 10 "$pid" || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_kill9() {
  lock
  local pid
  pid="$(broker_pid)" || { not_running; return 0; }
  log "SIGKILL pid $pid"
  signal_and_wait KILL 10 "$pid" || die "pid $pid survived SIGKILL"
  rm -f "$PID_FILE"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    if port_open "$PORT"; then
      echo "running (pid $pid, 127.0.0.1:$PORT, data $DATA_DIR)"
      return 0
    fi
    echo "not ready (pid $pid alive, 127.0.0.1:$PORT not answering)"
    return 1
  fi
  echo "stopped"
  return 3
}

cmd_reset() {
  cmd_stop
  case "$DATA_DIR" in
    "" | / | "$HOME" | "$CACHE") die "refusing to delete data dir '$DATA_DIR'" ;;
  esac
  log "deleting $DATA_DIR"
  rm -rf "$DATA_DIR"
}

cmd_log() {
  tail -n "${1:-100}" "$LOG_FILE"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill9) cmd_kill9 ;;
  reset) cmd_reset ;;
  log) cmd_log "${2:-}" ;;
  *) usage ;;
esac
