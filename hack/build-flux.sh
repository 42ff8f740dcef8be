#!/usr/bin/env bash
# Builds Flux's kustomize-controller from its Go module, once, into
# ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/flux/<version>/bin/, with the CRDs it works with
# beside it (crds/: its Kustomization, and the source kinds out of source-controller's
# module, which is only downloaded: the tests serve an ExternalArtifact themselves, so no
# source-controller runs). A finished build leaves a .complete marker. For tests/e2e_flux.rs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/flux/$FLUX_KUSTOMIZE_CONTROLLER_VERSION"
marker="$dest/.complete"
if [ -f "$marker" ]; then
  echo "flux: cached in $dest"
  exit 0
fi
export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "flux: 'go' is not on PATH" >&2; exit 1; }
mkdir -p "$dest/bin" "$dest/crds"
work=$(mktemp -d "$cache/build-flux.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck source=go-wrapper.sh
. "$here/go-wrapper.sh"
t=$(date +%s)
echo "==> building kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_VERSION from github.com/fluxcd/kustomize-controller (about 4 minutes on 2 cores)"
module=github.com/fluxcd/kustomize-controller
wrapper "$module" "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" "$work/flux"
(cd "$work/flux" && go get "$module@$FLUX_KUSTOMIZE_CONTROLLER_VERSION")
(cd "$work/flux" && go build -trimpath -ldflags "-s -w" -o "$dest/bin/kustomize-controller" "$module")
src=$(cd "$work/flux" && go list -m -f '{{.Dir}}' "$module")
cp "$src"/config/crd/bases/*.yaml "$dest/crds/"
srcctl=$(cd "$work/flux" && go mod download -json "github.com/fluxcd/source-controller@$FLUX_SOURCE_CONTROLLER_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
cp "$srcctl"/config/crd/bases/*.yaml "$dest/crds/"
chmod u+w "$dest/crds/"*
echo "    done in $(( $(date +%s) - t ))s"
touch "$marker"
echo "flux: ready in $dest"
