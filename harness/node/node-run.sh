#!/bin/sh
# Runs containerd and the kubelet of the real node, in the node's network namespace and in
# a private mount namespace (harness/src/node.rs starts it under `nsenter --net` and
# `unshare --mount --propagation private`; not `ip netns exec`, whose fresh /sys hides the
# cgroup mounts from the kubelet): every pod's netns, tmpfs and overlay mount
# lives in this mount namespace and disappears with its last process. The three kernel
# settings the kubelet would set on the machine are files of ours bind-mounted over
# /proc/sys, holding the values it expects, so the machine's own stay as they are.
set -eu
for f in vm/overcommit_memory:1 kernel/panic:10 kernel/panic_on_oops:1; do
  name=${f%%:*}
  file="$NODE_DIR/sysctl/$(echo "$name" | tr / _)"
  echo "${f#*:}" > "$file"
  mount --bind "$file" "/proc/sys/$name"
done
echo $$ > "$NODE_DIR/run.pid"
# the `kubernetes` Service's ClusterIP to the apiserver: what kube-proxy would do for
# that one Service (the only one hashroll's pods use); webhooks behind Services are called
# at their endpoints by the apiserver itself
iptables -w -t nat -A PREROUTING -d "$SERVICE_IP" -p tcp --dport 443 -j DNAT --to-destination "$HOST_IP:$API_PORT"
iptables -w -t nat -A OUTPUT -d "$SERVICE_IP" -p tcp --dport 443 -j DNAT --to-destination "$HOST_IP:$API_PORT"
PATH="$NODE_BIN:$PATH"
export PATH
containerd --config "$NODE_DIR/containerd.toml" > "$NODE_DIR/logs/containerd.log" 2>&1 &
echo $! > "$NODE_DIR/containerd.pid"
i=0
until ctr --address "$NODE_DIR/containerd/containerd.sock" version >/dev/null 2>&1; do
  i=$((i + 1))
  [ $i -lt 300 ] || { echo "containerd did not start" >&2; exit 1; }
  sleep 0.1
done
for img in $NODE_IMAGES; do
  ctr --address "$NODE_DIR/containerd/containerd.sock" -n k8s.io images import --all-platforms "$img" \
    >> "$NODE_DIR/logs/import.log" 2>&1
done
kubelet --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$NODE_DIR/kubelet.kubeconfig" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$NODE_DIR/kubelet" \
  --v=1 > "$NODE_DIR/logs/kubelet.log" 2>&1 &
kubelet_pid=$!
echo $kubelet_pid > "$NODE_DIR/kubelet.pid"
# the node lives as long as its kubelet: when it ends, so does containerd
set +e
wait "$kubelet_pid"
status=$?
kill "$(cat "$NODE_DIR/containerd.pid")" 2>/dev/null
echo "the kubelet exited ($status); its log: $NODE_DIR/logs/kubelet.log" >&2
exit "$status"
