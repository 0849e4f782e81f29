#!/usr/bin/env bash
# Installs the Debian packages Heed links against. Idempotent: does nothing when present.
#   --multi-host  also what the multi-host test bed needs (network namespaces, a real
#                 Slurm cluster, an sshd per host: iproute2, util-linux's nsenter,
#                 slurm-wlm, munge, openssh-server and -client); CI uses it.
set -euo pipefail
packages=(libnng-dev libopenblas-dev zlib1g-dev pkg-config)
if [ "${1:-}" = "--multi-host" ]; then packages+=(iproute2 util-linux slurm-wlm munge openssh-server openssh-client); fi
# --report (any position): headless Chromium for scripts/render-report.sh; CI does not need it.
for a in "$@"; do if [ "$a" = "--report" ]; then packages+=(chromium); fi; done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all of ${packages[*]} present"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
