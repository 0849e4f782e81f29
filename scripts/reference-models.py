#!/usr/bin/env python3
"""Independent float64 references for the base and DIN models (issue 17).

Computes, from fixed weights and a fixed 4-sample batch, what one training step of the
DIN paper's Base model and of DIN (Zhou et al., KDD 2018) must produce:

- logits, probabilities and the mean binary cross-entropy;
- the gradient of the loss w.r.t. every dense parameter (in the flat order Heed keeps
  them on the servers) and every embedding row the batch reads;
- the Dice running statistics after the training step, and the inference-mode
  probabilities that use them;
- DIN's attention weights (raw scores or their softmax over real positions);
- the mini-batch aware L2 of §4.3 (eq. 4): row gradient + lambda / n_j * w_j.

The math is written from the paper's definitions in NumPy, with whole-matrix operations
and the textbook batch-normalisation backward for Dice; nothing is translated from the
Swift loops. The Swift code was read only for conventions: parameter layout (dense weight
(in x out) row-major, then bias, then the activation's alpha, layer by layer, attention MLP
before prediction MLP), input order user | target | pooled with target = item | category,
attention features [e, v, e - v, e * v], Dice epsilon 1e-8 and momentum 0.01 with biased
batch variance for normalising and the unbiased one for the running average, Dice
statistics of the attention MLP taken over real history positions only.

Every analytic gradient is checked here against central differences of the float64 loss
before the fixture is written (the script fails otherwise).

Usage: python3 scripts/reference-models.py [--check-only]
Writes Tests/HeedModelsTests/Fixtures/reference-models.json (layout: see FIXTURE_LAYOUT).
All weights are float32-representable, so the Swift Float model receives exactly the
values this script used.
"""

import json
import os
import sys

import numpy as np

FIXTURE_LAYOUT = """
{
  "config": {dim, hidden, attention_hidden, dice_epsilon, dice_momentum},
  "batch": {labels[B], user[B], item[B], category[B] (raw numeric ids),
            hist_items[B][L], hist_categories[B][L] (ids, padded positions carry real ids),
            mask[B][L] (1 = real)},
  "tables": {"<group>": {"ids": [U], "values": [U][D]}}   group 1 user, 2 item, 3 category;
            rows are in id order (the Swift test re-sorts them by feature key),
  "l2": {"lambda": x, "counts": {"<group>": {"<id>": n}}}  occurrences of each real key
            in the batch; keys absent from counts are not penalised,
  "cases": [{"name", "model" (base|din), "pooling" (sum|mean, base), "weighting"
            (raw|softmax, din), "activation" (dice|prelu),
            "dense": flat dense parameters, "statistics_before": flat Dice running stats,
            "expected": {"logits"[B], "probabilities"[B], "loss", "dense_gradient"[P],
                         "row_gradients": {"<group>": [U][D]} aligned with tables[group].ids,
                         "statistics_after", "inference_probabilities"[B],
                         "attention_weights"[B][L] (din, 0 at padding),
                         "l2_row_gradients": like row_gradients, "l2_penalty"}}]
}
"""

EPS = 1e-8
MOMENTUM = 0.01
DIM = 3
HIDDEN = [5, 4]
ATTENTION_HIDDEN = [4, 3]
LAMBDA = 0.75

# (user, item, category, label, history [(item, category)], padding [(item, category)]).
# Sample 2 has an empty history; padded positions carry real keys, some of them keys that
# are real elsewhere (item 3) and some that occur only at padding (item 9, category 5).
SAMPLES = [
    (1, 1, 1, 1.0, [(2, 2), (3, 3), (4, 1)], [(9, 5)]),
    (2, 2, 2, 0.0, [(1, 1)], [(9, 5), (3, 3), (9, 5)]),
    (3, 5, 2, 1.0, [], [(9, 5), (2, 2), (9, 5), (9, 5)]),
    (1, 3, 3, 0.0, [(5, 2), (2, 2), (1, 1), (3, 3)], []),
]
L = 4


def f32(a):
    """Rounds to float32-representable float64 values."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------- activations

def act_forward(kind, x, alpha, stats, training):
    """Returns (y, cache, new_stats). stats = (running_mean, running_var) for Dice."""
    if kind == "prelu":
        y = np.where(x > 0, x, alpha * x)
        return y, (x,), stats
    # Dice (paper eq. 9): p = sigmoid((x - E[x]) / sqrt(Var[x] + eps)); y = p x + (1 - p) alpha x.
    rm, rv = stats
    n = x.shape[0]
    if training and n > 0:
        mu = x.mean(axis=0)
        var = ((x - mu) ** 2).mean(axis=0)
        unbiased = var * n / (n - 1) if n > 1 else var
        new_stats = ((1 - MOMENTUM) * rm + MOMENTUM * mu, (1 - MOMENTUM) * rv + MOMENTUM * unbiased)
        batch = True
    else:
        mu, var, new_stats, batch = rm, rv, stats, False
    inv = 1.0 / np.sqrt(var + EPS)
    xh = (x - mu) * inv
    p = sigmoid(xh)
    y = p * x + (1 - p) * alpha * x
    return y, (x, xh, p, inv, batch), new_stats


def act_backward(kind, dy, alpha, cache):
    """Returns (dx, dalpha)."""
    if kind == "prelu":
        (x,) = cache
        return np.where(x > 0, dy, alpha * dy), np.where(x > 0, 0.0, dy * x).sum(axis=0)
    x, xh, p, inv, batch = cache
    dalpha = (dy * x * (1 - p)).sum(axis=0)
    dx = dy * (p + (1 - p) * alpha)
    g = dy * x * (1 - alpha) * p * (1 - p)  # dL/dxhat
    if batch:
        # Batch normalisation backward (Ioffe & Szegedy 2015): mean and variance depend on every row.
        dx = dx + inv * (g - g.mean(axis=0) - xh * (g * xh).mean(axis=0))
    else:
        dx = dx + inv * g
    return dx, dalpha


# ---------------------------------------------------------------------------- MLP

def mlp_shapes(sizes):
    shapes = []
    for l in range(len(sizes) - 1):
        shapes.append(("dense%d.weight" % l, (sizes[l], sizes[l + 1])))
        shapes.append(("dense%d.bias" % l, (sizes[l + 1],)))
        if l < len(sizes) - 2:
            shapes.append(("activation%d.alpha" % l, (sizes[l + 1],)))
    return shapes


def mlp_forward(p, prefix, sizes, kind, x, stats, training):
    """p: dict name -> array; stats: dict name -> (rm, rv). Returns (out, caches, new_stats)."""
    caches, new_stats, h = [], dict(stats), x
    last = len(sizes) - 2
    for l in range(len(sizes) - 1):
        W, b = p["%sdense%d.weight" % (prefix, l)], p["%sdense%d.bias" % (prefix, l)]
        z = h @ W + b
        if l == last:
            caches.append((h, None))
            h = z
        else:
            a = p["%sactivation%d.alpha" % (prefix, l)]
            key = "%sactivation%d" % (prefix, l)
            y, c, new_stats[key] = act_forward(kind, z, a, stats.get(key), training)
            caches.append((h, c))
            h = y
    return h, caches, new_stats


def mlp_backward(p, prefix, sizes, kind, dout, caches, grads):
    """Adds parameter gradients into grads; returns dx."""
    g = dout
    for l in reversed(range(len(sizes) - 1)):
        h, c = caches[l]
        if c is not None:
            a = p["%sactivation%d.alpha" % (prefix, l)]
            g, da = act_backward(kind, g, a, c)
            grads["%sactivation%d.alpha" % (prefix, l)] += da
        W = p["%sdense%d.weight" % (prefix, l)]
        grads["%sdense%d.weight" % (prefix, l)] += h.T @ g
        grads["%sdense%d.bias" % (prefix, l)] += g.sum(axis=0)
        g = g @ W.T
    return g


# ---------------------------------------------------------------------------- model

class Case:
    def __init__(self, name, model, pooling, weighting, activation):
        self.name, self.model, self.pooling, self.weighting, self.activation = name, model, pooling, weighting, activation
        e = 2 * DIM
        self.item_width = e
        self.mlp_sizes = [DIM + 2 * e] + HIDDEN + [1]
        self.att_sizes = [4 * e] + ATTENTION_HIDDEN + [1]
        self.shapes = []
        if model == "din":
            self.shapes += [("attention.mlp." + n, s) for n, s in mlp_shapes(self.att_sizes)]
        self.shapes += [("mlp." + n, s) for n, s in mlp_shapes(self.mlp_sizes)]
        if activation != "dice":
            self.stat_names = []
        else:
            self.stat_names = []
            if model == "din":
                self.stat_names += ["attention.mlp.activation%d" % l for l in range(len(ATTENTION_HIDDEN))]
            self.stat_names += ["mlp.activation%d" % l for l in range(len(HIDDEN))]


def gather(tables, index, group, ids):
    return np.stack([tables[group][index[group][i]] for i in ids])


def forward(case, p, tables, index, stats, training):
    """Returns (logits, state, new_stats). tables: group -> (U x D) array."""
    B = len(SAMPLES)
    e = case.item_width
    user = gather(tables, index, 1, [s[0] for s in SAMPLES])
    target = np.concatenate([gather(tables, index, 2, [s[1] for s in SAMPLES]),
                             gather(tables, index, 3, [s[2] for s in SAMPLES])], axis=1)  # (B, E)
    # Real behaviours only: list per sample of (E) vectors.
    hist = [[np.concatenate([tables[2][index[2][i]], tables[3][index[3][c]]]) for i, c in s[4]] for s in SAMPLES]
    state = {"user": user, "target": target, "hist": hist}
    new_stats = dict(stats)
    pooled = np.zeros((B, e))
    weights = np.zeros((B, L))
    if case.model == "base":
        for b in range(B):
            if hist[b]:
                pooled[b] = np.sum(hist[b], axis=0)
                if case.pooling == "mean":
                    pooled[b] /= len(hist[b])
    else:
        # Local activation unit: one MLP over [e, v, e - v, e * v] for every real position of
        # the batch (Dice statistics over those rows), then weighted sum pooling.
        owners = [b for b in range(B) for _ in hist[b]]
        E = np.array([x for b in range(B) for x in hist[b]])            # (N, E)
        V = target[owners]                                              # (N, E)
        F = np.concatenate([E, V, E - V, E * V], axis=1)                # (N, 4E)
        scores, att_caches, new_stats = mlp_forward(p, "attention.mlp.", case.att_sizes, case.activation, F, new_stats, training)
        scores = scores[:, 0]
        w = np.zeros(len(owners))
        start = 0
        for b in range(B):
            n = len(hist[b])
            s = scores[start:start + n]
            if case.weighting == "softmax" and n > 0:
                z = np.exp(s - s.max())
                w[start:start + n] = z / z.sum()
            else:
                w[start:start + n] = s
            weights[b, :n] = w[start:start + n]
            if n > 0:
                pooled[b] = w[start:start + n] @ E[start:start + n]
            start += n
        state.update(owners=owners, E=E, V=V, F=F, att_caches=att_caches, w=w)
    x = np.concatenate([user, target, pooled], axis=1)                   # (B, D + 2E)
    out, mlp_caches, new_stats = mlp_forward(p, "mlp.", case.mlp_sizes, case.activation, x, new_stats, training)
    state.update(pooled=pooled, weights=weights, mlp_caches=mlp_caches)
    return out[:, 0], state, new_stats


def bce(z, y):
    """Mean binary cross-entropy with logits, from its definition."""
    s = sigmoid(z)
    return float(np.mean(-(y * np.log(s) + (1 - y) * np.log(1 - s))))


def backward(case, p, tables, index, z, state, labels):
    B = len(SAMPLES)
    D, e = DIM, case.item_width
    grads = {n: np.zeros(s) for n, s in case.shapes}
    row_grads = {g: np.zeros_like(t) for g, t in tables.items()}
    dz = (sigmoid(z) - labels) / B
    dx = mlp_backward(p, "mlp.", case.mlp_sizes, case.activation, dz[:, None], state["mlp_caches"], grads)
    du, dv, dp = dx[:, :D], dx[:, D:D + e].copy(), dx[:, D + e:]
    dhist = [np.zeros((len(h), e)) for h in state["hist"]]
    if case.model == "base":
        for b in range(B):
            n = len(state["hist"][b])
            for j in range(n):
                dhist[b][j] += dp[b] / (n if case.pooling == "mean" else 1)
    else:
        owners, E, w = state["owners"], state["E"], state["w"]
        dE = w[:, None] * dp[owners]                                     # pooling, direct path
        dw = np.sum(dp[owners] * E, axis=1)
        ds = np.zeros_like(dw)
        start = 0
        for b in range(B):
            n = len(state["hist"][b])
            sl = slice(start, start + n)
            if case.weighting == "softmax":
                # Softmax Jacobian: ds = w * (dw - <w, dw>).
                ds[sl] = w[sl] * (dw[sl] - np.dot(w[sl], dw[sl]))
            else:
                ds[sl] = dw[sl]
            start += n
        dF = mlp_backward(p, "attention.mlp.", case.att_sizes, case.activation, ds[:, None], state["att_caches"], grads)
        a, bb, c, d = dF[:, :e], dF[:, e:2 * e], dF[:, 2 * e:3 * e], dF[:, 3 * e:]
        V = state["V"]
        dE += a + c + d * V
        dVrows = bb - c + d * E
        for k, b in enumerate(owners):
            dv[b] += dVrows[k]
        k = 0
        for b in range(B):
            for j in range(len(state["hist"][b])):
                dhist[b][j] += dE[k]
                k += 1
    for b, s in enumerate(SAMPLES):
        row_grads[1][index[1][s[0]]] += du[b]
        row_grads[2][index[2][s[1]]] += dv[b, :D]
        row_grads[3][index[3][s[2]]] += dv[b, D:]
        for j, (i, c) in enumerate(s[4]):
            row_grads[2][index[2][i]] += dhist[b][j][:D]
            row_grads[3][index[3][c]] += dhist[b][j][D:]
    return grads, row_grads


# ---------------------------------------------------------------------------- driver

def flatten(case, p):
    return np.concatenate([p[n].ravel() for n, _ in case.shapes]) if case.shapes else np.zeros(0)


def flat_stats(case, stats):
    out = []
    for n in case.stat_names:
        out += list(stats[n][0]) + list(stats[n][1])
    return out


def numeric_check(case, p, tables, index, stats, labels, grads, row_grads):
    """Central differences of the float64 loss against the analytic gradients."""
    h = 1e-6
    worst = 0.0

    def loss_with(pp, tt):
        z, _, _ = forward(case, pp, tt, index, stats, True)
        return bce(z, labels)

    for n, _ in case.shapes:
        for idx in np.ndindex(p[n].shape):
            plus = {k: v.copy() for k, v in p.items()}
            minus = {k: v.copy() for k, v in p.items()}
            plus[n][idx] += h
            minus[n][idx] -= h
            num = (loss_with(plus, tables) - loss_with(minus, tables)) / (2 * h)
            worst = max(worst, abs(num - grads[n][idx]) / max(1.0, abs(num)))
    for g in tables:
        for idx in np.ndindex(tables[g].shape):
            plus = {k: v.copy() for k, v in tables.items()}
            minus = {k: v.copy() for k, v in tables.items()}
            plus[g][idx] += h
            minus[g][idx] -= h
            num = (loss_with(p, plus) - loss_with(p, minus)) / (2 * h)
            worst = max(worst, abs(num - row_grads[g][idx]) / max(1.0, abs(num)))
    if worst > 1e-7:
        sys.exit("reference-models: %s analytic vs central differences differ by %.3g" % (case.name, worst))
    return worst


def main():
    rng = np.random.default_rng(20261206)
    ids = {1: sorted({s[0] for s in SAMPLES}),
           2: sorted({s[1] for s in SAMPLES} | {i for s in SAMPLES for i, _ in s[4] + s[5]}),
           3: sorted({s[2] for s in SAMPLES} | {c for s in SAMPLES for _, c in s[4] + s[5]})}
    index = {g: {i: k for k, i in enumerate(v)} for g, v in ids.items()}
    tables = {g: f32(rng.uniform(-0.9, 0.9, size=(len(v), DIM))) for g, v in ids.items()}
    labels = np.array([s[3] for s in SAMPLES])

    # n_j: occurrences of each real key of the batch (targets and real behaviours).
    counts = {1: {}, 2: {}, 3: {}}
    for s in SAMPLES:
        for g, i in [(1, s[0]), (2, s[1]), (3, s[2])] + [(2, i) for i, _ in s[4]] + [(3, c) for _, c in s[4]]:
            counts[g][i] = counts[g].get(i, 0) + 1

    cases = [Case("base_sum_dice", "base", "sum", None, "dice"),
             Case("base_mean_dice", "base", "mean", None, "dice"),
             Case("din_raw_dice", "din", None, "raw", "dice"),
             Case("din_softmax_dice", "din", None, "softmax", "dice"),
             Case("din_softmax_prelu", "din", None, "softmax", "prelu")]
    out_cases = []
    for case in cases:
        p = {}
        for n, s in case.shapes:
            if n.endswith("alpha"):
                p[n] = f32(rng.uniform(0.05, 0.6, size=s))
            elif n.endswith("bias"):
                p[n] = f32(rng.uniform(-0.3, 0.3, size=s))
            else:
                p[n] = f32(rng.normal(0, 0.7, size=s))
        stats = {}
        for n in case.stat_names:
            width = p[n.replace("activation", "dense") + ".bias"].shape[0]  # activation l follows dense l
            stats[n] = (f32(rng.uniform(-0.5, 0.5, size=width)), f32(rng.uniform(0.5, 2.0, size=width)))

        z, state, new_stats = forward(case, p, tables, index, stats, True)
        loss = bce(z, labels)
        grads, row_grads = backward(case, p, tables, index, z, state, labels)
        worst = numeric_check(case, p, tables, index, stats, labels, grads, row_grads)
        z_inf, _, _ = forward(case, p, tables, index, new_stats, False)

        l2 = {g: row_grads[g].copy() for g in tables}
        penalty = 0.0
        for g in tables:
            for i, k in index[g].items():
                n = counts[g].get(i)
                if n:
                    l2[g][k] += LAMBDA / n * tables[g][k]
                    penalty += LAMBDA / (2 * n) * float(tables[g][k] @ tables[g][k])

        expected = {
            "logits": list(z), "probabilities": list(sigmoid(z)), "loss": loss,
            "dense_gradient": list(np.concatenate([grads[n].ravel() for n, _ in case.shapes])),
            "row_gradients": {str(g): row_grads[g].tolist() for g in tables},
            "statistics_after": flat_stats(case, new_stats),
            "inference_probabilities": list(sigmoid(z_inf)),
            "l2_row_gradients": {str(g): l2[g].tolist() for g in tables},
            "l2_penalty": penalty,
        }
        if case.model == "din":
            expected["attention_weights"] = state["weights"].tolist()
        out_cases.append({
            "name": case.name, "model": case.model, "pooling": case.pooling, "weighting": case.weighting,
            "activation": case.activation, "dense": list(flatten(case, p)),
            "statistics_before": flat_stats(case, stats), "expected": expected,
        })
        print("%-18s loss %.6f  params %3d  central-difference agreement %.2g" % (case.name, loss, len(flatten(case, p)), worst))

    fixture = {
        "generator": "scripts/reference-models.py (NumPy %s, float64)" % np.__version__,
        "layout": FIXTURE_LAYOUT.strip(),
        "config": {"dim": DIM, "hidden": HIDDEN, "attention_hidden": ATTENTION_HIDDEN,
                   "dice_epsilon": EPS, "dice_momentum": MOMENTUM},
        "batch": {
            "labels": list(labels),
            "user": [s[0] for s in SAMPLES], "item": [s[1] for s in SAMPLES], "category": [s[2] for s in SAMPLES],
            "hist_items": [[i for i, _ in s[4] + s[5]] for s in SAMPLES],
            "hist_categories": [[c for _, c in s[4] + s[5]] for s in SAMPLES],
            "mask": [[1] * len(s[4]) + [0] * len(s[5]) for s in SAMPLES],
        },
        "tables": {str(g): {"ids": ids[g], "values": tables[g].tolist()} for g in tables},
        "l2": {"lambda": LAMBDA, "counts": {str(g): {str(i): n for i, n in c.items()} for g, c in counts.items()}},
        "cases": out_cases,
    }
    if "--check-only" in sys.argv:
        return
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "HeedModelsTests", "Fixtures", "reference-models.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(fixture, f, indent=1, default=float)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
