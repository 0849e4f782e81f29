#!/usr/bin/env bash
# A multi-host test bed on one machine: N "hosts" as network namespaces joined by a
# bridge, each with its own address in a private /24 that this script creates.
#
#   scripts/netns-bed.sh up TAG N      create hosts heed-TAG-h0 .. h(N-1); print "NAME ADDRESS" per host
#   scripts/netns-bed.sh down TAG      remove everything made for TAG (and only that)
#   scripts/netns-bed.sh exec TAG K CMD...   run CMD in host K's network namespace
#
# TAG is 1-6 letters/digits chosen by the caller (tests use a per-process tag) so that
# parallel beds never share names. The subnet is 10.213.S.0/24, S (20-219) derived from
# TAG; when that subnet is already in use on this machine (another bed whose tag hashes to
# the same S, or anything else), `up` takes the next free S, under a lock so that two beds
# coming up together cannot pick the same one. The bed never takes over addresses it did
# not create; `up` fails only when all 200 subnets are in use. `down` deletes only the namespaces, veths and bridge
# named after TAG. Hosts share the root namespace's mounts and /sys (entered with
# `nsenter --net`, not `ip netns exec`, which remounts /sys: see PLATFORM.md).
# Needs root (or CAP_NET_ADMIN) and iproute2.
set -euo pipefail

usage() { sed -n '2,9p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1; tag=$2
[[ $tag =~ ^[A-Za-z0-9]{1,6}$ ]] || { echo "netns-bed: TAG must be 1-6 letters or digits" >&2; exit 2; }
bridge="hb$tag"
first_octet=$(( $(printf '%s' "$tag" | cksum | cut -d' ' -f1) % 200 ))
host() { echo "heed-$tag-h$1"; }

down() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^heed-$tag-h[0-9]+$" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^hv$tag[0-9]+$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
}

case "$cmd" in
  up)
    n=${3:?usage: netns-bed.sh up TAG N}
    [[ $n =~ ^[0-9]+$ ]] && (( n >= 1 && n <= 50 )) || { echo "netns-bed: N must be 1-50" >&2; exit 2; }
    trap 'down' ERR
    # Choosing a subnet and claiming it (the bridge's address) happen under one lock.
    exec 9>/tmp/heed-netns-bed.lock
    flock 9
    in_use=$(ip -4 -o addr show)
    prefix=""
    for ((i = 0; i < 200; i++)); do
      candidate="10.213.$(( (first_octet + i) % 200 + 20 ))"
      if ! grep -q " $candidate\." <<<"$in_use"; then prefix=$candidate; break; fi
    done
    if [ -z "$prefix" ]; then
      flock -u 9
      echo "netns-bed: every subnet 10.213.20-219.0/24 is in use on this machine" >&2; exit 1
    fi
    ip link add "$bridge" type bridge
    ip addr add "$prefix.1/24" dev "$bridge"
    flock -u 9
    ip link set "$bridge" up
    for ((k = 0; k < n; k++)); do
      ns=$(host "$k")
      ip netns add "$ns"
      ip link add "hv$tag$k" type veth peer name "hp$tag$k"
      ip link set "hp$tag$k" netns "$ns"
      ip link set "hv$tag$k" master "$bridge" up
      ip -n "$ns" link set lo up
      ip -n "$ns" link set "hp$tag$k" name eth0
      ip -n "$ns" addr add "$prefix.$((10 + k))/24" dev eth0
      ip -n "$ns" link set eth0 up
      echo "$ns $prefix.$((10 + k))"
    done
    ;;
  down)
    down
    ;;
  exec)
    k=${3:?usage: netns-bed.sh exec TAG K CMD...}; shift 3
    exec nsenter --net="/var/run/netns/$(host "$k")" "$@"
    ;;
  *) usage ;;
esac
