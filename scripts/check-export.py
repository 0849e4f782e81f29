#!/usr/bin/env python3
"""Check a `heed checkpoint export` file against the checkpoint it came from.

    scripts/check-export.py EXPORT.safetensors CHECKPOINT_DIR [--heed .build/release/heed] [--rows 3]

Loads the export with `safetensors.numpy` if that package is installed, otherwise with
the plain NumPy reader below (the format is 8-byte little-endian header length, JSON
header, raw little-endian data), and says which one it used. Prints every tensor's name,
dtype and shape and the metadata, checks the format's invariants (contiguous offsets,
keys ascending and unique, shapes agreeing), then asks `heed checkpoint rows` for a few
keys of every table (first, middle, last) and compares w, the optimizer state and the
step bit for bit. Exits 1 on any mismatch.
"""
import argparse
import json
import subprocess
import sys

import numpy as np

DTYPES = {"F32": np.float32, "U64": np.uint64, "U32": np.uint32, "I64": np.int64}


def load_plain(path):
    """The format read with NumPy alone: {name: array}, metadata."""
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {})
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    at = 0
    for begin, end, name in spans:
        if begin != at:
            sys.exit(f"{path}: tensor {name} starts at {begin}, expected {at} (not contiguous)")
        at = end
    if at != len(data):
        sys.exit(f"{path}: tensors end at {at}, the data holds {len(data)} bytes")
    if (8 + n) % 8:
        print(f"warning: {path}: data does not start 8-byte aligned")
    tensors = {}
    for name, v in header.items():
        begin, end = v["data_offsets"]
        dtype = np.dtype(DTYPES[v["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(v["shape"])
    return tensors, metadata


def load(path):
    try:
        from safetensors.numpy import load_file
        from safetensors import safe_open
    except ImportError:
        print("safetensors is not installed: reading with the plain NumPy reader of this script")
        return load_plain(path)
    print("reading with safetensors.numpy")
    with safe_open(path, framework="np") as f:
        metadata = f.metadata() or {}
    return load_file(path), metadata


def heed_rows(heed, checkpoint, table, keys):
    out = subprocess.run([heed, "checkpoint", "rows", checkpoint, "--table", str(table),
                          "--keys", ",".join(str(int(k)) for k in keys)],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("export")
    p.add_argument("checkpoint")
    p.add_argument("--heed", default=".build/release/heed")
    p.add_argument("--rows", type=int, default=3, help="keys to check per table")
    a = p.parse_args()

    tensors, metadata = load(a.export)
    for name in sorted(tensors):
        t = tensors[name]
        print(f"  {name:28s} {str(t.dtype):8s} {list(t.shape)}")
    for k in sorted(metadata):
        print(f"  __metadata__.{k} = {metadata[k]}")

    bad = 0
    tables = sorted(int(n.split(".")[1]) for n in tensors if n.startswith("table.") and n.endswith(".keys"))
    for tid in tables:
        keys = tensors[f"table.{tid}.keys"]
        weight = tensors[f"table.{tid}.weight"]
        if weight.shape[0] != keys.shape[0]:
            print(f"table {tid}: {keys.shape[0]} keys, {weight.shape[0]} weight rows")
            bad += 1
        if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
            print(f"table {tid}: keys are not strictly ascending")
            bad += 1
        if keys.size == 0:
            continue
        picks = sorted({0, keys.size // 2, keys.size - 1} | set(range(min(a.rows, keys.size))))
        saved = heed_rows(a.heed, a.checkpoint, tid, keys[picks])
        dim = weight.shape[1]
        for i, row in zip(picks, saved):
            if row.get("missing"):
                print(f"table {tid} key {keys[i]}: not in the checkpoint")
                bad += 1
                continue
            w = np.array(row["w"], dtype=np.float32)
            if not np.array_equal(w.view(np.uint32), weight[i].view(np.uint32)):
                print(f"table {tid} key {keys[i]}: weight differs: export {weight[i]}, checkpoint {w}")
                bad += 1
            state = np.array(row["state"], dtype=np.float32)
            if f"table.{tid}.adam_m" in tensors:
                m, v = state[:dim], state[dim:2 * dim]
                if not (np.array_equal(m.view(np.uint32), tensors[f"table.{tid}.adam_m"][i].view(np.uint32))
                        and np.array_equal(v.view(np.uint32), tensors[f"table.{tid}.adam_v"][i].view(np.uint32))):
                    print(f"table {tid} key {keys[i]}: Adam state differs")
                    bad += 1
            if f"table.{tid}.steps" in tensors and int(tensors[f"table.{tid}.steps"][i]) != row["step"]:
                print(f"table {tid} key {keys[i]}: step {tensors[f'table.{tid}.steps'][i]} vs {row['step']}")
                bad += 1
        print(f"table {tid}: {keys.size} rows × dim {dim}; checked keys at {picks} against heed checkpoint rows")
    if bad:
        sys.exit(f"check-export: {bad} mismatches")
    print("check-export: ok")


if __name__ == "__main__":
    main()
