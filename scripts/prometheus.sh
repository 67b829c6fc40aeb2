#!/usr/bin/env bash
# Prometheus tooling for the observability files in observability/prometheus.
#
#   scripts/prometheus.sh install   install Debian's prometheus package (prometheus and
#                                   promtool) if either is missing; never starts its service
#   scripts/prometheus.sh check     promtool check config, check rules and test rules
#
# The Go tests in stack/ need both binaries too: they run the same promtool checks
# and scrape a real server with prometheus. Under CI they fail when the binaries
# are missing, elsewhere they skip, so CI runs `scripts/prometheus.sh install` first.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROM_DIR="$SCRIPT_DIR/../observability/prometheus"

SCRIPT_NAME=prometheus.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

have_all() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1
}

cmd_install() {
  if have_all; then
    log "already installed: $(prometheus --version 2>&1 | head -n 1)"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install Prometheus (with promtool) yourself"
  # The package's maintainer scripts start a system Prometheus on :9090.
  apt_install_no_start prometheus
  have_all || die "the prometheus package did not provide prometheus and promtool"
  log "installed: $(prometheus --version 2>&1 | head -n 1)"
}

cmd_check() {
  command -v promtool >/dev/null 2>&1 || die "promtool not found (scripts/prometheus.sh install)"
  cd "$PROM_DIR"
  promtool check config prometheus.yml
  promtool check rules rules.yml
  promtool test rules rules_test.yml
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  *) usage ;;
esac
