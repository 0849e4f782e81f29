#!/usr/bin/env bash
# Offline A/B of the self-attention model (source document 2) against its twin with mean
# pooling instead of attention weights: both trained by the same local cluster config and
# seed, then `heed eval --compare` (paired bootstrap by user, 1,000 resamples, 95 % interval).
# Usage: scripts/self-attention-ab.sh PREPARED_DIR OUT_DIR [EPOCHS] [SEED...]   (extra heed train flags in HEED_FLAGS)
# Each seed goes to OUT_DIR/seed-N/{mean,attention,compare.json}; with more than one seed the
# last lines give each twin's and the difference's mean and sample sd over the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; out=$2; epochs=${3:-3}; shift $(( $# >= 3 ? 3 : $# )); seeds=("${@:-1}")
bin="$(swift build -c release --show-bin-path)/heed"
for seed in "${seeds[@]}"; do
  dir="$out/seed-$seed"
  mkdir -p "$dir"
  for pooling in mean attention; do
    /usr/bin/time -f "seed $seed $pooling: %e s" "$bin" train --config cluster/sample-self-attention.toml --data "$data" \
      --epochs "$epochs" --seed "$seed" --pooling "$pooling" ${HEED_FLAGS:-} --save-model "$dir/$pooling" \
      --metrics-out "$dir/$pooling.json" >"$dir/$pooling.log" 2>&1 || { cat "$dir/$pooling.log" >&2; exit 1; }
    tail -n 1 "$dir/$pooling.log" >&2
  done
  "$bin" eval --compare "$dir/mean" "$dir/attention" --out "$dir/compare.json"
done
(( ${#seeds[@]} > 1 )) || exit 0
scripts/self-attention-ab-summary.py "$out" "${seeds[@]}"
