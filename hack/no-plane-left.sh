#!/usr/bin/env bash
# After the e2e tests: no process of a test plane may outlive the run. The reaper of each
# plane stops its group within a few seconds of the test binary's exit; wait up to 15 s.
set -u
pattern='control-plane/v[0-9.]+/bin/(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok)'
for _ in $(seq 1 75); do
  if ! pgrep -f "$pattern" >/dev/null; then
    echo "no control-plane process left behind"
    exit 0
  fi
  sleep 0.2
done
echo "control-plane processes outlived the test run:" >&2
pgrep -af "$pattern" >&2
exit 1
