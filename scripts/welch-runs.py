#!/usr/bin/env python3
"""Welch t intervals on the per-run means that `heed eval --compare A1,A2,... B1,B2,...` prints.

A cross-check of the two-level bootstrap of several runs per side (docs/next-item.md, section 8):
it uses only the run means, so it sees the seed spread but not the records' sampling. Reads the
compare output (a file or stdin) and prints, per metric of the "A's runs | B's runs" table,
B − A with its 95 % Welch interval. Standard library only (the t quantile by bisection).

    heed eval --compare A1,A2,A3 B1,B2,B3 > out/ab.txt && scripts/welch-runs.py out/ab.txt
"""
import math
import statistics
import sys


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom (regularised incomplete beta)."""
    x = df / (df + t * t)
    a, b = df / 2, 0.5

    def continued_fraction(a, b, x):
        c, d = 1.0, 1 - (a + b) * x / (a + 1)
        d = 1 / d
        h = d
        for m in range(1, 300):
            for numerator in (m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
                              -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m))):
                d = 1 / (1 + numerator * d)
                c = 1 + numerator / c
                h *= d * c
        return h

    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    if x < (a + 1) / (a + b + 2):
        tail = front * continued_fraction(a, b, x) / a
    else:
        tail = 1 - front * continued_fraction(b, a, 1 - x) / b
    return 1 - tail / 2 if t > 0 else tail / 2


def t_quantile(p, df):
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return lo


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    in_runs = False
    for line in text.splitlines():
        if line.startswith("| metric | A's runs"):
            in_runs = True
            continue
        if not in_runs or not line.startswith("| ") or line.startswith("|---"):
            continue
        _, metric, a, b, _ = [cell.strip() for cell in line.split("|")]
        runs_a = [float(v) for v in a.split(",")]
        runs_b = [float(v) for v in b.split(",")]
        if len(runs_a) + len(runs_b) < 3:
            sys.exit(f"{metric}: a Welch interval needs at least 3 runs in all")
        var_a = statistics.variance(runs_a) if len(runs_a) > 1 else 0.0
        var_b = statistics.variance(runs_b) if len(runs_b) > 1 else 0.0
        se2_a, se2_b = var_a / len(runs_a), var_b / len(runs_b)
        se = math.sqrt(se2_a + se2_b)
        difference = statistics.mean(runs_b) - statistics.mean(runs_a)
        if se == 0:
            print(f"{metric}: B - A {difference:+.4f}, no spread between runs")
            continue
        df = (se2_a + se2_b) ** 2 / sum(v * v / (n - 1) for v, n in ((se2_a, len(runs_a)), (se2_b, len(runs_b))) if n > 1)
        q = t_quantile(0.975, df)
        print(f"{metric}: B - A {difference:+.4f}, 95 % Welch [{difference - q * se:+.4f}, {difference + q * se:+.4f}], "
              f"t {difference / se:.1f}, df {df:.1f}, runs {len(runs_a)} / {len(runs_b)}")


if __name__ == "__main__":
    main()
