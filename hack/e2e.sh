#!/usr/bin/env bash
# Runs every tests/e2e_*.rs binary, E2E_JOBS at a time (default 3). Each binary starts its
# own control plane, so binaries are independent; most of their time is spent waiting on
# the plane, and running them side by side takes the e2e part of a warm `make test` from
# about 9 minutes to about 4 on two cores. Each binary's output goes to a log, printed when
# it fails; a summary line per binary is printed as it ends. E2E_JOBS=1 runs them one by one.
set -euo pipefail
jobs="${E2E_JOBS:-3}"
logs="$(mktemp -d -t hashroll-e2e-XXXXXX)"

# build once; the JSON messages name each test executable
mapfile -t bins < <(cargo test --no-run --test 'e2e_*' --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' |
  sort -u)
if [ "${#bins[@]}" -eq 0 ]; then
  echo "no e2e test binary built" >&2
  cargo test --no-run --test 'e2e_*' >&2
  exit 1
fi
echo "running ${#bins[@]} e2e binaries, $jobs at a time (logs: $logs)"

run_one() {
  local bin="$1" logs="$2"
  local name
  name="$(basename "$bin" | sed 's/-[0-9a-f]*$//')"
  local start=$SECONDS
  if "$bin" >"$logs/$name.log" 2>&1; then
    echo "ok     $name ($((SECONDS - start)) s): $(grep -h '^test result' "$logs/$name.log" | tail -1)"
  else
    echo "FAILED $name ($((SECONDS - start)) s); its output:"
    cat "$logs/$name.log"
    return 1
  fi
}
export -f run_one

# the longest first, so the slowest do not end up last alone
status=0
printf '%s\n' "${bins[@]}" |
  awk '{ w = 0; if ($0 ~ /e2e_(watcher|kinds|custom|alerts|soak|batch|chart|node|safe|gates|argocd)-/) w = 1; print w "\t" $0 }' |
  sort -r | cut -f2 |
  xargs -P "$jobs" -I{} bash -c 'run_one "$1" "$2"' _ {} "$logs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "e2e: some binaries failed (logs: $logs)" >&2
  exit 1
fi
echo "e2e: every binary passed"
