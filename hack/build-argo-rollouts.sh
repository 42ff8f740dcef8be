#!/usr/bin/env bash
# Builds the Argo Rollouts controller (cmd/rollouts-controller) from its Go module, once,
# into ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/argo-rollouts/<version>/ with the module's
# CRDs beside it (crds/). A finished build leaves a .complete marker.
# v1.10.1: v1.10.2 needs a newer Go than this machine's 1.26.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/argo-rollouts/$ARGO_ROLLOUTS_VERSION"
marker="$dest/.complete"
if [ -f "$marker" ]; then
  echo "argo rollouts: cached in $dest"
  exit 0
fi
export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "argo rollouts: 'go' is not on PATH" >&2; exit 1; }
mkdir -p "$dest/bin" "$dest/crds"
work=$(mktemp -d "$cache/build-argo.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck source=go-wrapper.sh
. "$here/go-wrapper.sh"
t=$(date +%s)
echo "==> building rollouts-controller $ARGO_ROLLOUTS_VERSION from github.com/argoproj/argo-rollouts (about 4 minutes on 2 cores)"
module=github.com/argoproj/argo-rollouts
wrapper "$module" "$ARGO_ROLLOUTS_VERSION" "$ARGO_ROLLOUTS_VERSION" "$work/argo"
(cd "$work/argo" && go get "$module/cmd/rollouts-controller@$ARGO_ROLLOUTS_VERSION")
(cd "$work/argo" && go build -trimpath -ldflags "-s -w" -o "$dest/bin/rollouts-controller" "$module/cmd/rollouts-controller")
src=$(cd "$work/argo" && go list -m -f '{{.Dir}}' "$module")
cp "$src"/manifests/crds/*-crd.yaml "$dest/crds/"
chmod u+w "$dest/crds/"*
echo "    done in $(( $(date +%s) - t ))s"
touch "$marker"
echo "argo rollouts: ready in $dest"
