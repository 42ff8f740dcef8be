#!/usr/bin/env bash
# Builds what a real node needs, once, into a cache folder outside the clone:
#   ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/node/<kubernetes>-<containerd>/
#     bin/kubelet                    k8s.io/kubernetes cmd/kubelet (as the plane is built)
#     bin/containerd, ctr,           github.com/containerd/containerd/v2
#         containerd-shim-runc-v2
#     images/pause.oci.tar           k8s's build/pause/linux/pause.c, gcc -static
#     images/busybox.oci.tar         Debian's busybox-static, one layer
# and installs, when missing, the Debian packages it runs with: runc, the CNI plugins,
# iptables, busybox-static, umoci (the OCI image tool the images are made with) and gcc.
# A finished build leaves a .complete marker; a second run returns at once.
# `hack/build-node.sh path` prints the folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/node/$KUBERNETES_VERSION-$CONTAINERD_VERSION"
if [ "${1:-}" = path ]; then echo "$dest"; exit 0; fi
marker="$dest/.complete"
if [ -f "$marker" ]; then
  echo "node: cached in $dest"
  exit 0
fi
step() { printf '==> %s\n' "$*"; }
elapsed() { printf '    done in %ss\n' "$(( $(date +%s) - $1 ))"; }

# Debian packages, installed only when missing (root only: elsewhere say what is missing)
need=()
for p in runc containernetworking-plugins iptables busybox-static umoci gcc; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "node: missing Debian packages ${need[*]} (install them as root)" >&2
    exit 1
  fi
  step "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "node: 'go' is not on PATH; install Go 1.25+" >&2; exit 1; }
mkdir -p "$dest/bin" "$dest/images"
work=$(mktemp -d "$cache/node-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck source=go-wrapper.sh
. "$here/go-wrapper.sh"

if [ ! -x "$dest/bin/kubelet" ]; then
  t=$(date +%s)
  step "building kubelet $KUBERNETES_VERSION from k8s.io/kubernetes (about 3 minutes)"
  sub="v0.${KUBERNETES_VERSION#v1.}"
  wrapper k8s.io/kubernetes "$KUBERNETES_VERSION" "$sub" "$work/k8s"
  (cd "$work/k8s" && go get "k8s.io/kubernetes/cmd/kubelet@$KUBERNETES_VERSION")
  ldflags=$(k8s_ldflags "$KUBERNETES_VERSION")
  (cd "$work/k8s" && go build -trimpath -ldflags "$ldflags" -o "$dest/bin/" k8s.io/kubernetes/cmd/kubelet)
  elapsed "$t"
fi

if [ ! -x "$dest/bin/containerd-shim-runc-v2" ]; then
  t=$(date +%s)
  step "building containerd $CONTAINERD_VERSION from its Go module (about 5 minutes)"
  mod=github.com/containerd/containerd/v2
  mkdir -p "$work/ctrd"
  (cd "$work/ctrd" && go mod init hashroll.local/ctrd >/dev/null 2>&1 &&
    go get "$mod/cmd/containerd@$CONTAINERD_VERSION" "$mod/cmd/ctr@$CONTAINERD_VERSION" \
      "$mod/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION")
  ldflags="-s -w -X $mod/version.Version=$CONTAINERD_VERSION"
  (cd "$work/ctrd" && go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ldflags" \
    -o "$dest/bin/" "$mod/cmd/containerd" "$mod/cmd/ctr" "$mod/cmd/containerd-shim-runc-v2")
  elapsed "$t"
fi

# shellcheck source=oci.sh
. "$here/oci.sh"

if [ ! -f "$dest/images/pause.oci.tar" ]; then
  step "pause image from k8s.io/kubernetes@$KUBERNETES_VERSION build/pause/linux/pause.c"
  src=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$work/pause"
  gcc -Os -static -o "$work/pause/pause" "$src/build/pause/linux/pause.c"
  oci_new "$work/pause.oci"
  oci_layer "$work/pause.oci" "$work/pause" /
  oci_config "$work/pause.oci" --config.entrypoint /pause --config.user 65535:65535
  oci_pack "$work/pause.oci" registry.k8s.io/pause:hashroll "$dest/images/pause.oci.tar"
fi

if [ ! -f "$dest/images/busybox.oci.tar" ]; then
  step "busybox image from Debian's busybox-static"
  mkdir -p "$work/busybox/bin" "$work/busybox/tmp" "$work/busybox/etc"
  cp /bin/busybox "$work/busybox/bin/busybox"
  for a in sh cat env sleep echo ls grep test true false wc head; do
    ln -s busybox "$work/busybox/bin/$a"
  done
  chmod 1777 "$work/busybox/tmp"
  echo "root:x:0:0:root:/:/bin/sh" > "$work/busybox/etc/passwd"
  oci_new "$work/busybox.oci"
  oci_layer "$work/busybox.oci" "$work/busybox" /
  oci_config "$work/busybox.oci" --config.cmd /bin/sh --config.env PATH=/bin
  oci_pack "$work/busybox.oci" docker.io/library/busybox:hashroll "$dest/images/busybox.oci.tar"
fi

for b in kubelet containerd ctr containerd-shim-runc-v2; do
  [ -x "$dest/bin/$b" ] || { echo "node: $dest/bin/$b missing after build" >&2; exit 1; }
done
touch "$marker"
echo "node: ready in $dest"
