#!/usr/bin/env bash
# Prepares every committed cut, every bundled sample and (when ../shared/data exists) every
# shared dataset with two heed binaries, OLD in memory and NEW in memory, within the default
# budget and with a small budget that forces spilled runs, and says whether the datasets are
# identical byte for byte. Used for issue 18 against the build before the memory budget:
#   scripts/prepare-equivalence.sh /path/to/old/heed .build/release/heed
set -uo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: prepare-equivalence.sh OLD_HEED NEW_HEED}; NEW=${2:?usage: prepare-equivalence.sh OLD_HEED NEW_HEED}
R=$(mktemp -d); trap 'rm -rf "$R"' EXIT
fail=0
run() { # name small-budget dataset input [extra flags...]
  local name=$1 small=$2 ds=$3 in=$4; shift 4
  "$OLD" prepare --dataset "$ds" --input "$in" --out "$R/$name-old" --shards 3 --max-len 9 "$@" >/dev/null 2>&1 || { echo "$name: old binary failed"; fail=1; return; }
  for b in unbounded 4G "$small"; do
    if ! "$NEW" prepare --dataset "$ds" --input "$in" --out "$R/$name-$b" --shards 3 --max-len 9 --memory-budget "$b" "$@" > "$R/$name-$b.log" 2>&1; then
      echo "$name --memory-budget $b: new binary failed"; fail=1; continue
    fi
    runs=$(grep -o "sorted them in [0-9]* runs" "$R/$name-$b.log")
    if diff -r "$R/$name-old" "$R/$name-$b" >/dev/null; then echo "$name --memory-budget $b: identical ${runs}"; else echo "$name --memory-budget $b: DIFFERS"; fail=1; fi
  done
  rm -rf "$R/$name"-*/
}
run beauty-ctr 64b amazon-beauty data/amazon-beauty-sample
run beauty-seq 64b amazon-beauty data/amazon-beauty-sample --protocol seq
run grocery-seq 64b amazon-grocery data/amazon-grocery-sample --protocol seq
run taobao-time 64b taobao data/taobao-userbehavior-sample --split time
run generic 64b generic data/generic-online-retail-sample
run generic-v1 64b generic data/generic-online-retail-sample --shard-format 1
for c in amazon-beauty amazon-sports amazon-toys amazon-video-games amazon-grocery taobao ciao uci-retail completejourney; do
  run "cut-$c" 64b "$c" "data/cuts/$c"
done
S=../shared/data
if [ -d "$S" ]; then
  run beauty 1M amazon-beauty $S/amazon2014-beauty-sports-toys-s3rec
  run sports-seq 1M amazon-sports $S/amazon2014-beauty-sports-toys-s3rec --protocol seq
  run toys 1M amazon-toys $S/amazon2014-beauty-sports-toys-s3rec
  run video-seq 1M amazon-video-games $S/amazon2014-video-games-sasrec --protocol seq
  run grocery 1M amazon-grocery $S/amazon2014-grocery-rechorus
  run taobao 1M taobao $S/taobao-userbehavior-sample --split time
  run ciao 1M ciao $S/ciao-trust
  run uci 1M uci-retail $S/uci-online-retail
  run cj 1M completejourney $S/completejourney-8451 --split time
fi
[ $fail = 0 ] && echo "all identical" || { echo "some differ"; exit 1; }
