#!/usr/bin/env bash
# The test command: builds the `heed` binary (the end-to-end tests start it as real
# processes; `swift test` alone does not relink executables) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build
swift test "$@"
