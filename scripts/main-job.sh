#!/usr/bin/env bash
# The main job on bundled sample data. Until `heed train` lands it runs the layer
# benchmark, which exercises the release build end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(swift build -c release --show-bin-path)/heed"
"$bin" --help
