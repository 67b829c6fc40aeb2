#!/usr/bin/env bash
# kcat, the command-line Kafka client the records test reads rtstream's topics
# with (e2e/records_test.go): a consumer that is not rtstream, reading the
# records as docs/records.md documents them.
#
#   scripts/kcat.sh install   install Debian's kcat package if missing
#   scripts/kcat.sh path      print kcat's path (exit 1 when not installed)
set -euo pipefail

SCRIPT_NAME=kcat.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# version prints the line of kcat -V that names its version and librdkafka's.
version() { kcat -V 2>&1 | grep -m 1 "^Version" || true; }

cmd_install() {
  if command -v kcat >/dev/null 2>&1; then
    log "already installed: $(version)"
    return 0
  fi
  apt_install kcat
  command -v kcat >/dev/null 2>&1 || die "the kcat package did not provide kcat"
  log "installed: $(version)"
}

cmd_path() {
  command -v kcat || die "kcat is not installed: run scripts/kcat.sh install"
}

case "${1:-}" in
  install) cmd_install ;;
  path) cmd_path ;;
  *) usage ;;
esac
