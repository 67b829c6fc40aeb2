#!/usr/bin/env bash
# Local Redis for development and tests (the rate limiter's shared store).
#
#   scripts/redis.sh start    install redis-server if missing (as root), start it, wait for PONG;
#                             a no-op when it already answers
#   scripts/redis.sh stop     SIGTERM the server this script started, wait up to 10 s, then SIGKILL
#   scripts/redis.sh status   print running/stopped; exit 0 if it answers PING, 3 if stopped,
#                             1 if our process is alive but does not answer
#   scripts/redis.sh url      print the URL tests want in RTSTREAM_TEST_REDIS_URL
#
# Nothing is persisted (--save '' --appendonly no): rate-limit buckets are
# worth nothing after a restart.
#
# Environment:
#   RTSTREAM_CACHE       cache root (default: $HOME/.cache/rtstream)
#   REDIS_DATA_DIR       pid and log files (default: $RTSTREAM_CACHE/redis-data)
#   REDIS_PORT           port on 127.0.0.1 (default: 6379)
#   REDIS_START_TIMEOUT  seconds to wait for PONG (default: 20)
set -euo pipefail

CACHE="${RTSTREAM_CACHE:-$HOME/.cache/rtstream}"
DATA_DIR="${REDIS_DATA_DIR:-$CACHE/redis-data}"
PORT="${REDIS_PORT:-6379}"
START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
PID_FILE="$DATA_DIR/redis-$PORT.pid"
LOG_FILE="$DATA_DIR/redis-$PORT.log"
LOCK_FILE="$DATA_DIR/redis-$PORT.lock"
STOP_TIMEOUT=10

SCRIPT_NAME=redis.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Serialise start/stop between concurrent invocations. fd 9 is closed for the
# server so it does not inherit the lock.
lock() {
  mkdir -p "$DATA_DIR"
  exec 9>"$LOCK_FILE"
  flock 9
}

ping() {
  [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" == PONG ]]
}

# Prints the server pid if the pid file names a live redis-server.
server_pid() { live_pid "$PID_FILE" 'redis-server'; }

install_redis() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  apt_install redis-server
  # Debian's package may start its own service on 6379; that one is not ours
  # and `start` below uses it if it is on our port.
}

cmd_start() {
  install_redis
  lock
  local pid
  if ping; then
    if pid="$(server_pid)"; then
      log "already running (pid $pid, 127.0.0.1:$PORT)"
    else
      log "a Redis not started by this script already answers on 127.0.0.1:$PORT; using it"
    fi
    return 0
  fi
  if pid="$(server_pid)"; then
    log "process $pid is alive but does not answer; stopping it first"
    stop_pid "$pid"
  fi
  rm -f "$PID_FILE"
  log "starting redis-server on 127.0.0.1:$PORT (log: $LOG_FILE)"
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG_FILE" --dir "$DATA_DIR" 9>&-
  local deadline=$((SECONDS + START_TIMEOUT))
  until ping; do
    if ((SECONDS >= deadline)); then
      log "no PONG after ${START_TIMEOUT}s; last log lines ($LOG_FILE):"
      tail -n 30 "$LOG_FILE" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  log "ready (pid $(cat "$PID_FILE" 2>/dev/null || echo '?'), 127.0.0.1:$PORT)"
}

# stop_pid PID: SIGTERM, wait, then SIGKILL.
stop_pid() {
  local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
      break
    fi
    sleep 0.1
  done
}

cmd_stop() {
  lock
  local pid
  if ! pid="$(server_pid)"; then
    rm -f "$PID_FILE"
    log "not running (not started by this script on port $PORT)"
    return 0
  fi
  log "stopping (pid $pid)"
  stop_pid "$pid"
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if ping; then
    if pid="$(server_pid)"; then
      echo "running (pid $pid, 127.0.0.1:$PORT)"
    else
      echo "running (127.0.0.1:$PORT, not started by this script)"
    fi
    return 0
  fi
  if pid="$(server_pid)"; then
    echo "not ready (pid $pid alive, 127.0.0.1:$PORT not answering)"
    return 1
  fi
  echo "stopped"
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) echo "redis://127.0.0.1:$PORT/0" ;;
  *) usage ;;
esac
