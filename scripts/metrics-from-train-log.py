#!/usr/bin/env python3
"""A metrics log (docs/metrics-log.md) rebuilt from a `heed train` run's output.

A stopgap until the roles write RUN_DIR/metrics themselves (issue 16, part B): it let
`heed report` be drawn from a real run before that writer existed (docs/report.png, made by
scripts/demo-report-run.sh). What it can know is less than a real writer's:

- progress lines have whole-second timestamps and come from worker 0 only, every 5 s; their
  loss is the running mean of the current epoch and their samples/s the mean since the
  worker started;
- memory comes from sampling /proc (`sample` below), not from the roles;
- AUC per epoch comes from `heed eval` of the checkpoint nearest each epoch's end, passed as
  EPOCH:SPLIT:METRICS.json.

  metrics-from-train-log.py sample PID OUT.jsonl       # RSS of PID's heed roles, every second
  metrics-from-train-log.py convert --log train.log --start START_UNIX_SECONDS \
      [--memory mem.jsonl] [--exit CODE] [--eval EPOCH:SPLIT:FILE ...] --out RUN_DIR
"""
import argparse
import json
import os
import re
import sys
import time

LINE = re.compile(r"^heed: \[(\d\d):(\d\d):(\d\d)\] (.*)$")


def sample(root, out_path):
    """Writes a memory record per heed role (descendant of `root`) every second until it exits."""
    def children(pid):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []
    page = os.sysconf("SC_PAGE_SIZE")
    with open(out_path, "w") as out:
        while os.path.exists(f"/proc/{root}"):
            t = time.time()
            todo, found = children(root), []
            while todo:
                p = todo.pop()
                found.append(p)
                todo += children(p)
            for p in found:
                try:
                    with open(f"/proc/{p}/cmdline") as f:
                        args = f.read().split("\0")
                    with open(f"/proc/{p}/statm") as f:
                        rss = int(f.read().split()[1]) * page
                except OSError:
                    continue
                if len(args) < 2 or args[1] not in ("coordinator", "server", "worker"):
                    continue
                rank = int(args[args.index("--rank") + 1]) if "--rank" in args else 0
                out.write(json.dumps({"t": t, "role": args[1], "rank": rank, "event": "memory", "rss_bytes": rss}) + "\n")
            out.flush()
            time.sleep(1)


def convert(a):
    start = float(a.start)
    day = time.localtime(start)
    records = []

    def at(h, m, s):
        t = time.mktime((day.tm_year, day.tm_mon, day.tm_mday, int(h), int(m), int(s), 0, 0, -1))
        return t + 86400 if t < start - 3600 else t  # the run passed midnight

    def add(t, role, rank, event, **fields):
        records.append(dict(t=t, role=role, rank=rank, event=event, **fields))

    started, last_epoch, t = set(), 1, start
    for raw in open(a.log, encoding="utf-8"):
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        t, text = at(*m.groups()[:3]), m.group(4)
        if not started:
            add(t, "launcher", 0, "start")
            started.add(("launcher", 0))
        who = re.match(r"(coordinator|server|worker)(?: (\d+))?: ", text)
        if who:
            key = (who.group(1), int(who.group(2) or 0))
            if key not in started and "registered" not in text:
                started.add(key)
                add(t, key[0], key[1], "start")
        if p := re.match(r"worker (\d+): epoch (\d+)  step (\d+)/\d+  loss ([\d.]+)  ([\d.]+) samples/s", text):
            last_epoch = int(p.group(2))
            add(t, "worker", int(p.group(1)), "step", step=int(p.group(3)), loss=float(p.group(4)), samples_per_s=float(p.group(5)))
        elif p := re.match(r"worker (\d+): epoch (\d+) done", text):
            last_epoch = int(p.group(2))
        elif p := re.match(r"coordinator: checkpoint \d+ written: (\S+)", text):
            add(t, "coordinator", 0, "checkpoint", step=int(re.search(r"step-0*(\d+)", p.group(1)).group(1)), dir=p.group(1))
        elif p := re.match(r"train: (.*exited with status \d+); restarting the cluster \(restart (\d+)\)", text):
            add(t, "launcher", 0, "failure", detail=p.group(1))
            add(t, "launcher", 0, "restart", attempt=int(p.group(2)))
            started = {("launcher", 0)}  # every role starts again
        elif p := re.match(r"coordinator: worker (\d+) finished", text):
            add(t, "worker", int(p.group(1)), "end", exit=0)
        elif p := re.match(r"server (\d+): stopping", text):
            add(t, "server", int(p.group(1)), "end", exit=0)
        elif text.startswith("coordinator: run completed"):
            add(t, "coordinator", 0, "end", exit=0)
        elif (p := re.match(r"worker (\d+): test samples \d+  AUC ([\d.]+)  GAUC ([\d.]+)  logloss ([\d.]+)", text)) and not a.eval:
            # The final test metrics; with --eval the at-end checkpoint's evaluation stands for them.
            add(t, "worker", int(p.group(1)), "epoch", epoch=last_epoch, split="test",
                auc=float(p.group(2)), gauc=float(p.group(3)), logloss=float(p.group(4)))
    for spec in a.eval or []:
        epoch, split, path = spec.split(":", 2)
        e = json.load(open(path))
        # `heed eval` ran after the run; its records sit at the run's last time.
        add(t, "launcher", 0, "epoch", epoch=int(epoch), split=split, auc=e["auc"], gauc=e.get("gauc"), logloss=e.get("logLoss"))
    if a.exit is not None:
        add(t, "launcher", 0, "end", exit=int(a.exit))
    if a.memory:
        records += [json.loads(l) for l in open(a.memory) if l.endswith("\n")]
    os.makedirs(os.path.join(a.out, "metrics"), exist_ok=True)
    files = {}
    for r in sorted(records, key=lambda r: r["t"]):
        files.setdefault(f"{r['role']}-{r['rank']}.jsonl", []).append(json.dumps(r, separators=(",", ":")))
    for name, lines in files.items():
        with open(os.path.join(a.out, "metrics", name), "w") as f:
            f.write("\n".join(lines) + "\n")
    print(f"{a.out}/metrics: {sum(map(len, files.values()))} records in {len(files)} files", file=sys.stderr)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "sample":
        return sample(int(sys.argv[2]), sys.argv[3])
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["convert"])
    p.add_argument("--log", required=True)
    p.add_argument("--start", required=True, help="Unix time the run started (the log has times of day only)")
    p.add_argument("--memory")
    p.add_argument("--exit")
    p.add_argument("--eval", action="append", help="EPOCH:SPLIT:METRICS.json from heed eval --metrics-out")
    p.add_argument("--out", required=True)
    convert(p.parse_args())


if __name__ == "__main__":
    main()
