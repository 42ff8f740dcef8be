#!/usr/bin/env bash
# Builds Argo CD's multi-call binary (application-controller, repo-server, ...) from its Go
# module, once, into ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/argocd/<version>/bin/argocd
# (beside the git-verify-wrapper.sh its repo-server runs), with the Application and
# AppProject CRDs beside it (crds/). It also needs redis and git at run time: redis-server
# comes from Debian's package, installed here when missing. A finished build leaves a
# .complete marker. For tests/e2e_argocd.rs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/argocd/$ARGOCD_VERSION"
marker="$dest/.complete"
if [ -f "$marker" ] && [ -x "$dest/bin/git-verify-wrapper.sh" ]; then
  echo "argocd: cached in $dest"
  exit 0
fi

need=()
for p in redis-server git; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "argocd: missing Debian packages ${need[*]} (install them as root)" >&2
    exit 1
  fi
  echo "==> installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Argo CD's go.mod asks for a newer Go than the machine's: the go command fetches the
# pinned toolchain from the module proxy (only here, not for the other builds).
export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=$ARGOCD_GO_TOOLCHAIN GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "argocd: 'go' is not on PATH" >&2; exit 1; }
mkdir -p "$dest/bin" "$dest/crds"
work=$(mktemp -d "$cache/build-argocd.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck source=go-wrapper.sh
. "$here/go-wrapper.sh"
t=$(date +%s)
echo "==> building Argo CD $ARGOCD_VERSION from github.com/argoproj/argo-cd/v3 with $GOTOOLCHAIN"
module=github.com/argoproj/argo-cd/v3
# its go.mod replaces the nested gitops-engine module with ./gitops-engine: the wrapper
# points that at the published github.com/argoproj/argo-cd/gitops-engine/v3 of the same tag
wrapper "$module" "$ARGOCD_VERSION" "$ARGOCD_VERSION" "$work/argocd"
(cd "$work/argocd" && go get "$module@$ARGOCD_VERSION" "github.com/argoproj/argo-cd/gitops-engine/v3@$ARGOCD_VERSION")
# the UI is not in the module (ui/dist/app holds a placeholder), and no argocd-server runs
(cd "$work/argocd" && go build -trimpath \
  -ldflags "-s -w -X $module/common.version=${ARGOCD_VERSION#v}" \
  -o "$dest/bin/argocd" "$module/cmd")
src=$(cd "$work/argocd" && go list -m -f '{{.Dir}}' "$module")
# the repo-server runs this script of Argo CD's (from PATH) on every revision it renders,
# signatures checked or not; its image installs it beside the binary, and so do we
install -m 0755 "$src/hack/git-verify-wrapper.sh" "$dest/bin/"
cp "$src"/manifests/crds/application-crd.yaml "$src"/manifests/crds/appproject-crd.yaml "$dest/crds/"
chmod u+w "$dest/crds/"*
echo "    done in $(( $(date +%s) - t ))s"
touch "$marker"
echo "argocd: ready in $dest"
