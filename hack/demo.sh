#!/usr/bin/env bash
# make demo: a local control plane, hashroll against it (webhook registered with a
# 127.0.0.1 URL and a generated CA), the seed's manifests applied unchanged, both
# ConfigMaps edited as the blog post does, and what a user wants to see. Stops everything
# it started on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export HASHROLL_CACHE=${HASHROLL_CACHE:-$HOME/.cache/hashroll}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HASHROLL_CACHE/target}
. hack/versions.env
BIN="$HASHROLL_CACHE/control-plane/$KUBERNETES_VERSION/bin"
T0=$(date +%s)
step_start=0
step() { step_start=$(date +%s); printf '\n\033[1m==> %s\033[0m\n' "$*"; }
done_step() { printf '    (done in %ss)\n' "$(( $(date +%s) - step_start ))"; }
show() { printf '\n$ %s\n' "$*"; "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/hashroll-demo.XXXXXX")
plane_pid="" hashroll_pid=""
cleanup() {
  set +e
  [ -n "$hashroll_pid" ] && kill "$hashroll_pid" 2>/dev/null && wait "$hashroll_pid" 2>/dev/null
  [ -n "$plane_pid" ] && kill "$plane_pid" 2>/dev/null && wait "$plane_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "interrupted: stopping what the demo started"; exit 130' INT TERM

step "control plane binaries (first time: builds kube-apiserver & co. from Go modules, 15-20 min on 2 cores; then cached)"
hack/build-control-plane.sh | sed 's/^/    /'
done_step

step "building hashroll (first time: a few minutes; then cached)"
cargo build --workspace --bins --quiet
done_step

step "starting a local control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok (about 5 s)"
"$CARGO_TARGET_DIR/debug/hashroll-plane" up --dir "$work/plane" --ready-file "$work/ready" > "$work/plane.log" 2>&1 &
plane_pid=$!
for _ in $(seq 1 600); do
  [ -f "$work/ready" ] && break
  kill -0 "$plane_pid" 2>/dev/null || { cat "$work/plane.log"; echo "the control plane did not start" >&2; exit 1; }
  sleep 0.2
done
[ -f "$work/ready" ] || { cat "$work/plane.log"; echo "the control plane did not start in 120 s" >&2; exit 1; }
export KUBECONFIG=$(cat "$work/ready")
kubectl() { "$BIN/kubectl" "$@"; }
sed 's/^/    /' "$work/plane.log"
done_step

step "starting hashroll (webhook on 127.0.0.1 with a generated CA; HMAC key in a Secret)"
webhook-certs/generate.sh "$work/certs" | sed 's/^/    /'
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wport=$(port); mport=$(port)
kubectl create namespace hashroll >/dev/null
"$CARGO_TARGET_DIR/debug/hashroll" run --tls-cert-file="$work/certs/tls.crt" --tls-key-file="$work/certs/tls.key" \
  --webhook-addr="127.0.0.1:$wport" --metrics-addr="127.0.0.1:$mport" --namespace=hashroll > "$work/hashroll.log" 2>&1 &
hashroll_pid=$!
for _ in $(seq 1 300); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$mport/readyz', timeout=1)" 2>/dev/null && break
  kill -0 "$hashroll_pid" 2>/dev/null || { cat "$work/hashroll.log"; exit 1; }
  sleep 0.2
done
"$CARGO_TARGET_DIR/debug/hashroll-plane" webhook-config --url "https://127.0.0.1:$wport/mutate" \
  --ca-file "$work/certs/ca.crt" | kubectl apply -f - | sed 's/^/    /'
# the apiserver picks the configuration up within a moment: wait until a dry run is stamped
kubectl create namespace ns1 >/dev/null
probe='{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"probe","namespace":"ns1","annotations":{"reloader.stakater.com/auto":"true"}},"spec":{"selector":{"matchLabels":{"app":"probe"}},"template":{"metadata":{"labels":{"app":"probe"}},"spec":{"containers":[{"name":"c","image":"x","envFrom":[{"configMapRef":{"name":"probe"}}]}]}}}}'
for _ in $(seq 1 300); do
  echo "$probe" | kubectl create --dry-run=server -o yaml -f - 2>/dev/null | grep -q 'hashroll.dev/sources' && break
  sleep 0.2
done
done_step

step "applying the blog post's cm.yaml and nginx-deploy.yaml, unchanged (examples/)"
show kubectl apply -f examples/cm.yaml -f examples/nginx-deploy.yaml
kubectl rollout status deployment/nginx -n ns1 --timeout=90s | sed 's/^/    /'
show kubectl get pods -n ns1
printf '\nThe Deployment was stamped at admission (record + roll token), so it starts once:\n'
show kubectl get deployment nginx -n ns1 -o jsonpath='{.metadata.annotations.hashroll\.dev/sources}{"\n"}{.spec.template.metadata.annotations.hashroll\.dev/config-hash}{"\n"}'
done_step

wait_rs() { # $1: count
  for _ in $(seq 1 300); do
    [ "$(kubectl get rs -n ns1 -l app=nginx -o name | wc -l)" -ge "$1" ] && return 0
    sleep 0.2
  done
  echo "no rollout seen" >&2; return 1
}

step "editing test-config-file (mounted as a file): user=ted, as 'kubectl edit' would"
show kubectl patch configmap test-config-file -n ns1 --type merge -p '{"data":{"info.yaml":"user=ted\nage=22\n"}}'
wait_rs 2
kubectl rollout status deployment/nginx -n ns1 --timeout=90s | sed 's/^/    /'
show kubectl get pods -n ns1
done_step

step "editing test-config-env (injected as env): CITY=shenzhen"
show kubectl patch configmap test-config-env -n ns1 --type merge -p '{"data":{"CITY":"shenzhen"}}'
wait_rs 3
kubectl rollout status deployment/nginx -n ns1 --timeout=90s | sed 's/^/    /'
show kubectl get pods -n ns1
done_step

step "what happened"
show kubectl get replicasets -n ns1
show kubectl get events -n ns1 --field-selector reason=Reloaded -o custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message
show "$CARGO_TARGET_DIR/debug/hashroll" explain deployment/nginx -n ns1
show "$CARGO_TARGET_DIR/debug/hashroll" explain configmap/test-config-env -n ns1
printf '\nhashroll log (last lines):\n'
grep -E 'rolled|stamped|synced' "$work/hashroll.log" | tail -6 | sed 's/^/    /'
done_step

printf '\nDemo finished in %ss; stopping the control plane and hashroll.\n' "$(( $(date +%s) - T0 ))"
