#!/usr/bin/env bash
# The run behind docs/report.png: the main job's config (cluster/sample-din.toml: DIN,
# 2 servers, 2 workers, async) on the bundled Amazon Beauty sample for EPOCHS epochs, a
# checkpoint about every epoch, and worker 1 killed with SIGKILL once worker 0 has done
# 40 % of the epochs, so the launcher restarts the cluster from the newest checkpoint. The
# roles write RUN_DIR/metrics themselves; scripts/render-report.sh draws it into OUT.png.
#   scripts/demo-report-run.sh RUN_DIR [EPOCHS] [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 RUN_DIR [EPOCHS] [OUT.png]" >&2; exit 2; }
run=$1 epochs=${2:-24} png=${3:-}
heed=.build/release/heed
rm -rf "$run" && mkdir -p "$run"
"$heed" prepare --dataset amazon-beauty --input data/amazon-beauty-sample --out "$run/data" --shards 4 >/dev/null
"$heed" train --config cluster/sample-din.toml --data "$run/data" --epochs "$epochs" --run-dir "$run" \
  --checkpoint-dir "$run/ckpt" --checkpoint-every-steps 310 --checkpoint-keep 2 >"$run/train.out" 2>"$run/train.log" &
train=$!

victim_epoch=$(( epochs * 2 / 5 ))
until grep -q "worker 0: epoch $victim_epoch done" "$run/train.log" 2>/dev/null; do
  kill -0 "$train" 2>/dev/null || break
  sleep 0.2
done
for p in $(pgrep -P "$train" || true); do
  if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q " worker .*--rank 1 "; then
    echo "demo-report-run: killing worker 1 (pid $p) after epoch $victim_epoch of worker 0"
    kill -9 "$p"
  fi
done
code=0; wait "$train" || code=$?
echo "demo-report-run: heed train exited $code: $(head -1 "$run/train.out")"
if [ -n "$png" ]; then scripts/render-report.sh "$run" "$png"; fi
