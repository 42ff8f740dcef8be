#!/usr/bin/env bash
# make demo: a local control plane, hashroll against it (webhook registered with a
# 127.0.0.1 URL and a generated CA), the seed's manifests applied unchanged, both
# ConfigMaps edited as the blog post does, and what a user wants to see. Stops everything
# it started on exit, also on Ctrl-C.
set -euo pipefail
. "$(dirname "$0")/demo-lib.sh"

step "control plane binaries (first time: builds kube-apiserver & co. from Go modules, 15-20 min on 2 cores; then cached)"
hack/build-control-plane.sh | sed 's/^/    /'
done_step

step "building hashroll (first time: a few minutes; then cached)"
cargo build --workspace --bins --quiet
done_step

wait_rs() { # $1: count
  for _ in $(seq 1 300); do
    [ "$(kubectl get rs -n ns1 -l app=nginx -o name | wc -l)" -ge "$1" ] && return 0
    sleep 0.2
  done
  echo "no rollout seen" >&2; return 1
}
# the pod of the Deployment's newest ReplicaSet
new_pod() {
  local hash
  hash=$(kubectl get rs -n ns1 -l app=nginx -o go-template='{{range .items}}{{index .metadata.annotations "deployment.kubernetes.io/revision"}} {{index .metadata.labels "pod-template-hash"}}{{"\n"}}{{end}}' | sort -n | tail -1 | cut -d' ' -f2)
  kubectl get pods -n ns1 -l "app=nginx,pod-template-hash=$hash" -o jsonpath='{.items[0].metadata.name}'
}

# Where the machine allows it (root, cgroups), the demo runs on a real node with hashroll
# installed by its chart from its image; elsewhere it says why and runs on kwok's fake
# node with hashroll beside the plane.
# 0: a real node is up; 3: this machine cannot run one (the reason is in plane.log)
start_real_node() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "hashroll-plane: no real node on this machine: not root (a kubelet and containerd need root)" > "$work/plane.log"
    return 3
  fi
  step "the real node's parts (first time: kubelet and containerd from Go modules, about 7 min), the image and helm"
  hack/build-node.sh | sed 's/^/    /' || return 1
  cargo build --release --bin hashroll --quiet || return 1
  image=$(hack/build-image.sh | tail -1) || return 1
  hack/build-tools.sh helm | sed 's/^/    /' || return 1
  helm_bin=$(hack/build-tools.sh path helm)
  done_step

  step "starting a control plane and a real node (kubelet, containerd, runc, CNI), importing the image"
  "$CARGO_TARGET_DIR/debug/hashroll-plane" node-up --ready-file "$work/ready" --import "$image" > "$work/plane.log" 2>&1 &
  plane_pid=$!
  for _ in $(seq 1 900); do
    [ -f "$work/ready" ] && return 0
    if ! kill -0 "$plane_pid" 2>/dev/null; then
      local code=0
      wait "$plane_pid" || code=$?
      plane_pid=""
      return "$code"
    fi
    sleep 0.2
  done
  echo "the real node did not start in 180 s" >&2
  return 1
}

real=0
start_real_node && real=1 || code=$?
if [ "$real" = 0 ]; then
  [ "${code:-1}" -eq 3 ] || { cat "$work/plane.log"; echo "the real node failed to start" >&2; exit 1; }
  printf '\n    %s\n    so the demo runs on kwok'"'"'s fake node, hashroll beside the plane.\n' "$(grep 'no real node' "$work/plane.log")"
  rm -f "$work/ready"
else
  export KUBECONFIG=$(cat "$work/ready")
  sed 's/^/    /' "$work/plane.log"
  show kubectl get nodes -o wide
  done_step

  step "helm install, as a user installs it (the chart's defaults: self-managed certificates, 2 replicas, HA)"
  export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
  show "$helm_bin" install hashroll charts/hashroll -n hashroll --create-namespace --wait --timeout 3m
  show kubectl get pods -n hashroll -o wide
  done_step

  step "the blog post's cm.yaml and nginx-deploy.yaml (image: a local busybox that prints the file and env; no registry here)"
  kubectl create namespace ns1 >/dev/null
  sed 's|^        image: nginx$|        image: docker.io/library/busybox:hashroll\n        command: [sh, -c, '"'"'cat /etc/foo/info.yaml; echo CITY=$CITY; trap "exit 0" TERM; while true; do sleep 1; done'"'"']|' \
    examples/nginx-deploy.yaml > "$work/nginx-deploy.yaml"
  # until the webhook answers, a Deployment would start unstamped
  for _ in $(seq 1 300); do
    echo "$probe" | kubectl create --dry-run=server -o yaml -f - 2>/dev/null | grep -q 'hashroll.dev/sources' && break
    sleep 0.2
  done
  show kubectl apply -f examples/cm.yaml -f "$work/nginx-deploy.yaml"
  kubectl rollout status deployment/nginx -n ns1 --timeout=90s | sed 's/^/    /'
  pod=$(new_pod)
  show kubectl exec -n ns1 "$pod" -- cat /etc/foo/info.yaml
  printf '\n$ kubectl exec -n ns1 %s -- env | grep CITY\n' "$pod"; kubectl exec -n ns1 "$pod" -- env | grep CITY
  done_step

  step "kubectl edit configmap test-config-file: user=aliens -> user=ted"
  KUBE_EDITOR="sed -i s/user=aliens/user=ted/" show kubectl edit configmap test-config-file -n ns1
  wait_rs 2
  kubectl rollout status deployment/nginx -n ns1 --timeout=90s | sed 's/^/    /'
  pod=$(new_pod)
  show kubectl exec -n ns1 "$pod" -- cat /etc/foo/info.yaml
  done_step

  step "kubectl edit configmap test-config-env: CITY: beijing -> CITY: shenzhen"
  KUBE_EDITOR="sed -i s/beijing/shenzhen/" show kubectl edit configmap test-config-env -n ns1
  wait_rs 3
  kubectl rollout status deployment/nginx -n ns1 --timeout=90s | sed 's/^/    /'
  pod=$(new_pod)
  printf '\n$ kubectl exec -n ns1 %s -- env | grep CITY\n' "$pod"; kubectl exec -n ns1 "$pod" -- env | grep CITY
  show kubectl exec -n ns1 "$pod" -- cat /etc/foo/info.yaml
  done_step

  step "what happened"
  show kubectl get replicasets -n ns1
  leader=$(kubectl get lease hashroll-leader -n hashroll -o jsonpath='{.spec.holderIdentity}')
  printf '\n$ kubectl logs -n hashroll %s | grep rolled\n' "$leader"
  kubectl logs -n hashroll "$leader" | grep rolled | sed 's/^/    /'
  show "$helm_bin" uninstall hashroll -n hashroll --wait
  done_step
  printf '\nDemo finished in %ss on a real node; stopping the node and the control plane.\n' "$(( $(date +%s) - T0 ))"
  exit 0
fi


start_kwok_and_hashroll

step "applying the blog post's cm.yaml and nginx-deploy.yaml, unchanged (examples/)"
show kubectl apply -f examples/cm.yaml -f examples/nginx-deploy.yaml
kubectl rollout status deployment/nginx -n ns1 --timeout=90s | sed 's/^/    /'
show kubectl get pods -n ns1
printf '\nThe Deployment was stamped at admission (record + roll token), so it starts once:\n'
show kubectl get deployment nginx -n ns1 -o jsonpath='{.metadata.annotations.hashroll\.dev/sources}{"\n"}{.spec.template.metadata.annotations.hashroll\.dev/config-hash}{"\n"}'
done_step

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
