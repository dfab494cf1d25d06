#!/usr/bin/env python
"""Does training on deliberately wrong labels with a negative learning rate help or hurt?

Runs a sweep of arms x seeds x data budgets on the same subject splits, then writes results.csv,
summary.json, report.md and plots into the output folder and prints the verdicts.

    python scripts/eval_wrong_labels.py --quick               # ~1.5 min, 3 seeds, 1 budget
    python scripts/eval_wrong_labels.py                       # full: 5 seeds, budgets 1 2 4
    python scripts/eval_wrong_labels.py --data my_capture     # on your own webcam data
    python scripts/eval_wrong_labels.py --out runs/wl-1       # re-run the same command to resume
    python scripts/eval_wrong_labels.py --ray auto            # send runs to a Ray cluster
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from gazeneg.cli import run_cli
from gazeneg.experiment import SweepConfig, all_arms, run_sweep
from gazeneg.report import build_report, verdict_lines
from gazeneg.stats import DEFAULT_MARGIN


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="dataset folder; default the built-in synthetic set ('synthetic:4', 4 frames per cell, "
                        "so budgets up to 4 exist; 'synthetic' with --quick)")
    p.add_argument("--out", default=None, help="output folder (default runs/wrong-labels-<time>); reuse to resume")
    p.add_argument("--quick", action="store_true", help="fewer arms, 3 seeds, budget 1")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--budgets", type=int, nargs="+", default=None, help="frames per cell per training subject")
    p.add_argument("--arms", nargs="+", default=None, help="subset of arms (see --list-arms)")
    p.add_argument("--list-arms", action="store_true")
    p.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    p.add_argument("--sequential", action="store_true", help="run one after another in this process")
    p.add_argument("--ray", default="", metavar="ADDRESS", help="Ray cluster address or 'auto' (needs gazeneg[cluster])")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20 at budget 1, "
                   "20/budget above it: the same number of steps at every budget)")
    p.add_argument("--model", default=None, help="model per run (default mlp)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="equivalence margin in cells: a difference shown (TOST) to lie within +-margin is "
                        f"'equivalent' (default {DEFAULT_MARGIN})")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.list_arms:
        for a in all_arms():
            print(f"{a.name:<28} {a.note}")
        return 0
    if args.seeds is not None and args.seeds < 2:
        raise SystemExit("error: --seeds must be >= 2 for a paired test")
    if not args.margin > 0:
        raise SystemExit(f"error: --margin must be a positive number of cells, not {args.margin}")
    out = args.out or f"runs/wrong-labels-{time.strftime('%Y%m%d-%H%M%S')}" + ("-quick" if args.quick else "")
    data = args.data or ("synthetic" if args.quick else "synthetic:4")
    sweep = SweepConfig.quick(data=data, out=out) if args.quick else SweepConfig(data=data, out=out)
    if args.seeds is not None:
        sweep.seeds = args.seeds
    if args.budgets:
        sweep.budgets = tuple(args.budgets)
    if args.arms:
        sweep.arms = args.arms
    sweep.workers, sweep.ray = args.workers, args.ray
    for key in ("epochs", "model"):
        if getattr(args, key) is not None:
            sweep.base[key] = getattr(args, key)
    t0 = time.perf_counter()
    run_sweep(sweep, sequential=args.sequential)
    elapsed = time.perf_counter() - t0
    build_report(out, elapsed=elapsed, margin=args.margin, command="python scripts/eval_wrong_labels.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)))
    print(f"\nVerdicts (vs each arm's own baseline, paired over seeds, Holm-corrected; equivalence margin "
          f"+-{args.margin:g} cells):")
    for line in verdict_lines(out):
        print(line)
    print(f"\nfinished in {elapsed:.0f} s. Report: {Path(out) / 'report.md'} (plots, results.csv, summary.json beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
