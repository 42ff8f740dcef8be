#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from Go modules, once, into a cache folder outside the clone:
#   ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/control-plane/<kubernetes version>/
# A finished build leaves a .complete marker; a second run returns at once.
# With KUBEBUILDER_ASSETS set, kube-apiserver, etcd and kubectl are taken from there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/control-plane/$KUBERNETES_VERSION"
bin="$dest/bin"
marker="$dest/.complete-$KUBERNETES_VERSION-$ETCD_VERSION-$KWOK_VERSION"
if [ -f "$marker" ]; then
  echo "control plane: cached in $dest"
  exit 0
fi

export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "control plane: 'go' is not on PATH; install Go 1.25+" >&2; exit 1; }
mkdir -p "$bin" "$dest/stages"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '==> %s\n' "$*"; }
elapsed() { printf '    done in %ss\n' "$(( $(date +%s) - $1 ))"; }

# shellcheck source=go-wrapper.sh
. "$here/go-wrapper.sh"

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  step "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS: taking kube-apiserver, etcd, kubectl from there"
  for b in kube-apiserver etcd kubectl; do
    [ -x "$KUBEBUILDER_ASSETS/$b" ] || { echo "missing $KUBEBUILDER_ASSETS/$b" >&2; exit 1; }
    ln -sf "$KUBEBUILDER_ASSETS/$b" "$bin/$b"
  done
fi

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then k8s_bins=(kube-controller-manager kube-scheduler); fi
need_k8s=0
for b in "${k8s_bins[@]}"; do [ -x "$bin/$b" ] || need_k8s=1; done
if [ $need_k8s = 1 ]; then
  t=$(date +%s)
  step "building ${k8s_bins[*]} $KUBERNETES_VERSION from k8s.io/kubernetes (about 5-10 minutes on 2 cores, module download included)"
  sub="v0.${KUBERNETES_VERSION#v1.}"
  wrapper k8s.io/kubernetes "$KUBERNETES_VERSION" "$sub" "$work/k8s"
  pkgs=()
  for b in "${k8s_bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$work/k8s" && go get "${pkgs[@]/%/@$KUBERNETES_VERSION}")
  ldflags=$(k8s_ldflags "$KUBERNETES_VERSION")
  (cd "$work/k8s" && go build -trimpath -ldflags "$ldflags" -o "$bin/" "${pkgs[@]}")
  elapsed "$t"
fi

if [ ! -x "$bin/etcd" ]; then
  t=$(date +%s)
  step "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3 (about 30-60 s)"
  wrapper go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" "$work/etcd"
  (cd "$work/etcd" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  (cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
  elapsed "$t"
fi

if [ ! -x "$bin/kwok" ] || [ ! -f "$dest/stages/pod-ready.yaml" ]; then
  t=$(date +%s)
  step "building kwok $KWOK_VERSION (about 80 s)"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  src=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage
  cp "$src/node/fast/node-initialize.yaml" "$src/pod/fast/pod-ready.yaml" \
     "$src/pod/fast/pod-complete.yaml" "$src/pod/fast/pod-delete.yaml" "$dest/stages/"
  chmod u+w "$dest/stages/"*
  elapsed "$t"
fi

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [ -x "$bin/$b" ] || { echo "control plane: $bin/$b missing after build" >&2; exit 1; }
done
touch "$marker"
echo "control plane: ready in $dest"
