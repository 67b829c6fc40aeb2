#!/usr/bin/env bash
# Redocly CLI, the OpenAPI linter that openapi/redocly_test.go runs on
# openapi/openapi.yaml with the recommended ruleset (redocly.yaml, and the
# suppressions with their reasons in .redocly.lint-ignore.yaml).
#
#   scripts/redocly.sh install        install @redocly/cli (pinned, with its integrity hash) into
#                                     .tools/redocly/node_modules, and node and npm when missing;
#                                     does nothing when the pinned version is already there
#   scripts/redocly.sh check          say what is installed; exit 1 if it is missing
#   scripts/redocly.sh lint [OPTION]  lint openapi/openapi.yaml with the repo's redocly.yaml;
#                                     options go to `redocly lint` (e.g. --format=json)
#   scripts/redocly.sh path           print the path of the redocly executable
#
# @redocly/cli ships as one package with no dependencies, so its version and
# integrity hash below pin everything; the script writes package.json and the
# lock file into .tools/redocly (out of git) and `npm ci` checks the download
# against the hash. npm fetches from whatever registry it is configured with.
# Under CI the lint test fails when redocly is missing, elsewhere it skips, so
# CI runs `scripts/redocly.sh install` first.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
TOOL_DIR="$ROOT/.tools/redocly"
PKG_DIR="$TOOL_DIR/node_modules/@redocly/cli"
VERSION=2.77.0
INTEGRITY=sha512-XUa4hURDWLPG9WukIXo+UBqa9VpeTndmLI5PHu9QDkwtwH990Jsgz9nl2m1pZjsWrKFPP7avn6etRxxDbuD2Bg==

SCRIPT_NAME=redocly.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The lint sends nothing anywhere and prints no update notices.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_NOTIFICATIONS=true

installed_version() {
  [[ -f $PKG_DIR/package.json ]] || return 0
  command -v node >/dev/null 2>&1 || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$PKG_DIR/package.json"
}

# node_fits says whether node is one that @redocly/cli $VERSION supports
# (its engines: >=22.12.0 || >=20.19.0 <21.0.0).
node_fits() {
  node -e '
    const [maj, min] = process.versions.node.split(".").map(Number);
    process.exit((maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj > 22 ? 0 : 1);'
}

cmd_install() {
  if [[ $(installed_version) == "$VERSION" && -f $PKG_DIR/bin/cli.js ]]; then
    log "already installed: @redocly/cli $VERSION in .tools/redocly"
    return 0
  fi
  local missing=()
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  node_fits || die "node $(node --version) is too old for @redocly/cli $VERSION: install node 20.19+ or 22.12+"

  log "installing @redocly/cli $VERSION into .tools/redocly (had: $(installed_version || true))"
  mkdir -p "$TOOL_DIR"
  # No download address in the lock file: npm takes the package from its
  # configured registry and checks it against the integrity hash.
  printf 'omit-lockfile-registry-resolved=true\nfund=false\naudit=false\n' >"$TOOL_DIR/.npmrc"
  cat >"$TOOL_DIR/package.json" <<EOF
{
  "name": "rtstream-redocly",
  "private": true,
  "description": "Written by scripts/redocly.sh install; not in git",
  "dependencies": { "@redocly/cli": "$VERSION" }
}
EOF
  cat >"$TOOL_DIR/package-lock.json" <<EOF
{
  "name": "rtstream-redocly",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "rtstream-redocly",
      "dependencies": { "@redocly/cli": "$VERSION" }
    },
    "node_modules/@redocly/cli": {
      "version": "$VERSION",
      "integrity": "$INTEGRITY",
      "license": "MIT",
      "bin": { "openapi": "bin/cli.js", "redocly": "bin/cli.js" },
      "engines": { "node": ">=22.12.0 || >=20.19.0 <21.0.0", "npm": ">=10" }
    }
  }
}
EOF
  (cd "$TOOL_DIR" && npm ci --no-audit --no-fund --ignore-scripts </dev/null >&2)
  [[ $(installed_version) == "$VERSION" ]] || die "npm ci left @redocly/cli $(installed_version) in .tools/redocly, want $VERSION"
  log "installed: @redocly/cli $("$TOOL_DIR/node_modules/.bin/redocly" --version 2>/dev/null)"
}

cmd_check() {
  local have
  have="$(installed_version)"
  if [[ -z $have ]]; then
    log "@redocly/cli is not installed in .tools/redocly (scripts/redocly.sh install)"
    exit 1
  fi
  log "@redocly/cli $have in .tools/redocly (pinned: $VERSION), node $(node --version)"
  [[ $have == "$VERSION" ]] || exit 1
}

cmd_lint() {
  local have
  have="$(installed_version)"
  [[ $have == "$VERSION" ]] ||
    die "@redocly/cli $VERSION is not installed (have: ${have:-none}): run scripts/redocly.sh install"
  cd "$ROOT"
  # --lint-config error: a mistake in redocly.yaml fails the lint too.
  exec node "$PKG_DIR/bin/cli.js" lint --config redocly.yaml --lint-config error "$@" openapi/openapi.yaml
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  lint) shift; cmd_lint "$@" ;;
  path) echo "$TOOL_DIR/node_modules/.bin/redocly" ;;
  *) usage ;;
esac
