#!/usr/bin/env bash
# The test command. Tests train real models on real data and start the built `heed`
# binary as real processes, so everything is built optimised (release, with testing
# enabled for @testable imports) and the binary is built before the tests run
# (`swift test` alone does not relink executables).
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-c release -Xswiftc -enable-testing)
swift build "${flags[@]}"
swift test "${flags[@]}" "$@"
