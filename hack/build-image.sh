#!/usr/bin/env bash
# make image: hashroll's runtime image as an OCI archive, from local parts (no daemon, no
# registry): the release binary, the base that hack/image-rootfs.sh makes from Debian's
# packages, and the config of the Dockerfile's final stage (USER, EXPOSE, LABEL,
# ENTRYPOINT, CMD and the binary's COPY target, read from the Dockerfile itself, so the two
# builds cannot drift). Prints the archive's path on its last line:
#   ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/image/hashroll-<version>.oci.tar
# named <chart's image.repository>:<version>; load it with `ctr -n k8s.io images import`,
# `podman load -i`, `kind load image-archive` or push it with `skopeo copy oci-archive:...`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
target=${CARGO_TARGET_DIR:-$root/target}
bin="$target/release/hashroll"
[ -x "$bin" ] || { echo "image: $bin missing: run 'make release' first" >&2; exit 1; }
command -v umoci >/dev/null || {
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends umoci >/dev/null
  else
    echo "image: umoci missing (Debian package umoci)" >&2; exit 1
  fi
}
# shellcheck source=oci.sh
. "$here/oci.sh"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
repository=${IMAGE_REPOSITORY:-$(sed -n '/^image:/,/^[^ ]/s/^  repository: *\(.*\)$/\1/p' "$root/charts/hashroll/values.yaml")}
ref="$repository:$version"
out="$cache/image/hashroll-$version.oci.tar"
t0=$(date +%s)

# the base, cached by the script's content (apt-get download of four packages otherwise)
base_id=$(sha256sum "$here/image-rootfs.sh" | cut -c1-16)
base="$cache/image/rootfs-$base_id"
if [ ! -f "$base.complete" ]; then
  rm -rf "$base"
  "$here/image-rootfs.sh" "$base"
  touch "$base.complete"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hashroll-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
# the final stage's instructions, as umoci arguments (line 1: the binary's COPY target)
python3 - "$root/Dockerfile" "$version" "$revision" > "$work/config" <<'PY'
import json, re, shlex, sys
path, version, revision = sys.argv[1:4]
text = open(path).read().replace("\\\n", " ")
stages = re.split(r"(?im)^FROM\s", text)
final = stages[-1].splitlines()
args = {"VERSION": version, "REVISION": revision}
copy_to, out = None, []
def subst(s):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s)
def words(rest):
    rest = rest.strip()
    return json.loads(rest) if rest.startswith("[") else shlex.split(rest)
for line in final[1:]:
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    op, _, rest = line.partition(" ")
    op = op.upper()
    if op == "ARG":
        continue  # defaults given above: the version of Cargo.toml, the git revision
    elif op == "COPY" and "--from=build" in rest:
        copy_to = words(rest)[-1]
    elif op == "COPY":
        pass  # the base: hack/image-rootfs.sh's folder, as in the Dockerfile's rootfs stage
    elif op == "USER":
        out.append(f"--config.user={rest.strip()}")
    elif op == "EXPOSE":
        out += [f"--config.exposedports={p if '/' in p else p + '/tcp'}" for p in rest.split()]
    elif op == "LABEL":
        out += [f"--config.label={subst(w)}" for w in shlex.split(rest)]
    elif op == "ENTRYPOINT":
        out += [f"--config.entrypoint={w}" for w in words(rest)]
    elif op == "CMD":
        out += [f"--config.cmd={w}" for w in words(rest)]
    else:
        sys.exit(f"build-image: the final stage's {op} is not read here; teach hack/build-image.sh")
if not copy_to:
    sys.exit("build-image: no COPY --from=build in the Dockerfile's final stage")
print(copy_to)
print("\n".join(out))
PY
copy_to=$(head -1 "$work/config")
mapfile -t config < <(tail -n +2 "$work/config")

mkdir -p "$work/bin/$(dirname "$copy_to")"
cp "$bin" "$work/bin/$copy_to"
oci_new "$work/oci"
oci_layer "$work/oci" "$base" /
oci_layer "$work/oci" "$work/bin" /
oci_config "$work/oci" "${config[@]}"
oci_pack "$work/oci" "$ref" "$out"
size=$(du -m "$out" | cut -f1)
echo "image: $ref ($size MiB, revision $revision) built in $(( $(date +%s) - t0 ))s"
echo "$out"
