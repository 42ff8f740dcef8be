#!/bin/sh
# Tears the real node down, leaving nothing: the kubelet, every container (runc), the
# shims, containerd, the network namespace (its veth, bridge and rules go with it), this
# machine's FORWARD rules, the kubelet's cgroups (deepest first) and the node's state.
# Idempotent: harness/src/node.rs runs it before a start too, for what a killed run left.
set +e
[ -n "${NODE_DIR:-}" ] || exit 0
stop() { [ -f "$1" ] && kill -s "$2" "$(cat "$1")" 2>/dev/null; }
stop "$NODE_DIR/kubelet.pid" TERM
for _ in 1 2 3 4 5 6 7 8 9 10; do
  stop "$NODE_DIR/kubelet.pid" 0 || break
  sleep 0.2
done
stop "$NODE_DIR/kubelet.pid" KILL
# runc's state is one folder per containerd namespace under the root we gave it
for root in "$NODE_DIR"/runc/*; do
  [ -d "$root" ] || continue
  for id in $("$RUNC" --root "$root" list -q 2>/dev/null); do
    "$RUNC" --root "$root" delete --force "$id" >/dev/null 2>&1
  done
done
# and whatever still runs in the pods' cgroups (a container whose state was lost)
for procs in $(find /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/unified/kubepods /sys/fs/cgroup/kubepods \
  -name cgroup.procs 2>/dev/null); do
  for pid in $(cat "$procs" 2>/dev/null); do kill -s KILL "$pid" 2>/dev/null; done
done
# shims (they leave containerd's process group) and anything else run from our binaries
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  case "$exe" in "$NODE_BIN"/*) kill -s KILL "${p#/proc/}" 2>/dev/null ;; esac
done
stop "$NODE_DIR/containerd.pid" KILL
stop "$NODE_DIR/run.pid" KILL
sleep 0.3
ip netns del "$NETNS" 2>/dev/null
ip link del "$HOST_IF" 2>/dev/null
while iptables -w -D FORWARD -i "$HOST_IF" -j DROP 2>/dev/null; do :; done
while iptables -w -D FORWARD -o "$HOST_IF" -j DROP 2>/dev/null; do :; done
# a killed container's cgroup is busy for a moment after its last process went
for _ in $(seq 1 50); do
  left=0
  for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$c" ] && left=1
  done
  [ $left = 0 ] && break
  sleep 0.1
done
# what the kubelet and libcni write to fixed places: log links into our folder, and the
# folders the machine did not have before the first node (see net-up.sh)
find /var/log/containers -maxdepth 1 -lname "$NODE_DIR/*" -delete 2>/dev/null
made=/run/lock/hashroll-node.made
if [ -f "$made" ]; then
  while read -r d; do
    case "$d" in
      /run/netns) while umount /run/netns 2>/dev/null; do :; done; rmdir /run/netns 2>/dev/null ;;
      /run/containerd|/var/lib/cni|/var/log/containers|/var/log/pods) rm -rf "$d" ;;
    esac
  done < "$made"
  rm -f "$made"
fi
rm -rf "$NODE_DIR/containerd" "$NODE_DIR/kubelet" "$NODE_DIR/runc" 2>/dev/null
exit 0
