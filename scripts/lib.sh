# Shared by the scripts in this folder; sourced, never run. The sourcing
# script sets SCRIPT_NAME first (the prefix of its log lines).

log() { echo "${SCRIPT_NAME:-scripts}: $*" >&2; }
die() { log "error: $*"; exit 1; }

# as_root sets SUDO to what runs a command as root here: nothing for root,
# sudo -n otherwise. $1 says what needs it, for the error.
as_root() {
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install $1"
    SUDO=(sudo -n)
  fi
}

# apt_install installs Debian packages, as root or through sudo -n.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* yourself"
  as_root "$*"
  log "installing Debian packages: $*"
  "${SUDO[@]}" apt-get update >&2 &&
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends "$@" </dev/null >&2
}

# apt_install_no_start is apt_install for a package whose maintainer scripts
# start a system service nothing here wants: a policy-rc.d that denies every
# start is put in place for the install when the machine has none of its own.
apt_install_no_start() {
  as_root "$*"
  local policy=/usr/sbin/policy-rc.d added_policy=false
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# written by rtstream scripts/%s for one install\nexit 101\n' "${SCRIPT_NAME:-lib.sh}" |
      "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    added_policy=true
  fi
  local rc=0
  (apt_install "$@") || rc=$?
  if [[ $added_policy == true ]]; then
    "${SUDO[@]}" rm -f "$policy"
  fi
  ((rc == 0)) || die "apt-get failed (exit $rc)"
}

# live_pid prints the pid in pid file $1 if it is a live process whose command
# line matches the pattern $2 (the check guards against a pid reused after a
# reboot or a crash).
live_pid() {
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(<"$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$2" || return 1
  echo "$pid"
}

# usage prints the running script's header comment (its usage) and exits 2.
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
