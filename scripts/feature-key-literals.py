#!/usr/bin/env python3
"""Prints the feature keys pinned in FeatureKeyTests / FeatureGroupKeyTests (issue 17).

An implementation of Heed's key layout written from the definitions, not from the Swift
code: key = group << 56 | (SplitMix64 finaliser of the raw id) & (2^56 - 1), where a
textual raw id is its FNV-1a 64 hash, except ids of at most 19 ASCII digits, which are
their number. Anchors: SplitMix64's first output for state 0 is 0xE220A8397B1DCDAF and
FNV-1a 64 of "a" is 0xAF63DC4C8601EC8C (published test vectors). The ids are real ones
from the bundled samples (data/) and the shared datasets' first rows.
"""

M = (1 << 64) - 1


def mix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def fnv1a(b):
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & M
    return h


def key(group, raw):
    return (group << 56) | (mix64(raw) & ((1 << 56) - 1))


def raw_id(s):
    return int(s) if s.isascii() and s.isdigit() and len(s) <= 19 else fnv1a(s.encode())


assert mix64(0) == 0xE220A8397B1DCDAF and fnv1a(b"a") == 0xAF63DC4C8601EC8C
print("mix64(1)               0x%016X" % mix64(1))
print("hashBytes('a')         0x%016X" % mix64(fnv1a(b"a")))
CASES = [
    ("user 1 (Beauty user)", 1, raw_id("1")),
    ("item 2268318 (Taobao)", 2, raw_id("2268318")),
    ("category 2520377 (Taobao)", 3, raw_id("2520377")),
    ("user 17850 (UCI customer)", 1, raw_id("17850")),
    ("item '85123A' (UCI stock code)", 2, raw_id("85123A")),
    ("item 'B00004TMFE' (Amazon ASIN)", 2, raw_id("B00004TMFE")),
    ("item '0071053' (digits: a number)", 2, raw_id("0071053")),
    ("category 'FRZN ICE' (completejourney)", 3, raw_id("FRZN ICE")),
    ("attribute 1 (Beauty item2attributes)", 4, 1),
    ("attribute 'brand=National' (completejourney)", 4, fnv1a(b"brand=National")),
    ("attribute 'manufacturer=2' (completejourney)", 4, fnv1a(b"manufacturer=2")),
    ("eventType view = 1", 5, 1),
    ("eventType purchase = 4", 5, 4),
    ("timeGap bucket 3", 6, 3),
    ("priceLevel 2", 7, 2),
    ("spendLevel 1", 8, 1),
    ("incomeBand '50-74K'", 9, raw_id("50-74K")),
    ("ageBand '45-54'", 10, raw_id("45-54")),
    ("textToken 'inflatable'", 11, fnv1a(b"inflatable")),
    ("textToken 'political'", 11, fnv1a(b"political")),
    ("textToken 'globe'", 11, fnv1a(b"globe")),
    # "ZINC HEART LATTICE T-LIGHT HOLDER" (UCI 20846): 'Z' and 'A' are the case-folding edges;
    # the one-letter "T" is dropped.
    ("textToken 'zinc'", 11, fnv1a(b"zinc")),
    ("textToken 'heart'", 11, fnv1a(b"heart")),
    ("textToken 'lattice'", 11, fnv1a(b"lattice")),
    ("textToken 'light'", 11, fnv1a(b"light")),
    ("textToken 'holder'", 11, fnv1a(b"holder")),
    ("item missing (raw id 2^64 - 1)", 2, M),
]
for name, group, raw in CASES:
    print("%-48s key 0x%016X  raw 0x%016X" % (name, key(group, raw), raw))

# Virtual slots of ShardingPlan (4096 slots; round-robin owners slot % servers).
for name, group, raw in CASES[:1] + CASES[1:2] + CASES[4:5]:
    slot = mix64(key(group, raw) ^ 0x5EED5107) % 4096
    print("slot of %-40s %4d  server of 3: %d  of 2: %d" % (name, slot, slot % 3, slot % 2))
