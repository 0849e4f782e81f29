#!/usr/bin/env bash
# Offline A/B of the long-term-interest model (source document 1) on Ciao against its twins
# without social neighbours and without tags, and against base: each trained by the same local
# cluster config (cluster/long-term-interest-ciao.toml: 2 servers + 2 workers, sync) and seed,
# then `heed eval --compare` (paired bootstrap by user, 1,000 resamples, 95 % interval).
# Usage: scripts/long-term-interest-ab.sh PREPARED_DIR OUT_DIR [EPOCHS] [SEED]
#   PREPARED_DIR from: heed prepare --dataset ciao --input /work/shared/data/ciao-trust --out out/ciao --shards 2
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; out=$2; epochs=${3:-2}; seed=${4:-1}
bin="$(swift build -c release --show-bin-path)/heed"
mkdir -p "$out"
run() {
  local name=$1; shift
  /usr/bin/time -f "$name: %e s" "$bin" train --config cluster/long-term-interest-ciao.toml --data "$data" --epochs "$epochs" \
    --seed "$seed" "$@" --save-model "$out/$name" --metrics-out "$out/$name.json" >"$out/$name.log" 2>&1 \
    || { cat "$out/$name.log" >&2; exit 1; }
  tail -n 1 "$out/$name.log" >&2
}
run full
run no-social --use-neighbors false
run no-tags --use-tags false
run base --model base
run full-self-attention --encoder self-attention
for twin in no-social no-tags base full-self-attention; do
  "$bin" eval --compare "$out/$twin" "$out/full" --out "$out/compare-$twin.json" | tee "$out/compare-$twin.md"
done
