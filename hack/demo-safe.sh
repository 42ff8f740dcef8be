#!/usr/bin/env bash
# make demo-safe: safe rollouts on a local control plane (kwok's node, hashroll beside it).
# Five Deployments share one ConfigMap: a canary in wave 0, two in wave 1, two in wave 2.
# A good change rolls them wave by wave; a bad change (a ValidatingAdmissionPolicy refuses
# the new pods while the ConfigMap `verdict` says bad, as a broken config would keep them
# from starting) fails the canary at its progress deadline and holds the rest; the fix rolls
# them all. Stops everything it started on exit, also on Ctrl-C.
set -euo pipefail
. "$(dirname "$0")/demo-lib.sh"

step "control plane binaries and hashroll (first time: builds them; then cached)"
hack/build-control-plane.sh | sed 's/^/    /'
cargo build --workspace --bins --quiet
done_step

start_kwok_and_hashroll --coalesce-window=0

deployment() { # name wave
  cat <<YAML
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1
  namespace: ns1
  annotations: {reloader.stakater.com/auto: "true", hashroll.dev/wave: "$2"}
spec:
  progressDeadlineSeconds: 10
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1, demo: safe}}
    spec:
      containers: [{name: c, image: nginx, envFrom: [{configMapRef: {name: shared}}]}]
YAML
}
revisions() { # the ReplicaSets of each Deployment, by wave
  for d in canary api-1 api-2 web-1 web-2; do
    printf '    %-7s wave %s: %s ReplicaSet(s)\n' "$d" \
      "$(kubectl get deployment "$d" -n ns1 -o jsonpath='{.metadata.annotations.hashroll\.dev/wave}')" \
      "$(kubectl get rs -n ns1 -l app="$d" -o name | wc -l)"
  done
}
wait_count() { # deployment count
  for _ in $(seq 1 600); do
    [ "$(kubectl get rs -n ns1 -l app="$1" -o name | wc -l)" -ge "$2" ] && return 0
    sleep 0.2
  done
  echo "no rollout of $1 seen" >&2; return 1
}
verdict() { # good|bad: what the policy lets new pods do, once it acts on it
  kubectl apply -n ns1 -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: verdict}
data: {mode: $1}
YAML
  local pod='{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe","namespace":"ns1"},"spec":{"containers":[{"name":"c","image":"x"}]}}'
  for _ in $(seq 1 300); do
    if echo "$pod" | kubectl create --dry-run=server -f - >/dev/null 2>&1; then
      [ "$1" = good ] && return 0
    else
      [ "$1" = bad ] && return 0
    fi
    sleep 0.2
  done
  echo "the policy did not act on mode=$1" >&2; return 1
}

step "five Deployments on one ConfigMap: canary in wave 0, api-1/api-2 in wave 1, web-1/web-2 in wave 2"
{
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: ns1}\ndata: {LOG_LEVEL: info}\n'
  deployment canary 0; deployment api-1 1; deployment api-2 1; deployment web-1 2; deployment web-2 2
} > "$work/apps.yaml"
show kubectl apply -f "$work/apps.yaml"
for d in canary api-1 api-2 web-1 web-2; do kubectl rollout status deployment/"$d" -n ns1 --timeout=90s >/dev/null; done
revisions
done_step

step "a good change (LOG_LEVEL=debug): rolled wave by wave, each once the one before completed"
show kubectl patch configmap shared -n ns1 --type merge -p '{"data":{"LOG_LEVEL":"debug"}}'
wait_count web-1 2; wait_count web-2 2
show kubectl get deployments -n ns1 -o custom-columns='NAME:.metadata.name,WAVE:.metadata.annotations.hashroll\.dev/wave,ROLLED AT:.metadata.annotations.hashroll\.dev/last-roll' --sort-by='.metadata.annotations.hashroll\.dev/last-roll'
done_step

step "a bad change (LOG_LEVEL=trace, and new pods cannot start): the canary fails, the rest are held"
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: demo-bad-config}
spec:
  failurePolicy: Fail
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns1}}
  validations:
  - expression: "!has(params.data) || !('mode' in params.data) || params.data.mode != 'bad'"
    message: "the new config keeps this revision from starting"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: demo-bad-config}
spec:
  policyName: demo-bad-config
  validationActions: [Deny]
  paramRef: {name: verdict, parameterNotFoundAction: Allow}
YAML
verdict bad
show kubectl patch configmap shared -n ns1 --type merge -p '{"data":{"LOG_LEVEL":"trace"}}'
wait_count canary 3
printf '\n    waiting for the canary to meet its progress deadline (10 s) ...\n'
for _ in $(seq 1 600); do
  kubectl get events -n ns1 -o jsonpath='{.items[*].reason}' | grep -q RolloutHeld && break
  sleep 0.2
done
revisions
show kubectl get events -n ns1 --field-selector reason=RolloutFailed -o custom-columns=KIND:.involvedObject.kind,OBJECT:.involvedObject.name,MESSAGE:.message
show "$CARGO_TARGET_DIR/debug/hashroll" explain deployment/api-1 -n ns1
done_step

step "the fix (LOG_LEVEL=info, pods start again): the canary rolls again first, then the rest"
verdict good
show kubectl patch configmap shared -n ns1 --type merge -p '{"data":{"LOG_LEVEL":"info"}}'
wait_count web-1 3; wait_count web-2 3
revisions
done_step

kubectl delete validatingadmissionpolicybinding demo-bad-config >/dev/null
kubectl delete validatingadmissionpolicy demo-bad-config >/dev/null
printf '\nDemo finished in %ss; stopping the control plane and hashroll.\n' "$(( $(date +%s) - T0 ))"
