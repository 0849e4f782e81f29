#!/usr/bin/env bash
# Sets up Heed on a fresh Debian machine: system packages, then a release build.
# Idempotent; prints where the binary is.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product heed
bin="$(swift build -c release --show-bin-path)/heed"
echo "setup: heed is at $bin"
