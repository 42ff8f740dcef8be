#!/usr/bin/env bash
# Builds the tools the chart and alert tests check with, each from its Go module, once,
# into ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/tools/<name>-<version>/bin/:
#   helm      helm.sh/helm/v3 cmd/helm          (helm lint/template/install)
#   promtool  github.com/prometheus/prometheus cmd/promtool (check rules, test rules)
# A finished build leaves a .complete marker; `hack/build-tools.sh path NAME` prints the
# binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}

# name module version package
tool_row() {
  case $1 in
    helm) echo "helm.sh/helm/v3 $HELM_VERSION cmd/helm" ;;
    promtool) echo "github.com/prometheus/prometheus $PROMETHEUS_VERSION cmd/promtool" ;;
    *) echo "unknown tool $1" >&2; exit 2 ;;
  esac
}

dest_of() {
  local row
  row=$(tool_row "$1")
  echo "$cache/tools/$1-$(echo "$row" | cut -d' ' -f2)"
}

build() {
  local name=$1 module version pkg dest
  read -r module version pkg <<<"$(tool_row "$name")"
  dest=$(dest_of "$name")
  if [ -f "$dest/.complete" ]; then
    echo "$name: cached in $dest"
    return
  fi
  command -v go >/dev/null || { echo "$name: 'go' is not on PATH" >&2; exit 1; }
  mkdir -p "$dest/bin"
  local t
  t=$(date +%s)
  echo "==> building $name $version from $module ($pkg)"
  # go install MOD@VERSION builds with the module's own go.sum, no wrapper needed when it
  # has no replace lines (neither does today)
  CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOBIN="$dest/bin" \
    go install -trimpath -ldflags "-s -w" "$module/$pkg@$version"
  echo "    done in $(( $(date +%s) - t ))s"
  touch "$dest/.complete"
}

case ${1:-all} in
  path) echo "$(dest_of "$2")/bin/$2" ;;
  all) build helm; build promtool ;;
  *) build "$1" ;;
esac
