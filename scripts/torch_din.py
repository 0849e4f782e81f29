#!/usr/bin/env python3
"""DIN in PyTorch (CPU), the speed baseline of `heed bench din` (docs/performance.md).

Trains the same network as `heed train --model din` on the same prepared shards, read
directly from Heed's binary format (docs/data-format.md §5): item and category embeddings
(EmbeddingDim each, one table per feature group, rows ~ N(0, 0.01²)), the local activation
unit (an MLP over [e, v, e - v, e * v], hidden 80-40, Dice, linear output) pooling the
behaviours with raw or softmax weights, an MLP over [target ‖ pooled] (200-80, Dice) to one
logit, mean binary cross-entropy, Glorot-normal weights, SparseAdam for the embeddings and
Adam for the dense weights (lr 1e-3, PyTorch's betas and eps), batch 256, one epoch over
the shuffled train split, then AUC on the test split.

Variants (--variant, comma-separated):
  padded    every history padded to max-len; the attention MLP runs on all B·L positions
            (Dice statistics over the real positions only, padded weights masked out);
  realpos   only real positions enter the attention MLP: gather by mask, segment softmax
            with scatter_reduce/index_add, weighted pooling with index_add;
  realpos-bag  the same with the weighted pooling as F.embedding_bag(per_sample_weights),
            i.e. EmbeddingBags over the real positions (not in the default list: compile
            fails on it, and eager it is no faster);
  compiled  realpos under torch.compile(dynamic=True); timed after its first epoch (the
            compile epoch), whose test AUC is reported.

Prints one JSON object per variant on stdout:
  {"variant", "threads", "samples_per_s", "samples_per_cpu_s", "timed_samples", "seconds",
   "cpu_seconds", "test_auc", "epochs", "torch"}
samples_per_cpu_s divides by the process's CPU time (all its threads) in the timed loop: on a
shared machine it is the steadier figure; samples_per_s is wall time.
Exit status 3 (and a message on stderr) when torch cannot be imported.
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib

try:
    import numpy as np
except ImportError:  # pragma: no cover
    print("torch_din.py: numpy is not importable by " + sys.executable, file=sys.stderr)
    sys.exit(3)
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch_din.py: torch is not importable by " + sys.executable + " (pip install torch)", file=sys.stderr)
    sys.exit(3)

# ---------------------------------------------------------------------------------------
# Heed shard reader (docs/data-format.md §5)

SECTION_USER, SECTION_ITEM, SECTION_TIME, SECTION_LABELS, SECTION_DENSE, SECTION_OFFSETS, SECTION_KEYS = 1, 2, 3, 4, 5, 6, 7


class Shard:
    """One `.heeds` file: header checked (magic, version, header CRC), sections mapped."""

    def __init__(self, path):
        self.path = path
        data = np.memmap(path, dtype=np.uint8, mode="r")
        raw = bytes(data[:64])
        if raw[:8] != b"HEEDSMPL":
            raise SystemExit(f"{path}: not a Heed sample shard (bad magic)")
        version, header_bytes, count, payload_bytes, _payload_crc, schema_bytes, sections, header_crc = struct.unpack_from("<IIQQIIII", raw, 8)
        if version != 1:
            raise SystemExit(f"{path}: unsupported shard version {version}")
        header = bytearray(data[:header_bytes])
        header[44:48] = b"\0\0\0\0"
        if zlib.crc32(bytes(header)) != header_crc:
            raise SystemExit(f"{path}: header CRC mismatch")
        table = [struct.unpack_from("<IIQQQ", header, 64 + 32 * i) for i in range(sections)]
        schema_start = 64 + 32 * sections
        self.schema = json.loads(bytes(header[schema_start:schema_start + schema_bytes]).decode())
        self.count = count
        self.slot_names = [s["name"] for s in self.schema["slots"]]
        self.labels = None
        self.offsets, self.keys = {}, {}
        for kind, slot, offset, length, _ in table:
            if kind == SECTION_LABELS:
                self.labels = np.frombuffer(data, dtype="<f4", count=length // 4, offset=offset).reshape(count, -1)
            elif kind == SECTION_OFFSETS:
                self.offsets[self.slot_names[slot]] = np.frombuffer(data, dtype="<u8", count=length // 8, offset=offset)
            elif kind == SECTION_KEYS:
                self.keys[self.slot_names[slot]] = np.frombuffer(data, dtype="<u8", count=length // 8, offset=offset)

    def single(self, name):
        """(count) the keys of a single slot."""
        return self.keys[name]

    def sequence(self, name, length):
        """(count × length) left-aligned keys of a sequence slot, 0 = padding; (count) lengths."""
        off = self.offsets[name].astype(np.int64)
        lens = np.diff(off)
        out = np.zeros((self.count, length), dtype=np.uint64)
        pos = np.arange(length)[None, :]
        mask = pos < lens[:, None]
        out[mask] = self.keys[name][: off[-1]]
        return out, lens


def load_split(directory, split):
    manifest = json.load(open(os.path.join(directory, "manifest.json")))
    return manifest, [Shard(os.path.join(directory, f["file"])) for f in manifest[split]]


def encode(keys, vocab):
    """Heed feature keys → dense row ids (1…, 0 = padding/unknown) by binary search in vocab."""
    idx = np.searchsorted(vocab, keys)
    idx = np.minimum(idx, len(vocab) - 1)
    found = vocab[idx] == keys
    return np.where(found & (keys != 0), idx + 1, 0).astype(np.int64)


def load(directory, max_len):
    manifest, train = load_split(directory, "train")
    _, test = load_split(directory, "test")
    names = set(train[0].slot_names)
    has_cat = "category" in names and "hist_categories" in names
    slot_len = {s["name"]: s["maxLength"] for s in manifest["schema"]["slots"]}
    L = min(max_len, slot_len["hist_items"]) if max_len else slot_len["hist_items"]

    def arrays(shards):
        item = np.concatenate([s.single("item") for s in shards])
        hist, lens = zip(*[s.sequence("hist_items", slot_len["hist_items"]) for s in shards])
        hist, lens = np.concatenate(hist), np.concatenate(lens)
        out = {"item": item, "hist": hist, "len": lens, "label": np.concatenate([s.labels[:, 0] for s in shards]).astype(np.float32)}
        if has_cat:
            out["cat"] = np.concatenate([s.single("category") for s in shards])
            out["hist_cat"] = np.concatenate([s.sequence("hist_categories", slot_len["hist_categories"])[0] for s in shards])
        return out

    tr, te = arrays(train), arrays(test)
    item_vocab = np.unique(np.concatenate([tr["item"], tr["hist"].ravel(), te["item"], te["hist"].ravel()]))
    item_vocab = item_vocab[item_vocab != 0]
    cat_vocab = None
    if has_cat:
        cat_vocab = np.unique(np.concatenate([tr["cat"], tr["hist_cat"].ravel(), te["cat"], te["hist_cat"].ravel()]))
        cat_vocab = cat_vocab[cat_vocab != 0]

    def tensors(a):
        # Heed keeps the most recent L behaviours (prepared with max-len = the slot length).
        full = a["hist"].shape[1]
        start = np.maximum(a["len"] - L, 0) if L < full else np.zeros_like(a["len"])
        rows = np.arange(len(a["len"]))[:, None]
        cols = start[:, None] + np.arange(L)[None, :]
        cols = np.minimum(cols, full - 1)
        lens = np.minimum(a["len"], L)
        mask = np.arange(L)[None, :] < lens[:, None]
        t = {
            "item": torch.from_numpy(encode(a["item"], item_vocab)),
            "hist": torch.from_numpy(np.where(mask, encode(a["hist"][rows, cols], item_vocab), 0)),
            "mask": torch.from_numpy(mask),
            "label": torch.from_numpy(a["label"]),
        }
        if has_cat:
            t["cat"] = torch.from_numpy(encode(a["cat"], cat_vocab))
            t["hist_cat"] = torch.from_numpy(np.where(mask, encode(a["hist_cat"][rows, cols], cat_vocab), 0))
        return t

    return tensors(tr), tensors(te), len(item_vocab) + 1, (len(cat_vocab) + 1 if has_cat else 0)


# ---------------------------------------------------------------------------------------
# Model


class Dice(nn.Module):
    """DIN's Dice (eq. 9): x·(α + (1 − α)·sigmoid((x − E[x]) / sqrt(Var[x] + ε))), batch
    statistics in training (biased variance), running averages (momentum 0.01, unbiased
    variance) in evaluation, α initialised to 0 — as Heed's `diceForward`."""

    def __init__(self, features, momentum=0.01, eps=1e-8):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.momentum, self.eps = momentum, eps

    def forward(self, x, row_mask=None):
        if self.training:
            if row_mask is None:
                mean = x.mean(0)
                var = x.var(0, unbiased=False)
                n = x.shape[0]
            else:
                m = row_mask.unsqueeze(1).to(x.dtype)
                n = m.sum()
                mean = (x * m).sum(0) / n
                var = (((x - mean) ** 2) * m).sum(0) / n
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach() * n / max(n - 1, 1))
        else:
            mean, var = self.running_mean, self.running_var
        p = torch.sigmoid((x - mean) * torch.rsqrt(var + self.eps))
        return x * (self.alpha + (1 - self.alpha) * p)


class MLP(nn.Module):
    """Dense layers with Dice after each hidden one; Glorot-normal weights, zero biases."""

    def __init__(self, sizes):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for lin in self.linears:
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.dice = nn.ModuleList(Dice(b) for b in sizes[1:-1])

    def forward(self, x, row_mask=None):
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < len(self.dice):
                x = self.dice[i](x, row_mask)
        return x


class DIN(nn.Module):
    def __init__(self, n_items, n_cats, dim, hidden, attention_hidden, weighting, variant, bag_pooling=False):
        super().__init__()
        self.item_emb = nn.Embedding(n_items, dim, sparse=True)
        self.cat_emb = nn.Embedding(n_cats, dim, sparse=True) if n_cats else None
        for e in (self.item_emb, self.cat_emb):
            if e is not None:
                nn.init.normal_(e.weight, std=0.01)
        width = dim * (2 if n_cats else 1)
        self.attention = MLP([4 * width] + attention_hidden + [1])
        self.mlp = MLP([2 * width] + hidden + [1])
        self.weighting, self.variant = weighting, variant
        # F.embedding_bag with per_sample_weights fails under torch.compile(dynamic=True)
        # (inductor, torch 2.15: a broadcast error); index_add works in both modes.
        self.bag_pooling = bag_pooling

    def embed(self, item, cat):
        e = self.item_emb(item)
        return torch.cat([e, self.cat_emb(cat)], -1) if self.cat_emb is not None else e

    def forward(self, item, cat, hist, hist_cat, mask):
        v = self.embed(item, cat)                                  # (B × E)
        if self.variant == "padded":
            pooled = self.pool_padded(v, hist, hist_cat, mask)
        else:
            pooled = self.pool_real(v, hist, hist_cat, mask)
        return self.mlp(torch.cat([v, pooled], -1)).squeeze(-1)

    def pool_padded(self, v, hist, hist_cat, mask):
        b, l = hist.shape
        e = self.embed(hist, hist_cat)                             # (B × L × E)
        vv = v.unsqueeze(1).expand_as(e)
        feats = torch.cat([e, vv, e - vv, e * vv], -1).reshape(b * l, -1)
        scores = self.attention(feats, mask.reshape(-1)).reshape(b, l)
        if self.weighting == "softmax":
            w = torch.softmax(scores.masked_fill(~mask, float("-inf")), 1).nan_to_num(0.0)
        else:
            w = scores * mask
        return (w.unsqueeze(-1) * e).sum(1)

    def pool_real(self, v, hist, hist_cat, mask):
        b = hist.shape[0]
        seg = mask.nonzero()[:, 0]                                 # (N) sample of each real position
        flat = mask.reshape(-1)
        items = hist.reshape(-1)[flat]
        cats = hist_cat.reshape(-1)[flat] if self.cat_emb is not None else None
        e = self.embed(items, cats)                                # (N × E)
        vv = v[seg]
        feats = torch.cat([e, vv, e - vv, e * vv], -1)
        scores = self.attention(feats).squeeze(-1)                 # (N)
        if self.weighting == "softmax":
            top = torch.full((b,), float("-inf")).scatter_reduce(0, seg, scores, "amax", include_self=True)
            ex = torch.exp(scores - top[seg])
            total = torch.zeros(b).index_add(0, seg, ex)
            w = ex / total[seg]
        else:
            w = scores
        if self.bag_pooling:
            # Weighted sum per sample as EmbeddingBags over the real positions (per-sample weights).
            offsets = torch.cumsum(mask.sum(1), 0) - mask.sum(1)
            pooled = F.embedding_bag(items, self.item_emb.weight, offsets, mode="sum", per_sample_weights=w, sparse=True)
            if self.cat_emb is not None:
                pooled = torch.cat([pooled, F.embedding_bag(cats, self.cat_emb.weight, offsets, mode="sum",
                                                            per_sample_weights=w, sparse=True)], -1)
            return pooled
        # Weighted sum per sample of the rows already gathered for the attention features.
        return torch.zeros(b, e.shape[1]).index_add(0, seg, w.unsqueeze(1) * e)


def auc(labels, scores):
    """Area under the ROC curve with ties averaged (rank statistic)."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    y = labels[order]
    pos = y.sum()
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def run(variant, args, train, test, n_items, n_cats):
    torch.manual_seed(args.seed)
    model = DIN(n_items, n_cats, args.dim, args.hidden, args.attention_hidden, args.weighting,
                "padded" if variant == "padded" else "real", bag_pooling=variant == "realpos-bag")
    sparse = [model.item_emb.weight] + ([model.cat_emb.weight] if model.cat_emb is not None else [])
    dense = [p for n, p in model.named_parameters() if not n.endswith("_emb.weight")]
    opt_sparse = torch.optim.SparseAdam(sparse, lr=args.lr)
    opt_dense = torch.optim.Adam(dense, lr=args.lr)
    forward = torch.compile(model, dynamic=True) if variant == "compiled" else model
    has_cat = n_cats > 0
    n = len(train["label"])
    bs = args.batch_size

    def epoch(e):
        g = torch.Generator().manual_seed(args.seed * 1000 + e)
        perm = torch.randperm(n, generator=g)
        model.train()
        steps = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        for s in range(0, n, bs):
            if args.max_steps and steps >= args.max_steps:
                break
            idx = perm[s:s + bs]
            item, hist, mask, label = train["item"][idx], train["hist"][idx], train["mask"][idx], train["label"][idx]
            cat = train["cat"][idx] if has_cat else None
            hist_cat = train["hist_cat"][idx] if has_cat else None
            logits = forward(item, cat, hist, hist_cat, mask)
            loss = F.binary_cross_entropy_with_logits(logits, label)
            opt_sparse.zero_grad(set_to_none=True)
            opt_dense.zero_grad(set_to_none=True)
            loss.backward()
            opt_sparse.step()
            opt_dense.step()
            steps += 1
        return min(n, steps * bs), time.perf_counter() - start, time.process_time() - cpu_start

    def evaluate():
        model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(test["label"]), 1024):
                sl = slice(s, s + 1024)
                out.append(model(test["item"][sl], test["cat"][sl] if has_cat else None, test["hist"][sl],
                                 test["hist_cat"][sl] if has_cat else None, test["mask"][sl]))
        return auc(test["label"].numpy(), torch.cat(out).numpy())

    samples, seconds, cpu = epoch(0)
    test_auc = evaluate()
    epochs = 1
    if variant == "compiled":
        # The first epoch paid for compilation (and recompilations as N varies): time a second one.
        samples, seconds, cpu = epoch(1)
        epochs = 2
    return {"variant": variant, "threads": torch.get_num_threads(), "samples_per_s": samples / seconds,
            "samples_per_cpu_s": samples / cpu, "timed_samples": samples, "seconds": seconds, "cpu_seconds": cpu, "test_auc": test_auc, "epochs": epochs,
            "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="prepared dataset directory (heed prepare)")
    p.add_argument("--variant", default="padded,realpos,compiled")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dim", type=int, default=18)
    p.add_argument("--hidden", type=lambda s: [int(x) for x in s.split(",")], default=[200, 80])
    p.add_argument("--attention-hidden", type=lambda s: [int(x) for x in s.split(",")], default=[80, 40])
    p.add_argument("--weighting", choices=["raw", "softmax"], default="raw")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-len", type=int, default=0, help="behaviours kept (0 = the dataset's max-len)")
    p.add_argument("--max-steps", type=int, default=0, help="stop each timed epoch after this many steps (0 = whole epoch)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train, test, n_items, n_cats = load(args.data, args.max_len)
    for variant in args.variant.split(","):
        if variant not in ("padded", "realpos", "realpos-bag", "compiled"):
            raise SystemExit(f"unknown variant {variant} (padded, realpos, realpos-bag, compiled)")
        print(json.dumps(run(variant, args, train, test, n_items, n_cats)), flush=True)


if __name__ == "__main__":
    main()
