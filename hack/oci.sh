# Sourced by the image builds: OCI archives made with umoci (Debian's package; the
# opencontainers project's image tool), daemonless and without a registry.
#   oci_new LAYOUT                       an empty image "img" in a new OCI layout
#   oci_layer LAYOUT FOLDER TARGET       one layer: FOLDER's contents at TARGET (a copy)
#   oci_config LAYOUT UMOCI-CONFIG-ARGS  the image config (user, entrypoint, labels, ...)
#   oci_pack LAYOUT REF OUT              OUT: a tar of the layout, the image named REF
#                                        (what `ctr images import`, `podman load` and
#                                        `skopeo copy oci-archive:` read)

oci_new() {
  rm -rf "$1"
  umoci init --layout "$1"
  umoci new --image "$1:img"
}

# unpack, copy, repack: umoci's own `insert` (0.4.7, Debian 12's) writes layers whose gzip
# stream ends early (the last partial block and the tar trailer are lost: a 19,818,640-byte
# binary came back as 19,818,496 bytes), while `repack` writes them whole
oci_layer() {
  local layout=$1 src=$2 target=$3 bundle
  bundle=$(mktemp -d "${TMPDIR:-/tmp}/oci-bundle.XXXXXX")
  rmdir "$bundle"
  umoci unpack --image "$layout:img" "$bundle" >/dev/null
  mkdir -p "$bundle/rootfs/$target"
  cp -a "$src/." "$bundle/rootfs/$target/"
  umoci repack --image "$layout:img" "$bundle"
  rm -rf "$bundle"
}

oci_config() {
  local layout=$1
  shift
  umoci config --image "$layout:img" --os linux --architecture amd64 "$@"
}

oci_pack() {
  umoci gc --layout "$1"
  local layout=$1 ref=$2 out=$3
  # containerd names an imported image by io.containerd.image.name; the OCI ref name is
  # the tag, as `skopeo copy ... oci-archive:` writes it
  python3 - "$layout" "$ref" <<'PY'
import json, sys
layout, ref = sys.argv[1], sys.argv[2]
path = f"{layout}/index.json"
with open(path) as f:
    index = json.load(f)
for m in index["manifests"]:
    ann = m.setdefault("annotations", {})
    ann["io.containerd.image.name"] = ref
    ann["org.opencontainers.image.ref.name"] = ref.rsplit(":", 1)[1]
with open(path, "w") as f:
    json.dump(index, f)
PY
  mkdir -p "$(dirname "$out")"
  tar -C "$layout" -cf "$out.tmp" . && mv "$out.tmp" "$out"
}
