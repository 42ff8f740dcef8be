#!/usr/bin/env bash
# Copies Stakater Reloader's Helm chart (deployments/kubernetes/chart/reloader) out of its Go
# module, once, into ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/reloader-chart/<version>/, for
# tests/e2e_reloader.rs: `hashroll migrate --chart-values` is checked against the Deployment
# Reloader's own chart renders. Nothing is built. Prints the chart's folder last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/reloader-chart/$RELOADER_VERSION"
if [ -f "$dest/.complete" ]; then
  echo "$dest/reloader"
  exit 0
fi
command -v go >/dev/null || { echo "reloader chart: 'go' is not on PATH" >&2; exit 1; }
export GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
module=github.com/stakater/Reloader
dir=$(cd "$work" && go mod download -json "$module@$RELOADER_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
chart="$dir/deployments/kubernetes/chart/reloader"
[ -f "$chart/Chart.yaml" ] || { echo "reloader chart: no chart in $module@$RELOADER_VERSION" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest"
cp -r "$chart" "$dest/reloader"
chmod -R u+w "$dest"
touch "$dest/.complete"
echo "reloader chart: ready in $dest" >&2
echo "$dest/reloader"
