#!/usr/bin/env bash
# wrk against a running rtstream, for people who measure with wrk (Debian's
# wrk package). It creates a stream with curl, then has wrk POST one ~60-byte
# JSON event per request to it (benchmarks/wrk-send.lua) and prints wrk's
# output, with the answers counted by status. rtbench (make bench) is the
# benchmark with targets and verdicts; this is the quick, familiar check.
#
#   API_KEYS=dev-key go run ./cmd/rtstream &          # or any running server
#   RTSTREAM_URL=http://127.0.0.1:8080 API_KEY=dev-key benchmarks/wrk.sh
#
# Settings (environment): RTSTREAM_URL (http://127.0.0.1:8080), API_KEY (the
# X-API-Key to send; empty sends none), WRK_DURATION (10s),
# WRK_CONNECTIONS (64, as rtbench's -concurrency), WRK_THREADS (2).
#
# The server's per-client rate limit (RATE_LIMIT_RPS, 100/s by default)
# answers most of a load test with 429: start the server with a high limit
# (RATE_LIMIT_RPS=1000000 RATE_LIMIT_BURST=1000000) to measure the send path.
set -euo pipefail

url=${RTSTREAM_URL:-http://127.0.0.1:8080}
key=${API_KEY:-}
duration=${WRK_DURATION:-10s}
connections=${WRK_CONNECTIONS:-64}
threads=${WRK_THREADS:-2}
here=$(cd "$(dirname "$0")" && pwd)

# wrk is installed only when missing, and only where apt-get can run: as
# root, or through sudo without a password prompt.
if ! command -v wrk >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "wrk.sh: wrk is not installed and apt-get needs root (no passwordless sudo): install Debian's wrk package" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "wrk.sh: wrk is not installed and there is no apt-get: install wrk" >&2
    exit 1
  fi
  echo "wrk.sh: installing wrk with apt-get" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
fi

hdr=()
if [ -n "$key" ]; then
  hdr=(-H "X-API-Key: $key")
fi
answer=$(curl -sS --fail-with-body -X POST "$url/v1/streams" "${hdr[@]}" \
  -H 'Content-Type: application/json' -d '{"name":"wrk"}') || {
  echo "wrk.sh: creating a stream failed: $answer" >&2
  exit 1
}
# The id is the answer's first "id" field; no jq needed.
id=$(printf '%s' "$answer" | sed -n 's/^[^{]*{[^}]*"id":"\([^"]*\)".*/\1/p')
if [ -z "$id" ]; then
  echo "wrk.sh: no stream id in: $answer" >&2
  exit 1
fi
echo "wrk.sh: stream $id; wrk -t$threads -c$connections -d$duration POST $url/v1/streams/$id/events" >&2
echo "wrk.sh: $(nproc) CPUs on this machine, shared by wrk, the server and the broker" >&2

STREAM_ID=$id API_KEY=$key exec wrk -t"$threads" -c"$connections" -d"$duration" --latency \
  -s "$here/wrk-send.lua" "$url"
