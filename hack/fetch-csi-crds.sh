#!/usr/bin/env bash
# Copies the Secrets Store CSI Driver's CRDs (config/crd/bases/) out of its Go module, once,
# into ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/secrets-store-csi/<version>/crds/. The
# module is found with `go mod download -json`; nothing is built (the driver is a node
# plugin: the tests write its status objects as it does). A finished copy leaves .complete.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/secrets-store-csi/$SECRETS_STORE_CSI_VERSION"
if [ -f "$dest/.complete" ]; then
  echo "secrets-store csi crds: cached in $dest"
  exit 0
fi
command -v go >/dev/null || { echo "secrets-store csi crds: 'go' is not on PATH" >&2; exit 1; }
export GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
module=sigs.k8s.io/secrets-store-csi-driver
dir=$(cd "$work" && go mod download -json "$module@$SECRETS_STORE_CSI_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir/config/crd/bases" ] || { echo "secrets-store csi crds: no config/crd/bases in $module@$SECRETS_STORE_CSI_VERSION" >&2; exit 1; }
mkdir -p "$dest/crds"
cp "$dir"/config/crd/bases/*.yaml "$dest/crds/"
chmod u+w "$dest/crds/"*
touch "$dest/.complete"
echo "secrets-store csi crds: ready in $dest"
