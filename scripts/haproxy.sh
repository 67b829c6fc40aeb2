#!/usr/bin/env bash
# HAProxy, the load balancer of the e2e test that runs three instances behind
# one (e2e/haproxy_test.go).
#
#   scripts/haproxy.sh install   install Debian's haproxy package if missing;
#                                never starts its service (the test runs its
#                                own haproxy process with its own config)
set -euo pipefail

SCRIPT_NAME=haproxy.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd_install() {
  if command -v haproxy >/dev/null 2>&1; then
    log "already installed: $(haproxy -v 2>&1 | head -n 1)"
    return 0
  fi
  # The package's maintainer scripts start a system haproxy.
  apt_install_no_start haproxy
  command -v haproxy >/dev/null 2>&1 || die "the haproxy package did not provide haproxy"
  log "installed: $(haproxy -v 2>&1 | head -n 1)"
}

case "${1:-}" in
  install) cmd_install ;;
  *) usage ;;
esac
