#!/usr/bin/env python3
"""Mean and sample sd over seeds of scripts/self-attention-ab.sh results.

Usage: scripts/self-attention-ab-summary.py OUT_DIR SEED...   (reads OUT_DIR/seed-N/compare.json)
A = mean pooling, B = attention pooling; B - A per seed, and in how many seeds its 95 %
paired-bootstrap interval excludes 0.
"""
import json
import statistics as st
import sys

out, seeds = sys.argv[1], sys.argv[2:]
reports = [json.load(open(f"{out}/seed-{s}/compare.json")) for s in seeds]


def spread(xs, fmt="%.4f"):
    sd = st.stdev(xs) if len(xs) > 1 else 0.0
    return (fmt + " (sd " + fmt.replace("+", "") + ")") % (st.mean(xs), sd)


print(f"{len(seeds)} seeds ({' '.join(seeds)}), A = mean pooling, B = attention pooling: mean (sample sd)")
for i, m in enumerate(reports[0]["metrics"]):
    rows = [r["metrics"][i] for r in reports]
    excl = sum(1 for r in rows if r["lower"] > 0 or r["upper"] < 0)
    print(f"{m['metric']:9s} A {spread([r['a'] for r in rows])}  B {spread([r['b'] for r in rows])}  "
          f"B-A {spread([r['difference'] for r in rows], '%+.4f')}  (interval excludes 0 in {excl} of {len(rows)} seeds)")
    for s, r in zip(seeds, rows):
        print(f"    seed {s}: A {r['a']:.4f}  B {r['b']:.4f}  B-A {r['difference']:+.4f} [{r['lower']:+.4f}, {r['upper']:+.4f}]")
for key in ("accuracy", "precision", "recall", "f1"):
    # precision/recall are null when nothing is predicted (or labelled) positive
    a = [r["thresholdA"][key] for r in reports if r["thresholdA"].get(key) is not None]
    b = [r["thresholdB"][key] for r in reports if r["thresholdB"].get(key) is not None]
    if not a or not b:
        print(f"{key:9s} undefined in every seed")
        continue
    print(f"{key:9s} A {spread(a, '%.3f')}  B {spread(b, '%.3f')}  (at 0.5)")
