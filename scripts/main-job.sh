#!/usr/bin/env bash
# The main job on the bundled real sample: prepare the Amazon Beauty cut (data/), then
# train DIN on a local cluster of 2 parameter servers and 2 workers (separate
# processes over ipc), print throughput and test AUC / GAUC / log loss, save the trained
# model, and evaluate the saved model again with `heed eval` (the same figures).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(swift build -c release --show-bin-path)/heed"
out=${HEED_OUT:-out}
"$bin" prepare --dataset amazon-beauty --input data/amazon-beauty-sample --out "$out/prepared/beauty-sample" --shards 4 --overwrite
"$bin" train --config cluster/sample-din.toml --data "$out/prepared/beauty-sample" --metrics-out "$out/beauty-sample-din.json" \
  --save-model "$out/beauty-sample-din"
"$bin" eval --model "$out/beauty-sample-din"
