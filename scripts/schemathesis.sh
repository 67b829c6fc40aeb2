#!/usr/bin/env bash
# Schemathesis, the property-based API fuzzer that e2e/schemathesis_test.go runs
# against the real server with the OpenAPI document it serves.
#
#   scripts/schemathesis.sh install   install schemathesis (pinned) into the project-local
#                                     virtualenv .venv-schemathesis/ with the machine's python3;
#                                     does nothing when the pinned version is already there
#   scripts/schemathesis.sh check     say what is installed; exit 1 if it is missing
#   scripts/schemathesis.sh path      print the path of the schemathesis executable
#
# The venv is made with `python3 -m venv`; on Debian, where the venv module is a
# separate package, python3-venv is installed with apt-get (as root, or sudo -n).
# Under CI the e2e test fails when the venv is missing, elsewhere it skips, so CI
# runs `scripts/schemathesis.sh install` first.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_DIR="$(cd "$SCRIPT_DIR/.." && pwd)/.venv-schemathesis"
VERSION=4.32.5

SCRIPT_NAME=schemathesis.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

installed_version() {
  [[ -x $VENV_DIR/bin/python ]] || return 0
  "$VENV_DIR/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true
}

cmd_install() {
  if [[ $(installed_version) == "$VERSION" && -x $VENV_DIR/bin/schemathesis ]]; then
    log "already installed: schemathesis $VERSION in $VENV_DIR"
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || apt_install python3
  # ensurepip is what Debian splits out into python3-venv: without it
  # `python3 -m venv` fails half-way.
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ||
      die "python3 $(python3 --version 2>&1) still has no venv/ensurepip after installing python3-venv"
  fi
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "python3 $(python3 --version 2>&1) is too old for schemathesis (3.9 or newer)"
  if [[ ! -x $VENV_DIR/bin/python ]]; then
    rm -rf "$VENV_DIR"
    log "creating $VENV_DIR with $(python3 --version 2>&1)"
    python3 -m venv "$VENV_DIR"
  fi
  log "installing schemathesis==$VERSION"
  "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION" </dev/null
  [[ $(installed_version) == "$VERSION" ]] || die "schemathesis $VERSION is not in $VENV_DIR after the install"
  log "installed: $("$VENV_DIR/bin/schemathesis" --version 2>&1 | head -n 1)"
}

cmd_check() {
  local have
  have="$(installed_version)"
  if [[ -z $have ]]; then
    log "schemathesis is not installed in $VENV_DIR (scripts/schemathesis.sh install)"
    exit 1
  fi
  log "schemathesis $have in $VENV_DIR (pinned: $VERSION)"
  [[ $have == "$VERSION" ]] || exit 1
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  path) echo "$VENV_DIR/bin/schemathesis" ;;
  *) usage ;;
esac
