#!/usr/bin/env bash
# Kubernetes tooling for deploy/: the Helm chart and the plain manifests.
#
#   scripts/k8s.sh install   install helm and kubeconform (pinned, built with
#                            go install) and make kubeconform's schemas for the
#                            pinned Kubernetes release from its OpenAPI document
#   scripts/k8s.sh check     helm lint --strict and helm template | kubeconform
#                            -strict, for every values file in
#                            deploy/helm/rtstream/ci/; and deploy/k8s/ must be
#                            what the chart renders
#   scripts/k8s.sh render    render deploy/k8s/rtstream.yaml from the chart
#   scripts/k8s.sh env       print HELM=, KUBECONFORM= and K8S_SCHEMAS= (exit 1
#                            when not installed)
#
# kubeconform fetches schemas from a web site by default, which CI does not
# reach: the schemas come from the k8s.io/kubernetes Go module instead
# (api/openapi-spec/swagger.json), converted by ./internal/k8sschema.
#
# Environment:
#   RTSTREAM_CACHE   cache root (default: $HOME/.cache/rtstream)
set -euo pipefail

SCRIPT_NAME=k8s.sh
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_VERSION=v4.3.2
KUBECONFORM_VERSION=v0.7.0
K8S_VERSION=v1.34.2
CACHE="${RTSTREAM_CACHE:-$HOME/.cache/rtstream}"
BIN="$CACHE/k8s/bin"
SCHEMAS="$CACHE/k8s/schemas-$K8S_VERSION"
CHART="$ROOT/deploy/helm/rtstream"
PLAIN="$ROOT/deploy/k8s"

# go_install installs module path $1 at version $2 as $BIN/$3, once per version.
go_install() {
  local stamp="$BIN/.$3-$2"
  if [[ -x "$BIN/$3" && -f "$stamp" ]]; then
    return 0
  fi
  log "building $3 $2 (go install $1@$2)"
  mkdir -p "$BIN"
  (cd "$(mktemp -d)" && GOBIN="$BIN" GOFLAGS=-mod=mod go install "$1@$2") || die "go install $1@$2 failed"
  rm -f "$BIN"/."$3"-* && touch "$stamp"
}

cmd_install() {
  go_install helm.sh/helm/v4/cmd/helm "$HELM_VERSION" helm
  go_install github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" kubeconform
  if [[ ! -f "$SCHEMAS/.done" ]]; then
    local dir
    dir="$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -f "$dir/api/openapi-spec/swagger.json" ]] || die "no api/openapi-spec/swagger.json in k8s.io/kubernetes@$K8S_VERSION ($dir)"
    (cd "$ROOT" && go run ./internal/k8sschema -swagger "$dir/api/openapi-spec/swagger.json" -out "$SCHEMAS") >&2
    touch "$SCHEMAS/.done"
  fi
  log "installed: helm $HELM_VERSION, kubeconform $KUBECONFORM_VERSION, schemas of Kubernetes $K8S_VERSION"
}

installed() { [[ -x "$BIN/helm" && -x "$BIN/kubeconform" && -f "$SCHEMAS/.done" ]]; }

cmd_env() {
  installed || { log "not installed: run scripts/k8s.sh install"; exit 1; }
  echo "HELM=$BIN/helm"
  echo "KUBECONFORM=$BIN/kubeconform"
  echo "K8S_SCHEMAS=$SCHEMAS"
}

# validate reads manifests on stdin and checks them strictly. ServiceMonitor
# is the Prometheus Operator's kind, not Kubernetes': stack/'s Go test checks it.
validate() {
  "$BIN/kubeconform" -strict -summary -skip ServiceMonitor \
    -schema-location "$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" -
}

render_plain() {
  printf '# Rendered from deploy/helm/rtstream with deploy/k8s/values.yaml by\n# scripts/k8s.sh render: do not edit by hand.\n'
  "$BIN/helm" template rtstream "$CHART" -f "$PLAIN/values.yaml"
}

cmd_render() {
  installed || die "not installed: run scripts/k8s.sh install"
  render_plain >"$PLAIN/rtstream.yaml"
  log "wrote deploy/k8s/rtstream.yaml"
}

cmd_check() {
  installed || die "not installed: run scripts/k8s.sh install"
  local f
  for f in "$CHART"/ci/*.yaml "$PLAIN/values.yaml"; do
    log "values ${f#"$ROOT"/}"
    "$BIN/helm" lint --strict "$CHART" -f "$f" >&2
    "$BIN/helm" template rtstream "$CHART" -f "$f" | validate >&2
  done
  diff -u "$PLAIN/rtstream.yaml" <(render_plain) >&2 ||
    die "deploy/k8s/rtstream.yaml is not what the chart renders: run scripts/k8s.sh render"
  log "ok"
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  render) cmd_render ;;
  env) cmd_env ;;
  *) usage ;;
esac
