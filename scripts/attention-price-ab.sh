#!/usr/bin/env bash
# Offline A/B of the attention-price model (source document 3) against its twin without price
# features, for both fusions (concat, product), plus base for RelaImpr: every run uses the
# same config and seed (a local cluster, cluster/attention-price-retail.toml by default), then
# `heed eval --compare` (paired bootstrap by user, 1,000 resamples, 95 % interval).
# Usage: scripts/attention-price-ab.sh PREPARED_DIR OUT_DIR [EPOCHS] [SEED] [CONFIG]
#        (extra heed train flags in HEED_FLAGS, e.g. --max-steps 2000; HEED_BIN = the heed binary)
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; out=$2; epochs=${3:-2}; seed=${4:-1}; config=${5:-cluster/attention-price-retail.toml}
bin=${HEED_BIN:-"$(swift build -c release --show-bin-path)/heed"}
mkdir -p "$out"
train() {  # name, flags...
  local name=$1; shift
  /usr/bin/time -f "$name: %e s" "$bin" train --config "$config" --data "$data" --epochs "$epochs" --seed "$seed" "$@" \
    ${HEED_FLAGS:-} --save-model "$out/$name" --metrics-out "$out/$name.json" >"$out/$name.log" 2>&1 \
    || { cat "$out/$name.log" >&2; exit 1; }
  tail -n 1 "$out/$name.log" >&2
}
train base --model base
train no-price --price-features false
train concat --price-fusion concat
train product --price-fusion product
for b in concat product; do
  "$bin" eval --compare "$out/no-price" "$out/$b" --out "$out/compare-$b.json"
done
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
test = {m: json.load(open(f"{d}/{m}.json"))["test"] for m in ("base", "no-price", "concat", "product")}
print("| model | AUC | GAUC | log loss | RelaImpr over base (AUC) |")
print("|---|---|---|---|---|")
for m, t in test.items():
    r = ((t["auc"] - 0.5) / (test["base"]["auc"] - 0.5) - 1) * 100
    print(f"| {m} | {t['auc']:.4f} | {t['gauc']:.4f} | {t['logLoss']:.4f} | {r:+.2f} % |")
PY
