#!/usr/bin/env bash
# Installs mdBook (the documentation site's builder) once, at the version pinned in
# hack/versions.env, from crates.io into ${HASHROLL_CACHE:-$HOME/.cache/hashroll}/tools/
# mdbook-<version>/bin/. A finished install leaves a .complete marker; `hack/build-mdbook.sh
# path` prints the binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
dest="$cache/tools/mdbook-$MDBOOK_VERSION"

if [ "${1:-}" = path ]; then
  echo "$dest/bin/mdbook"
  exit 0
fi
if [ -f "$dest/.complete" ]; then
  echo "mdbook: cached in $dest"
  exit 0
fi
command -v cargo >/dev/null || { echo "mdbook: 'cargo' is not on PATH" >&2; exit 1; }
t=$(date +%s)
echo "==> installing mdbook $MDBOOK_VERSION from crates.io (first time: up to 20 minutes on 2 cores)"
# its own target folder, so the project's build cache is not touched; only `mdbook build`
# is used, so neither its server nor its file watcher is built
CARGO_TARGET_DIR="$cache/tools/mdbook-build" \
  cargo install mdbook --version "$MDBOOK_VERSION" --locked --root "$dest" --quiet \
  --no-default-features --features search
rm -rf "$cache/tools/mdbook-build"
echo "    done in $(( $(date +%s) - t ))s"
touch "$dest/.complete"
