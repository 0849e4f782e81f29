#!/usr/bin/env bash
# DIN's RelaImpr over the base model (Zhou et al. 2018, eq. 9):
#   RelaImpr = ((AUC(din) - 0.5) / (AUC(base) - 0.5) - 1) * 100 %
# on a prepared dataset, over several seeds, with the main job's model sizes.
# Usage: scripts/din-vs-base.sh PREPARED_DIR [EPOCHS] [SEEDS...]   (extra heed train flags in HEED_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; epochs=${2:-2}; shift $(( $# >= 2 ? 2 : 1 )); seeds=("${@:-1 2 3}")
bin="$(swift build -c release --show-bin-path)/heed"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf "%-6s %-5s %-8s %-8s %-8s\n" model seed AUC GAUC logloss
for seed in ${seeds[@]}; do
  for model in base din; do
    "$bin" train --config cluster/sample-din.toml --data "$data" --model "$model" --epochs "$epochs" --seed "$seed" \
      ${HEED_FLAGS:-} --metrics-out "$tmp/$model-$seed.json" >/dev/null 2>"$tmp/log"  || { cat "$tmp/log" >&2; exit 1; }
    python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['test']; print('%-6s %-5s %.4f   %.4f   %.4f' % (sys.argv[2], sys.argv[3], t['auc'], t['gauc'], t['logLoss']))" "$tmp/$model-$seed.json" "$model" "$seed"
  done
done
python3 - "$tmp" <<'PY'
import json, sys, glob, statistics as st
d = sys.argv[1]
def vals(model, key): return [json.load(open(f))['test'][key] for f in sorted(glob.glob(f"{d}/{model}-*.json"))]
for key, name in (("auc", "AUC"), ("gauc", "GAUC")):
    b, n = vals("base", key), vals("din", key)
    r = [((x - 0.5) / (y - 0.5) - 1) * 100 for x, y in zip(n, b)]
    sd = st.stdev(r) if len(r) > 1 else 0.0
    print(f"{name}: base {st.mean(b):.4f}  din {st.mean(n):.4f}  RelaImpr {st.mean(r):+.2f} % (per-seed sd {sd:.2f}, {len(r)} seeds)")
PY
