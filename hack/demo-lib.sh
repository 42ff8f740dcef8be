# Shared by the demos (hack/demo.sh, hack/demo-safe.sh): step output, clean-up of what a
# demo started, the kwok plane and hashroll beside it. Sourced, not run.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

# an opted-in Deployment: a server-side dry run of it comes back stamped once the webhook answers
probe='{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"probe","namespace":"ns1","annotations":{"reloader.stakater.com/auto":"true"}},"spec":{"selector":{"matchLabels":{"app":"probe"}},"template":{"metadata":{"labels":{"app":"probe"}},"spec":{"containers":[{"name":"c","image":"x","envFrom":[{"configMapRef":{"name":"probe"}}]}]}}}}'
kubectl() { "$BIN/kubectl" "$@"; }

# a local control plane on kwok's fake node, and hashroll beside it (webhook on 127.0.0.1 with
# a generated CA, its registration, ns1 created); $1: extra flags for hashroll
start_kwok_and_hashroll() {
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
  sed 's/^/    /' "$work/plane.log"
  done_step

  step "starting hashroll (webhook on 127.0.0.1 with a generated CA; HMAC key in a Secret)"
  webhook-certs/generate.sh "$work/certs" | sed 's/^/    /'
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  wport=$(port); mport=$(port)
  kubectl create namespace hashroll >/dev/null
  "$CARGO_TARGET_DIR/debug/hashroll" run ${1:-} --tls-cert-file="$work/certs/tls.crt" --tls-key-file="$work/certs/tls.key" \
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
  for _ in $(seq 1 300); do
    echo "$probe" | kubectl create --dry-run=server -o yaml -f - 2>/dev/null | grep -q 'hashroll.dev/sources' && break
    sleep 0.2
  done
  done_step
}
