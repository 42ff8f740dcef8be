#!/usr/bin/env bash
# The runtime base of hashroll's image, made from the Debian packages distroless uses
# (libc6, libgcc-s1, ca-certificates, tzdata) and a nonroot user 65532, into folder $1.
# One definition, run by the Dockerfile's rootfs stage and by hack/build-image.sh, so the
# image built with `docker build` and the one the tests build cannot drift apart.
# No shell, no package manager, no coreutils: only what a Rust binary linked against glibc
# needs, the CA roots and the time zones.
set -euo pipefail
dest=${1:?usage: image-rootfs.sh DEST}
packages=(libc6 libgcc-s1 ca-certificates tzdata)
mkdir -p "$dest"
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
# apt-get download needs the package lists; read them once when they are missing
(cd "$debs" && apt-get download "${packages[@]}" >/dev/null 2>&1) ||
  { apt-get update -qq && (cd "$debs" && apt-get download "${packages[@]}" >/dev/null); }
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done
# what a running program never reads
rm -rf "$dest"/usr/share/doc "$dest"/usr/share/man "$dest"/usr/share/lintian \
  "$dest"/usr/share/locale "$dest"/usr/share/info "$dest"/usr/lib/x86_64-linux-gnu/gconv \
  "$dest"/usr/sbin "$dest"/usr/bin "$dest"/etc/init.d "$dest"/usr/share/ca-certificates-java
# the CA bundle update-ca-certificates would make at install time
mkdir -p "$dest/etc/ssl/certs"
cat "$dest"/usr/share/ca-certificates/mozilla/*.crt > "$dest/etc/ssl/certs/ca-certificates.crt"
# users and a few files programs expect
cat > "$dest/etc/passwd" <<'P'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
P
cat > "$dest/etc/group" <<'G'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
G
echo "hosts: files dns" > "$dest/etc/nsswitch.conf"
mkdir -p "$dest/tmp" "$dest/home/nonroot" "$dest/root" "$dest/usr/local/bin"
chmod 1777 "$dest/tmp"
chown 65532:65532 "$dest/home/nonroot"
chmod 700 "$dest/root"
# the merged-/usr links Debian's packages assume (libc6 installs into /usr/lib and /lib64)
for d in lib lib64 bin sbin; do
  if [ ! -e "$dest/$d" ] && [ -d "$dest/usr/$d" ]; then ln -s "usr/$d" "$dest/$d"; fi
done
