#!/usr/bin/env python3
"""Cuts a few KB from every shared dataset into data/cuts/<dataset>/ (issue 17).

Deterministic: each rule keeps lines by their position or by the first users in file
order, never at random, and every file keeps its name, header, delimiter and line
format (gzipped files are written with gzip level 9, no name and time stamp 0, so the
bytes are reproducible). The loader tests read these cuts (Tests/HeedDataTests/
LoaderCutTests.swift), so every loader runs on real data on a machine without
/work/shared/data. Usage: python3 scripts/cut-samples.py [SOURCE=/work/shared/data]
"""

import csv
import gzip
import io
import json
import os
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "cuts")


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return f.read().splitlines(keepends=True)


def write(dataset, name, lines):
    folder = os.path.join(OUT, dataset)
    os.makedirs(folder, exist_ok=True)
    data = "".join(lines).encode("utf-8")
    path = os.path.join(folder, name)
    if name.endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as g:
            g.write(data)
        data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    print("%-60s %6d lines %7d bytes" % (os.path.relpath(path, OUT), len(lines), len(data)))


def first_users_lines(lines, users, field=lambda l: l.split()[0]):
    """Every line of the first `users` distinct users (in file order), in file order."""
    keep, out = set(), []
    for line in lines:
        u = field(line)
        if u not in keep:
            if len(keep) == users:
                continue
            keep.add(u)
        out.append(line)
    return out, keep


def s3rec(dataset, stem, users=30):
    src = os.path.join(SRC, "amazon2014-beauty-sports-toys-s3rec")
    lines = read_lines(os.path.join(src, stem + ".txt.gz"))[:users]
    items = {i for line in lines for i in line.split()[1:]}
    attrs = json.load(gzip.open(os.path.join(src, stem + "_item2attributes.json.gz"), "rt"))
    write(dataset, stem + ".txt.gz", lines)
    # Same formatting as the upstream file (json.dumps defaults), original key order.
    write(dataset, stem + "_item2attributes.json.gz", [json.dumps({k: v for k, v in attrs.items() if k in items})])


def main():
    s3rec("amazon-beauty", "Beauty")
    s3rec("amazon-sports", "Sports_and_Outdoors")
    s3rec("amazon-toys", "Toys_and_Games")

    # SASRec Video.txt: `user item` lines grouped by user; the first 25 users.
    video, _ = first_users_lines(read_lines(os.path.join(SRC, "amazon2014-video-games-sasrec", "Video.txt.gz")), 25)
    write("amazon-video-games", "Video.txt.gz", video)

    # ReChorus Grocery: rows are not grouped by user; every row of the first 20 users
    # (in file order), then the item_meta rows of the items they touched.
    src = os.path.join(SRC, "amazon2014-grocery-rechorus")
    rows = read_lines(os.path.join(src, "train.csv.gz"))
    body, _ = first_users_lines(rows[1:], 20, lambda l: l.split("\t")[0])
    write("amazon-grocery", "train.csv.gz", rows[:1] + body)
    items = {l.split("\t")[1] for l in body}
    meta = read_lines(os.path.join(src, "item_meta.csv.gz"))
    write("amazon-grocery", "item_meta.csv.gz", meta[:1] + [l for l in meta[1:] if l.split("\t")[0] in items])

    # Ciao: every rating of the first 15 users, and the trust links among them.
    src = os.path.join(SRC, "ciao-trust")
    rows = read_lines(os.path.join(src, "ratings.tsv.gz"))
    body, users = first_users_lines(rows[1:], 15, lambda l: l.split("\t")[0])
    write("ciao", "ratings.tsv.gz", rows[:1] + body)
    trust = read_lines(os.path.join(src, "trust.tsv.gz"))
    write("ciao", "trust.tsv.gz", trust[:1] + [l for l in trust[1:] if all(x in users for x in l.split())])

    # Complete Journey: the first 150 transaction lines (the file is in time order), the
    # products and the demographics rows they reference.
    src = os.path.join(SRC, "completejourney-8451")
    rows = read_lines(os.path.join(src, "transactions.csv.gz"))[:151]
    write("completejourney", "transactions.csv.gz", rows)
    products = {l.split(",")[3] for l in rows[1:]}
    households = {l.split(",")[0] for l in rows[1:]}
    p = read_lines(os.path.join(src, "products.csv.gz"))
    write("completejourney", "products.csv.gz", p[:1] + [l for l in p[1:] if l.split(",")[0] in products])
    d = read_lines(os.path.join(src, "demographics.csv.gz"))
    write("completejourney", "demographics.csv.gz", d[:1] + [l for l in d[1:] if l.split(",")[0] in households])

    # Taobao: the first 4 user blocks of the 814-user file (complete histories).
    tb, _ = first_users_lines(read_lines(os.path.join(SRC, "taobao-userbehavior-sample", "UserBehavior_first814users.csv.gz")),
                              4, lambda l: l.split(",")[0])
    write("taobao", "UserBehavior.csv.gz", tb)

    # UCI Online Retail: the header and first 120 lines, plus the first 5 lines of each
    # class the loader filters out further on (cancellations, no customer, non-product
    # stock codes), all kept in file order.
    rows = read_lines(os.path.join(SRC, "uci-online-retail", "online_retail.csv.gz"))
    parsed = list(csv.reader(rows))
    quota = {"cancel": 5, "nocustomer": 5, "nonproduct": 5}
    keep = []
    for i, (line, r) in enumerate(zip(rows, parsed)):
        if i <= 120:
            keep.append(line)
            continue
        kind = ("cancel" if r[0].startswith("C") else "nocustomer" if not r[6]
                else "nonproduct" if not (r[1][:5].isdigit() and len(r[1]) >= 5) else None)
        if kind and quota[kind] > 0:
            quota[kind] -= 1
            keep.append(line)
    write("uci-retail", "online_retail.csv.gz", keep)


if __name__ == "__main__":
    main()
