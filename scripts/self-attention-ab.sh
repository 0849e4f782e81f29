#!/usr/bin/env bash
# Offline A/B of the self-attention model (source document 2) against its twin with mean
# pooling instead of attention weights: both trained by the same local cluster config and
# seed, then `heed eval --compare` (paired bootstrap by user, 1,000 resamples, 95 % interval).
# Usage: scripts/self-attention-ab.sh PREPARED_DIR OUT_DIR [EPOCHS] [SEED]   (extra heed train flags in HEED_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; out=$2; epochs=${3:-3}; seed=${4:-1}
bin="$(swift build -c release --show-bin-path)/heed"
mkdir -p "$out"
for pooling in mean attention; do
  /usr/bin/time -f "$pooling: %e s" "$bin" train --config cluster/sample-self-attention.toml --data "$data" --epochs "$epochs" \
    --seed "$seed" --pooling "$pooling" ${HEED_FLAGS:-} --save-model "$out/$pooling" --metrics-out "$out/$pooling.json" >"$out/$pooling.log" 2>&1 \
    || { cat "$out/$pooling.log" >&2; exit 1; }
  tail -n 1 "$out/$pooling.log" >&2
done
"$bin" eval --compare "$out/mean" "$out/attention" --out "$out/compare.json"
