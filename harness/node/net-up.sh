#!/bin/sh
# The real node's network (run by harness/src/node.rs as root): a network namespace $NETNS
# for the node, joined to this machine by a veth pair whose two addresses the harness
# makes ($HOST_IP here, $NODE_IP in the namespace). The node's pods live on a bridge in the
# namespace ($POD_CIDR); no default route leads out of it, and neither side forwards to
# anything else, so every address a test or a pod talks to is one the harness made.
# The apiserver listens on $HOST_IP (started after this); node-run.sh DNATs the
# `kubernetes` Service's ClusterIP to it inside the namespace.
set -eu
# the fixed places containerd, libcni and the kubelet write to that this machine lacks
# now: node-down.sh removes them again (a list that outlives this run, for the next
# start's clean-up if this one is killed)
made=/run/lock/hashroll-node.made
if [ ! -f "$made" ]; then
  for d in /run/containerd /var/lib/cni /var/log/containers /var/log/pods /run/netns; do
    [ -e "$d" ] || echo "$d" >> "$made"
  done
  touch "$made"
fi
ip netns add "$NETNS"
ip link add "$HOST_IF" type veth peer name "$NODE_IF"
ip link set "$NODE_IF" netns "$NETNS"
ip addr add "$HOST_IP/30" dev "$HOST_IF"
ip link set "$HOST_IF" up
ip route add "$POD_CIDR" via "$NODE_IP" dev "$HOST_IF"
# this machine never forwards to or from the node's side
iptables -w -I FORWARD -i "$HOST_IF" -j DROP
iptables -w -I FORWARD -o "$HOST_IF" -j DROP
n() { ip netns exec "$NETNS" "$@"; }
n ip link set lo up
n ip addr add "$NODE_IP/30" dev "$NODE_IF"
n ip link set "$NODE_IF" up
n sysctl -qw net.ipv4.ip_forward=1
# pods reach the pod network and this machine's $HOST_IP (the apiserver), nothing else
n iptables -w -A FORWARD -s "$POD_CIDR" -d "$POD_CIDR" -j ACCEPT
n iptables -w -A FORWARD -s "$POD_CIDR" -d "$HOST_IP" -j ACCEPT
n iptables -w -A FORWARD -d "$POD_CIDR" -j ACCEPT
n iptables -w -P FORWARD DROP
