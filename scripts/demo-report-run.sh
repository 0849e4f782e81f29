#!/usr/bin/env bash
# The real run behind docs/report.png, made before the roles wrote their own metrics log
# (issue 16, part B): the main job's config (cluster/sample-din.toml: DIN, 2 servers,
# 2 workers, async) on the bundled Amazon Beauty sample for EPOCHS epochs, a checkpoint
# about every epoch, worker 1 killed with SIGKILL once worker 0 is 40 % through, so the
# launcher restarts the cluster from the newest checkpoint. Memory is sampled from /proc;
# each epoch's valid and test AUC is `heed eval` of the checkpoint nearest the epoch's end.
# scripts/metrics-from-train-log.py turns it all into RUN_DIR/metrics, then
# scripts/render-report.sh draws it.
#   scripts/demo-report-run.sh RUN_DIR [EPOCHS] [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1 epochs=${2:-24} png=${3:-}
heed=.build/release/heed
rm -rf "$run" && mkdir -p "$run/eval"
"$heed" prepare --dataset amazon-beauty --input data/amazon-beauty-sample --out "$run/data" --shards 4 >/dev/null
start=$(date +%s.%N)
"$heed" train --config cluster/sample-din.toml --data "$run/data" --epochs "$epochs" \
  --checkpoint-dir "$run/ckpt" --checkpoint-every-steps 310 --checkpoint-keep 1000 \
  --metrics-out "$run/final.json" >"$run/train.out" 2>"$run/train.log" &
train=$!
python3 scripts/metrics-from-train-log.py sample "$train" "$run/memory.jsonl" &
sampler=$!

# Kill worker 1 once worker 0 has finished 40 % of the epochs.
victim_epoch=$(( epochs * 2 / 5 ))
until grep -q "worker 0: epoch $victim_epoch done" "$run/train.log" 2>/dev/null; do
  kill -0 "$train" 2>/dev/null || break
  sleep 0.2
done
for p in $(pgrep -P "$train" || true); do
  if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q " worker .*--rank 1"; then
    echo "demo-report-run: killing worker 1 (pid $p) after epoch $victim_epoch of worker 0"
    kill -9 "$p"
  fi
done
code=0; wait "$train" || code=$?
wait "$sampler" || true
echo "demo-report-run: heed train exited $code; $(head -1 "$run/train.out")"

# Global steps per epoch: the sum of the workers' steps per epoch, as they logged them.
per_epoch=$(grep -o "worker [0-9]*: [0-9]* shards, [0-9]* samples, [0-9]* steps per epoch" "$run/train.log" \
  | sort -u -k2,2 | awk '{s += $(NF-3)} END {print s}')
evals=()
for e in $(seq 1 "$epochs"); do
  target=$(( e * per_epoch ))
  best=$(ls -d "$run"/ckpt/step-* | awk -F'step-' -v t="$target" '{d = $2 - t; if (d < 0) d = -d; print d, $0}' \
    | sort -n | head -1)
  [ -n "$best" ] && [ "${best%% *}" -lt $(( per_epoch / 2 )) ] || continue
  for split in valid test; do
    "$heed" eval --model "${best#* }" --split "$split" --metrics-out "$run/eval/$e-$split.json" >/dev/null
    evals+=(--eval "$e:$split:$run/eval/$e-$split.json")
  done
done
python3 scripts/metrics-from-train-log.py convert --log "$run/train.log" --start "$start" --memory "$run/memory.jsonl" \
  --exit "$code" "${evals[@]}" --out "$run"
if [ -n "$png" ]; then scripts/render-report.sh "$run" "$png"; fi
