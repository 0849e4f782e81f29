#!/usr/bin/env bash
# Real sshd on every host of a network-namespace bed (scripts/netns-bed.sh), for trying
# cluster/ssh/launch.sh across hosts on one machine.
#
#   scripts/ssh-bed.sh up TAG      start one sshd per host of bed TAG; print "ADDRESS" per host
#   scripts/ssh-bed.sh down TAG    stop them and delete the keys
#
# Keys (a host key and a client key, ed25519, no passphrase) are made fresh under
# /tmp/heed-ssh-TAG/ and are only accepted by these sshds. `up` also writes there:
#   ssh_config   Host entries for the bed's addresses (key, no known_hosts, batch mode)
#   bin/ssh, bin/scp   wrappers adding -F ssh_config; put bin/ first on PATH to use them
# Each sshd listens on its host's bed address only (port 22) and allows public-key login
# of the invoking user. Needs root (for namespaces), iproute2 and openssh-server
# (scripts/install-deps.sh --multi-host).
set -euo pipefail

usage() { sed -n '2,13p' "$0" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1; tag=$2
[[ $tag =~ ^[A-Za-z0-9]{1,6}$ ]] || { echo "ssh-bed: TAG must be 1-6 letters or digits" >&2; exit 2; }
dir=/tmp/heed-ssh-$tag

down() {
  if [ -d "$dir/run" ]; then
    for pidfile in "$dir"/run/*.pid; do
      [ -e "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
    done
  fi
  rm -rf "$dir"
}

case "$cmd" in
  up)
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    [ -x "$sshd" ] || { echo "ssh-bed: sshd not found (apt-get install openssh-server)" >&2; exit 1; }
    mapfile -t hosts < <(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^heed-$tag-h[0-9]+$" | sort -t h -k3 -n || true)
    (( ${#hosts[@]} > 0 )) || { echo "ssh-bed: no hosts for bed $tag; run scripts/netns-bed.sh up $tag N first" >&2; exit 1; }
    down
    trap 'down' ERR
    mkdir -p "$dir/run" "$dir/bin"
    chmod 700 "$dir"
    mkdir -p /run/sshd  # sshd's privilege-separation directory
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" -C "heed ssh-bed $tag host"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key" -C "heed ssh-bed $tag client"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    : > "$dir/ssh_config"
    for ns in "${hosts[@]}"; do
      addr=$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
      cat > "$dir/run/$ns.conf" <<EOF
ListenAddress $addr
Port 22
HostKey $dir/host_key
PidFile $dir/run/$ns.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
AcceptEnv HEED_*
Subsystem sftp internal-sftp
EOF
      nsenter --net="/var/run/netns/$ns" "$sshd" -f "$dir/run/$ns.conf" -E "$dir/run/$ns.log"
      cat >> "$dir/ssh_config" <<EOF
Host $addr
  User $(id -un)
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 10
EOF
      echo "$addr"
    done
    for tool in ssh scp; do
      printf '#!/bin/sh\nexec /usr/bin/%s -F %s "$@"\n' "$tool" "$dir/ssh_config" > "$dir/bin/$tool"
      chmod 755 "$dir/bin/$tool"
    done
    # Wait until every sshd accepts a login.
    for ns in "${hosts[@]}"; do
      addr=$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
      for _ in $(seq 100); do
        "$dir/bin/ssh" "$addr" true 2>/dev/null && continue 2
        sleep 0.1
      done
      echo "ssh-bed: sshd on $addr ($ns) does not accept logins; see $dir/run/$ns.log" >&2
      exit 1
    done
    trap - ERR
    ;;
  down)
    down
    ;;
  *) usage ;;
esac
