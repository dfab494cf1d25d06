#!/usr/bin/env python
"""Wall time of the quick wrong-label sweep with the process pool over all cores against one process
running the same runs one after another, and a check that results.csv holds the same numbers either way
(every column but `seconds`, compared as written, per arm/seed/budget).

    python benchmarks/sweep.py                          # quick sweep on the synthetic data (a few minutes)
    python benchmarks/sweep.py --epochs 5 --seeds 2     # shorter
    python benchmarks/sweep.py --ray local              # also through a local Ray instance

Exits 1 if the results differ.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

from gazeneg.study.sweep import SWEEP_BASE, SweepConfig, run_sweep


def read_rows(out: Path) -> dict:
    """results.csv as {(arm, seed, budget): row without the timing column}."""
    with open(out / "results.csv", newline="") as f:
        return {(r["arm"], r["seed"], r["budget"]): {k: v for k, v in r.items() if k != "seconds"}
                for r in csv.DictReader(f)}


def differences(a: dict, b: dict) -> list[str]:
    out = [f"{k}: only in one of them" for k in sorted(set(a) ^ set(b))]
    for k in sorted(set(a) & set(b)):
        out += [f"{k} {col}: {a[k][col]} vs {b[k][col]}" for col in a[k] if a[k][col] != b[k][col]]
    return out


def timed(sweep: SweepConfig, **kw) -> float:
    t = time.perf_counter()
    run_sweep(sweep, progress=False, **kw)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the sweep's, 20 at budget 1)")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default: the quick sweep's, 3)")
    p.add_argument("--arms", nargs="+", default=None, help="subset of the quick sweep's arms")
    p.add_argument("--workers", type=int, default=0, help="pool processes (0 = all cores)")
    p.add_argument("--ray", default="", metavar="ADDRESS", help="also run through Ray ('local', 'auto', host:port)")
    p.add_argument("--out", default=None, help="keep the sweep folders here (default: a temporary folder)")
    args = p.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="gazeneg-sweep-bench-") if args.out is None else None
    root = Path(args.out or tmp.name)
    root.mkdir(parents=True, exist_ok=True)

    def sweep(name: str, **kw) -> SweepConfig:
        sw = SweepConfig.quick(data=args.data, out=str(root / name), workers=args.workers, **kw)
        if args.epochs is not None:
            sw.base["epochs"] = args.epochs
        if args.seeds is not None:
            sw.seeds = args.seeds
        if args.arms:
            sw.arms = args.arms
        return sw

    base = sweep("pool")
    n_runs = len(base.arms) * base.seeds * len(base.budgets)
    workers = args.workers or os.cpu_count() or 1
    print(f"quick sweep: {len(base.arms)} arms x {base.seeds} seeds x {len(base.budgets)} budget(s) = {n_runs} runs, "
          f"{base.base.get('epochs', SWEEP_BASE['epochs'])} epochs each, data {args.data}; {os.cpu_count()} cores (nproc), "
          f"load average {os.getloadavg()[0]:.2f}")
    t_pool = timed(base)
    print(f"process pool ({workers} workers): {t_pool:.1f} s", flush=True)
    t_seq = timed(sweep("sequential"), sequential=True)
    print(f"sequential (one process):  {t_seq:.1f} s", flush=True)
    print(f"speed-up: {t_seq / t_pool:.2f}x on {workers} workers")
    rows = {"pool": read_rows(root / "pool"), "sequential": read_rows(root / "sequential")}
    if args.ray:
        t_ray = timed(sweep("ray", ray=args.ray))
        print(f"Ray ({args.ray}): {t_ray:.1f} s ({t_seq / t_ray:.2f}x sequential)")
        rows["ray"] = read_rows(root / "ray")

    bad = False
    for name in rows:
        if name == "sequential":
            continue
        diff = differences(rows["sequential"], rows[name])
        if diff:
            bad = True
            print(f"results.csv differs between sequential and {name} ({len(diff)} values):")
            for line in diff[:20]:
                print("  " + line)
        else:
            print(f"results.csv: sequential and {name} identical ({len(rows[name])} rows, every column but seconds)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if tmp is not None:
        tmp.cleanup()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
