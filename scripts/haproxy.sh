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
  as_root "the haproxy package"
  # The package's maintainer scripts start a system haproxy. Nothing here
  # wants one, so a policy-rc.d that denies every start is put in place for
  # the install when the machine has none of its own.
  local policy=/usr/sbin/policy-rc.d added_policy=false
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# written by rtstream scripts/haproxy.sh for one install\nexit 101\n' |
      "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    added_policy=true
  fi
  local rc=0
  (apt_install haproxy) || rc=$?
  if [[ $added_policy == true ]]; then
    "${SUDO[@]}" rm -f "$policy"
  fi
  ((rc == 0)) || die "apt-get failed (exit $rc)"
  command -v haproxy >/dev/null 2>&1 || die "the haproxy package did not provide haproxy"
  log "installed: $(haproxy -v 2>&1 | head -n 1)"
}

case "${1:-}" in
  install) cmd_install ;;
  *) usage ;;
esac
