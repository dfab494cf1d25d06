#!/usr/bin/env python
"""Does training on deliberately wrong labels with a negative learning rate help or hurt?

Runs a sweep of arms x seeds x data budgets on the same subject splits, then writes results.csv,
summary.json, report.md and plots into the output folder and prints the verdicts.

    python scripts/eval_wrong_labels.py --quick               # ~1.5 min, 3 seeds, 1 budget
    python scripts/eval_wrong_labels.py                       # full: 5 seeds, budgets 1 2 4
    python scripts/eval_wrong_labels.py --data my_capture     # on your own webcam data
    python scripts/eval_wrong_labels.py --out runs/wl-1       # re-run the same command to resume
    python scripts/eval_wrong_labels.py --ray auto            # send runs to a Ray cluster

The personal regime (gazeneg/study/personal.py): one person, k calibration photos, a model fine-tuned from a
base pretrained on other people; the default when --data holds one person:

    python scripts/eval_wrong_labels.py --regime personal             # 24 people x k 9, 36, 144, gazecnn
    python scripts/eval_wrong_labels.py --regime personal --quick     # 12 people, fewer arms
    python scripts/eval_wrong_labels.py --data my_capture             # one person: cross-validation inside
                                                                      # their photos (gazeneg/study/one_person.py)
    python scripts/eval_wrong_labels.py --data my_capture --regime personal   # one person: held-out unit = session
    python scripts/eval_wrong_labels.py --regime personal --init checkpoints/demo.pt --finetune full
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from gazeneg.cli.errors import run_cli


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
    p.add_argument("--margin", type=float, default=None,
                   help="equivalence margin in cells: a difference whose 95%% interval lies within +-margin is "
                        "'equivalent' (default: sweep gazeneg.study.stats.DEFAULT_MARGIN, 0.05 cells today; personal: half the "
                        "measured calibration gain)")
    g = p.add_argument_group("personal regime")
    g.add_argument("--regime", choices=("sweep", "personal", "one_person"), default=None,
                   help="sweep: arms x seeds x budgets over many people; personal: k calibration photos of each "
                        "held-out person or session; one_person: repeated grouped cross-validation inside one "
                        "person's photos (default when --data holds one person)")
    g.add_argument("--repeats", type=int, default=None, help="one_person: repeats of the grouped k-fold (default 2)")
    g.add_argument("--init", default="", metavar="CKPT", help="base model for every fold instead of pretraining one "
                   "(architecture checked; e.g. checkpoints/demo.pt)")
    g.add_argument("--ks", type=int, nargs="+", default=None, help="calibration photos per person (default 9 36 144)")
    g.add_argument("--finetune", choices=("last", "head", "full"), default="last",
                   help="last: the head's last layer on features computed once (default, milliseconds); head: the "
                        "whole fc head on features; full: the whole network (seconds per fine-tune)")
    g.add_argument("--lr-grid", type=float, nargs="+", default=None, help="the one LR grid for every arm")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps per fine-tune")
    g.add_argument("--folds", type=int, default=None, help="folds of held-out people (each has its own base model)")
    g.add_argument("--base-epochs", type=int, default=None, help="epochs of each base model (default: the model's "
                   "recipe)")
    g.add_argument("--max-units", type=int, default=None, help="test only this many held-out people (0 = all)")
    g.add_argument("--cache", default=None, help="folder of cached base models (default runs/personal-base-cache)")
    return p


def personal_main(args, argv) -> int:
    from gazeneg.study.personal import FULL_ARMS, PersonalConfig, personal_arms, run_personal
    from gazeneg.study.personal_report import build_report as build_personal
    from gazeneg.study.personal_report import verdict_lines as personal_lines

    if args.list_arms:
        for a in personal_arms():
            print(f"{a.name:<28} {a.note}")
        return 0
    out = args.out or f"runs/personal-{time.strftime('%Y%m%d-%H%M%S')}" + ("-quick" if args.quick else "")
    data = args.data or "synthetic"
    kw = {"data": data, "out": out, "model": args.model or "gazecnn", "finetune": args.finetune, "init": args.init,
          "workers": args.workers, "ray": args.ray}
    pcfg = PersonalConfig.quick(**kw) if args.quick else PersonalConfig(**kw)
    if args.finetune == "full":
        # Seconds per fine-tune, not milliseconds: by default the arms that answer the question, on 6 people,
        # k 9 and 36, and a 3-value grid around the whole network's usual fine-tuning LRs.
        pcfg.arms, pcfg.max_units, pcfg.ks, pcfg.lr_grid = list(FULL_ARMS), 6, (9, 36), (3e-5, 3e-4, 3e-3)
    for key, field in (("ks", "ks"), ("lr_grid", "lr_grid"), ("arms", "arms")):
        if getattr(args, key):
            setattr(pcfg, field, tuple(getattr(args, key)) if key != "arms" else list(args.arms))
    for key in ("steps", "folds", "base_epochs", "max_units", "cache"):
        if getattr(args, key) is not None:
            setattr(pcfg, key, getattr(args, key))
    if args.seeds is not None or args.budgets or args.epochs is not None:
        raise SystemExit("error: --seeds, --budgets and --epochs belong to the sweep regime; the personal regime "
                         "uses --ks, --folds and --base-epochs")
    t0 = time.perf_counter()
    run_personal(pcfg, sequential=args.sequential)
    elapsed = time.perf_counter() - t0
    doc = build_personal(out, elapsed=elapsed, margin=args.margin,
                         command="python scripts/eval_wrong_labels.py " + " ".join(
                             shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)))
    print(f"\nPersonal regime: held-out unit = {doc['unit_kind']}; verdicts vs the fine-tuned baseline, paired over "
          f"held-out units, Holm-corrected; equivalence margin +-{doc['margin_cells']:.3g} cells:")
    for line in personal_lines(out):
        print(line)
    print("\nIn plain words:")
    for k, sentences in doc["answer"].items():
        print(f"  k = {k}: " + " ".join(sentences))
    print(f"\nfinished in {elapsed:.0f} s. Report: {Path(out) / 'report.md'} (plots, finetunes.csv, summary.json beside it)")
    return 0


def one_person_main(args, argv) -> int:
    from gazeneg.study.one_person import OnePersonConfig, one_person_arms, run_one_person
    from gazeneg.study.one_person import build_report as build_one
    from gazeneg.study.one_person import verdict_lines as one_lines

    if args.list_arms:
        for name, a in one_person_arms().items():
            print(f"{name:<30} {a.note}")
        return 0
    out = args.out or f"runs/one-person-{time.strftime('%Y%m%d-%H%M%S')}" + ("-quick" if args.quick else "")
    kw = {"data": args.data, "out": out, "model": args.model or "gazecnn", "init": args.init, "workers": args.workers}
    cfg = OnePersonConfig.quick(**kw) if args.quick else OnePersonConfig(**kw)
    for key, field in (("lr_grid", "lr_grid"), ("arms", "arms")):
        if getattr(args, key):
            setattr(cfg, field, tuple(getattr(args, key)) if key != "arms" else list(args.arms))
    for key in ("steps", "folds", "base_epochs", "cache", "repeats"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    t0 = time.perf_counter()
    run_one_person(cfg)
    elapsed = time.perf_counter() - t0
    doc = build_one(out, margin=args.margin, elapsed=elapsed, command="python scripts/eval_wrong_labels.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)))
    print(f"\nOne person: verdicts vs the fine-tuned baseline, paired over {doc['n_folds']} cross-validation folds "
          f"(grouped by {doc['group_kind']}), Holm-corrected; equivalence margin +-{doc['margin_cells']:.3g} cells:")
    for line in one_lines(out):
        print(line)
    print("\nWhat these photos can and cannot show:")
    for sentence in doc["answer"]:
        print("  " + sentence)
    print(f"\nfinished in {elapsed:.0f} s. Report: {Path(out) / 'report.md'} (rows.csv, summary.json beside it)")
    return 0


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    # torch only once the options are read: `gazeneg eval --help` stays fast
    from gazeneg.study.stats import DEFAULT_MARGIN
    from gazeneg.study.sweep import SweepConfig, all_arms, run_sweep
    from gazeneg.study.sweep_report import build_report, verdict_lines

    if args.margin is not None and not args.margin > 0:
        raise SystemExit(f"error: --margin must be a positive number of cells, not {args.margin}")
    regime = args.regime
    if regime is None:
        from gazeneg.study.personal import one_person

        regime = "one_person" if args.data and one_person(args.data) else "sweep"
    if regime == "one_person":
        if not args.data:
            raise SystemExit("error: --regime one_person needs --data (a folder of one person's photos)")
        return one_person_main(args, argv)
    if regime == "personal":
        return personal_main(args, argv)
    if args.list_arms:
        for a in all_arms():
            print(f"{a.name:<28} {a.note}")
        return 0
    if args.seeds is not None and args.seeds < 2:
        raise SystemExit("error: --seeds must be >= 2 for a paired test")
    args.margin = DEFAULT_MARGIN if args.margin is None else args.margin
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
