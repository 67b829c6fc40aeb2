#!/usr/bin/env bash
# A real browser for the console's end-to-end test (e2e/console_test.go).
#
#   scripts/browser.sh install   install what is missing, and only that: Debian's chromium
#                                (/usr/bin/chromium), node and npm, and playwright-core into
#                                e2e/browser/node_modules from the committed lock file
#   scripts/browser.sh check     say what is installed; exit 1 if anything is missing
#
# Playwright is only the driver here (playwright-core: no browser download of its
# own); the browser is Debian's. Under CI the console test fails when either is
# missing, elsewhere it skips, so CI runs `scripts/browser.sh install` first.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BROWSER_DIR="$SCRIPT_DIR/../e2e/browser"
CHROMIUM=/usr/bin/chromium

SCRIPT_NAME=browser.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# wanted_version is the playwright-core version package.json pins.
wanted_version() {
  node -e 'process.stdout.write(require(process.argv[1]).dependencies["playwright-core"])' "$BROWSER_DIR/package.json"
}

# installed_version is the playwright-core in node_modules, or nothing.
installed_version() {
  local pkg="$BROWSER_DIR/node_modules/playwright-core/package.json"
  [[ -f $pkg ]] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg"
}

cmd_install() {
  local missing=()
  [[ -x $CHROMIUM ]] || missing+=(chromium)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  [[ -x $CHROMIUM ]] || die "the chromium package did not provide $CHROMIUM"
  # playwright-core 1.65 needs node 20 or newer (Debian 12's own nodejs is 18).
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  ((major >= 20)) || die "node $(node --version) is too old for playwright-core: install node 20 or newer"

  local want have
  want="$(wanted_version)"
  have="$(installed_version)"
  if [[ $have == "$want" ]]; then
    log "playwright-core $have already in e2e/browser/node_modules"
  else
    log "installing playwright-core $want into e2e/browser/node_modules (had: ${have:-none})"
    # npm ci installs exactly the lock file. e2e/browser/.npmrc keeps npm from
    # writing download addresses into the lock file, should anyone regenerate
    # it; npm then fetches from whatever registry it is configured with.
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --ignore-scripts </dev/null)
    have="$(installed_version)"
    [[ $have == "$want" ]] || die "npm ci left playwright-core ${have:-missing}, want $want"
  fi
  cmd_check
}

cmd_check() {
  local rc=0
  if [[ -x $CHROMIUM ]]; then
    log "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM (version unknown)")"
  else
    log "chromium: missing ($CHROMIUM)"; rc=1
  fi
  if command -v node >/dev/null 2>&1; then
    log "node: $(node --version)"
    local have
    have="$(installed_version)"
    if [[ -n $have ]]; then
      log "playwright-core: $have"
    else
      log "playwright-core: missing (e2e/browser/node_modules)"; rc=1
    fi
  else
    log "node: missing"; rc=1
  fi
  return "$rc"
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
