#!/usr/bin/env bash
# Mutation check (issue 17): applies each mutant of the core in a scratch copy of the tree,
# rebuilds incrementally and runs the tests that guard it; a mutant is killed when the
# build or the tests fail. Prints killed/total and names every survivor.
#
#   scripts/mutation-check.sh                 # every mutant
#   scripts/mutation-check.sh M01 M07 M12     # some of them
#   SCRATCH=/tmp/heed-mutants scripts/mutation-check.sh --list
#
# The scratch copy ($SCRATCH, default /tmp/heed-mutation) is a `git archive` of HEAD plus
# the working tree's uncommitted changes; its .build is kept between runs, so only the
# first run builds everything. Each mutant is an exact text replacement: if the original
# text does not occur exactly once the script stops with an error naming the mutant (the
# code moved; update the mutant). The list and what each mutant stands for are in
# docs/testing.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-/tmp/heed-mutation}
FLAGS=(-c release -Xswiftc -enable-testing)

# id @@ file @@ test filter (--filter regex) @@ original @@ replacement   (\n is a newline)
MUTANTS=$(cat <<'EOF'
M01 @@ Sources/HeedOptim/AdamConfig.swift @@ LazyAdamReferenceTests @@ let bias1 = 1 - Self.power(Double(beta1), t) @@ let bias1 = 1 + Self.power(Double(beta1), t)
M02 @@ Sources/HeedOptim/AdamConfig.swift @@ LazyAdamReferenceTests @@ let root2 = (1 - Self.power(Double(beta2), t)).squareRoot() @@ let root2 = (1 - Self.power(Double(beta1), t)).squareRoot()
M03 @@ Sources/HeedServer/EmbeddingTable.swift @@ LazyAdamReferenceTests @@ a.beta1, a.beta2, coefs.baseAddress @@ a.beta2, a.beta1, coefs.baseAddress
M04 @@ Sources/CKernels/kernels.c @@ LazyAdamReferenceTests @@ uint32_t t = old == UINT32_MAX ? old : old + 1;\n        const int64_t k = (int64_t)t - 1; @@ uint32_t t = old == UINT32_MAX ? old : old + 1;\n        const int64_t k = (int64_t)t;
M05 @@ Sources/HeedOptim/RowOptimizer.swift @@ LazyAdamReferenceTests @@ let c = k >= 0 && (k < n || adamStepsAreFinal) ? adamStep(at: min(k, n - 1)) : a.coefficients(step: step) @@ let c = adamStep(at: min(max(k, 0), n - 1))
M06 @@ Sources/HeedLayers/Dice.swift @@ ReferenceModelTests @@ let unbias = statRows > 1 ? T(statRows) / T(statRows - 1) : 1 @@ let unbias: T = 1
M07 @@ Sources/HeedLayers/Dice.swift @@ ReferenceModelTests @@ r[j] = 1 / T.sqrt(v + epsilon) @@ r[j] = 1 / T.sqrt(v)
M08 @@ Sources/HeedLayers/Dice.swift @@ ReferenceModelTests @@ + r[j] * (g - batchTerms * (s1[j] + sh[j] * s2[j])) @@ + r[j] * (g - batchTerms * s1[j])
M09 @@ Sources/HeedLayers/TargetAttention.swift @@ ReferenceModelTests @@ for n in start..<end { dLogits.data[n] += weights.data[positions[n]] * (dWeights[n] - dot) } @@ for n in start..<end { dLogits.data[n] += (dWeights[n] - dot) }
M10 @@ Sources/HeedLayers/TargetAttention.swift @@ ReferenceModelTests @@ f[2 * d + k] = e[k] - v[k] @@ f[2 * d + k] = v[k] - e[k]
M11 @@ Sources/HeedModels/BehaviourNetwork.swift @@ ReferenceModelTests @@ columnBlockForward(&input, target, column: userWidth)\n        columnBlockForward(&input, pooled, column: userWidth + itemWidth) @@ columnBlockForward(&input, pooled, column: userWidth)\n        columnBlockForward(&input, target, column: userWidth + itemWidth)
M12 @@ Sources/HeedModels/SequencePooling.swift @@ ReferenceModelTests @@ let inv = 1 / count @@ let inv = 1 / (count + 1)
M13 @@ Sources/HeedLayers/Losses.swift @@ ReferenceModelTests @@ if wantGrad { pg[i] += w * (sigmoid(z) - y) * invB } @@ if wantGrad { pg[i] += w * (sigmoid(z) - y) }
M14 @@ Sources/HeedWorker/MiniBatchRegularizer.swift @@ ReferenceModelTests @@ let scale = lambda / Float(n) @@ let scale = lambda / Float(n + 1)
M15 @@ Sources/HeedCore/FeatureKey.swift @@ FeatureKeyTests|FeatureGroupKeyTests @@ var h: UInt64 = 0xCBF2_9CE4_8422_2325 @@ var h: UInt64 = 0xCBF2_9CE4_8422_2326
M16 @@ Sources/HeedCore/FeatureKey.swift @@ FeatureKeyTests|FeatureGroupKeyTests @@ z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB @@ z = (z ^ (z >> 28)) &* 0x94D0_49BB_1331_11EB
M17 @@ Sources/HeedData/RawDataset.swift @@ FeatureGroupKeyTests @@ if c >= 65 && c <= 90 { c += 32 } @@ if c >= 65 && c < 90 { c += 32 }
M18 @@ Sources/HeedData/SampleBuilder.swift @@ DatasetCountTests|SampleBuilderTests @@ let from = base + max(0, k - o.maxLength), to = base + k @@ let from = base + max(0, k - o.maxLength), to = base + k + 1
M19 @@ Sources/HeedCore/ShardingPlan.swift @@ FeatureKeyTests|ShardingPlan|ParameterServerTests @@ self.slotOwners = (0..<slotCount).map { $0 % serverCount } @@ self.slotOwners = (0..<slotCount).map { ($0 + 1) % serverCount }
M20 @@ Sources/HeedTransport/DedupCache.swift @@ DedupCacheTests @@ case .done(let reply):\n            stats.duplicates += 1\n            return .answer(reply) @@ case .done:\n            stats.duplicates += 1\n            return .apply
M21 @@ Sources/HeedData/CiaoLoader.swift @@ LoaderCutTests @@ if d.itemCategory[ii] == FeatureGroup.missingRawID { d.itemCategory[ii] = c } @@ d.itemCategory[ii] = c
M22 @@ Sources/HeedData/RetailLoaders.swift @@ LoaderCutTests @@ if q == 0 { d.drop("zero_quantity"); return } @@ if q < 0 { d.drop("zero_quantity"); return }
M23 @@ Sources/HeedData/AmazonLoaders.swift @@ LoaderCutTests @@ if let last = attrs.last { d.itemCategory[ii] = last } @@ if let first = attrs.first { d.itemCategory[ii] = first }
M24 @@ Sources/HeedData/RetailLoaders.swift @@ LoaderCutTests @@ if f.ends[0] > f.starts[0] && line[f.starts[0]] == UInt8(ascii: "C") { d.drop("cancellation"); return } @@ if f.ends[0] > f.starts[0] && line[f.starts[0]] == UInt8(ascii: "X") { d.drop("cancellation"); return }
M25 @@ Sources/HeedBench/TransportBenchmark.swift @@ TransportBenchmarkTests @@ let reply = WireCodec.headerSize + 16 + 4 * keys * dim + tag @@ let reply = WireCodec.headerSize + 16 + 4 * keys * dim
M26 @@ Sources/HeedBench/SelfAttentionBench.swift @@ SelfAttentionBenchTests @@ layerTimes.append(t); rawTimes.append(r); ratios.append(r / t) @@ layerTimes.append(t); rawTimes.append(r); ratios.append(t / r)
EOF
)

if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "$MUTANTS" | awk -F' @@ ' '{print $1 "  " $2 "  " $3}'
    exit 0
fi

# The scratch copy gets the tree's tracked and new files; files whose bytes did not change
# are left alone (their times too), so the kept .build only rebuilds what changed.
mkdir -p "$SCRATCH"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) | python3 -c '
import os, shutil, sys
root, scratch = sys.argv[1], sys.argv[2]
for rel in sys.stdin.read().split("\0"):
    src, dst = os.path.join(root, rel), os.path.join(scratch, rel)
    if not rel or not os.path.isfile(src):
        continue
    if os.path.isfile(dst) and open(src, "rb").read() == open(dst, "rb").read():
        continue
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst)
' "$ROOT" "$SCRATCH"

mutate() {  # mutate FILE ORIGINAL REPLACEMENT: exact, single replacement or exit 3
    python3 - "$@" <<'PY'
import sys
path, old, new = sys.argv[1], sys.argv[2].replace("\\n", "\n"), sys.argv[3].replace("\\n", "\n")
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.stderr.write("mutant no longer applies: %r occurs %d times in %s\n" % (old, n, path))
    sys.exit(3)
open(path, "w").write(text.replace(old, new))
PY
}

cd "$SCRATCH"
echo "building the unmutated tree in $SCRATCH (first run: everything)"
swift build "${FLAGS[@]}" --build-tests >/tmp/heed-mutation-build.log 2>&1 || { echo "unmutated build failed: /tmp/heed-mutation-build.log"; exit 1; }

ORIG=$(mktemp)
trap 'rm -f "$ORIG"' EXIT
killed=0; total=0; survivors=()
while IFS= read -r line; do
    [[ -z "$line" ]] && continue
    IFS=$'\x1f' read -r id file filter old new < <(printf '%s\n' "$line" | sed 's/ @@ /\x1f/g')
    if (( $# > 0 )) && [[ ! " $* " == *" $id "* ]]; then continue; fi
    total=$((total + 1))
    cp -p "$file" "$ORIG"   # kept outside the tree: a stray file in a target would change the package
    if ! mutate "$file" "$old" "$new"; then
        cp -p "$ORIG" "$file"
        echo "$id: FAILED TO APPLY (update the mutant in scripts/mutation-check.sh)"; exit 3
    fi
    if ! swift build "${FLAGS[@]}" --build-tests >"/tmp/heed-mutation-$id.log" 2>&1; then
        echo "$id killed (does not compile)  $file"; killed=$((killed + 1))
    elif swift test "${FLAGS[@]}" --skip-build --filter "$filter" >>"/tmp/heed-mutation-$id.log" 2>&1; then
        echo "$id SURVIVED  $file  (tests: $filter)"; survivors+=("$id")
    else
        echo "$id killed  $file  (tests: $filter)"; killed=$((killed + 1))
    fi
    cp -p "$ORIG" "$file"
done <<< "$MUTANTS"

echo "mutation score: $killed/$total killed"
if (( ${#survivors[@]} > 0 )); then echo "survivors: ${survivors[*]}"; exit 1; fi
