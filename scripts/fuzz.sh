#!/usr/bin/env bash
# Fuzzes the wire decoder and the parameter-file reader for a bounded time with the seeded
# mutation loop of `heed bench fuzz`; prints inputs tried, crashes, findings and hangs.
#   scripts/fuzz.sh [SECONDS=60] [FIRST_SEED=1]
# Each round runs 1M inputs with the next seed in its own process, so a crash is caught,
# reported with its seed, and the next round goes on.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-60}; seed=${2:-1}
bin="$(swift build -c release --show-bin-path)/heed"
[ -x "$bin" ] || swift build -c release
end=$(( $(date +%s) + budget ))
inputs=0; crashes=0; findings=0; hangs=0; rounds=0
while [ "$(date +%s)" -lt "$end" ]; do
  log=$(mktemp)
  if "$bin" bench fuzz --inputs 1000000 --seed "$seed" > "$log" 2>&1; then status=0; else status=$?; fi
  line=$(grep '^inputs ' "$log" || true)
  if [ -n "$line" ]; then
    inputs=$(( inputs + $(echo "$line" | awk '{print $2}') ))
    findings=$(( findings + $(echo "$line" | sed 's/.*findings \([0-9]*\).*/\1/') ))
    hangs=$(( hangs + $(echo "$line" | sed 's/.*hangs \([0-9]*\).*/\1/') ))
  fi
  if [ -z "$line" ] || { [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; }; then
    crashes=$(( crashes + 1 ))
    echo "fuzz: seed $seed crashed (status $status); log kept at $log" >&2
  else
    grep -E '^(finding|hang):' "$log" || true
    rm -f "$log"
  fi
  seed=$(( seed + 1 )); rounds=$(( rounds + 1 ))
done
echo "fuzz: $rounds rounds, inputs $inputs, crashes $crashes, findings $findings, hangs $hangs"
[ "$crashes" -eq 0 ] && [ "$findings" -eq 0 ] && [ "$hangs" -eq 0 ]
