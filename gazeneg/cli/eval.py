"""Does training on deliberately wrong labels with a negative learning rate help or hurt?

Runs a sweep of arms x seeds x data budgets on the same subject splits, then writes results.csv,
summary.json, report.md and plots into the output folder and prints the verdicts.

    gazeneg eval --quick                     # ~1.5 min, 3 seeds, 1 budget
    gazeneg eval                             # full: 5 seeds, budgets 1 2 4
    gazeneg eval --data my_capture           # on your own webcam data
    gazeneg eval --out runs/wl-1             # re-run the same command to resume
    gazeneg eval --ray auto                  # send runs to a Ray cluster

The personal regime (gazeneg/study/personal.py): one person, k calibration photos, a model fine-tuned from a
base pretrained on other people; the default when --data holds one person:

    gazeneg eval --regime personal           # 24 people x k 9, 36, 144, gazecnn
    gazeneg eval --regime personal --quick   # 12 people, fewer arms
    gazeneg eval --data my_capture           # one person: cross-validation inside their photos
                                             # (gazeneg/study/one_person.py)
    gazeneg eval --data my_capture --quick   # one person, 3 folds x 5 arms, a smaller base: 45 s (18-21 s with
                                             # the base cached) on 2 lightly loaded cores (benchmarks/one_person_quick.py)
    gazeneg eval --data my_capture --regime personal   # one person: held-out unit = session
    gazeneg eval --regime personal --init checkpoints/demo.pt --finetune full
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import time
from pathlib import Path

from gazeneg.cli.errors import RESUME, as_cli
from gazeneg.errors import GazenegError
from gazeneg.units import at_least

PROG = "gazeneg eval"


class EvalOptionError(GazenegError, ValueError):
    """An option of `gazeneg eval` that does not fit the regime or the question."""


def positive_cells(text: str) -> float:
    """--margin: a positive, finite number of cells (argparse names the option when this raises)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of cells, not {text!r}")
    return value


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="dataset folder; default the built-in synthetic set ('synthetic:4', 4 frames per cell, "
                        "so budgets up to 4 exist; 'synthetic' with --quick)")
    p.add_argument("--out", default=None, help="output folder (default runs/wrong-labels-<time>); reuse to resume")
    p.add_argument("--quick", action="store_true", help="fewer arms, 3 seeds, budget 1")
    p.add_argument("--seeds", type=at_least(2, " for a paired test"), default=None, help="seeds per arm (sweep; at least 2)")
    p.add_argument("--budgets", type=int, nargs="+", default=None, help="frames per cell per training subject")
    p.add_argument("--arms", nargs="+", default=None, help="subset of arms (see --list-arms)")
    p.add_argument("--list-arms", action="store_true")
    p.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    p.add_argument("--sequential", action="store_true", help="run one after another in this process")
    p.add_argument("--ray", default="", metavar="ADDRESS", help="Ray cluster address or 'auto' (needs gazeneg[cluster])")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20 at budget 1, "
                   "20/budget above it: the same number of steps at every budget)")
    p.add_argument("--model", default=None, help="model per run (default mlp)")
    p.add_argument("--margin", type=positive_cells, default=None,
                   help="equivalence margin in cells: a difference whose 95%% interval lies within +-margin is "
                        "'equivalent' (default: sweep gazeneg.study.stats.DEFAULT_MARGIN, 0.05 cells today; "
                        "personal: half the measured calibration gain)")
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


# The options each regime reads beyond the common ones (the others are ignored, as they always were, except
# that the personal regime refuses the sweep's: its --ks, --folds and --base-epochs play their part).
SWEEP_ONLY = ("seeds", "budgets", "epochs")
FINETUNE = ("lr_grid", "steps", "folds", "base_epochs", "cache")
READS = {"sweep": SWEEP_ONLY, "personal": ("ks", "max_units", *FINETUNE), "one_person": ("repeats", *FINETUNE)}


def given(args, keys: tuple[str, ...]) -> dict:
    """The options among keys that the user gave (lists as tuples), by their config field name."""
    return {k: tuple(v) if isinstance(v, list) else v for k in keys if (v := getattr(args, k)) not in (None, [])}


def typed_command(prog: str | None, argv: list[str]) -> str:
    return (prog or PROG) + "".join(" " + shlex.quote(a) for a in argv)


def continue_hint(prog: str | None, argv: list[str], out: str) -> str:
    """The command that continues an interrupted evaluation: the same one, with its output folder named."""
    again = list(argv) if "--out" in argv else [*argv, "--out", out]
    return f"interrupted: finished runs are kept in {out}; continue with `{typed_command(prog, again)}`"


def run_interruptible(work, prog, argv, out) -> bool:
    """work(); False (after saying how to continue) when Ctrl-C stopped it."""
    try:
        work()
    except KeyboardInterrupt:
        print("\n" + continue_hint(prog, argv, out), file=sys.stderr)
        return False
    return True


def personal_main(args, argv, prog) -> int:
    from gazeneg.study.personal import FULL_ARMS, PersonalConfig, personal_arms, run_personal
    from gazeneg.study.personal_report import build_report as build_personal
    from gazeneg.study.personal_report import verdict_lines as personal_lines

    if args.list_arms:
        for a in personal_arms():
            print(f"{a.name:<28} {a.note}")
        return 0
    out = args.out or f"runs/personal-{time.strftime('%Y%m%d-%H%M%S')}" + ("-quick" if args.quick else "")
    kw = {"data": args.data or "synthetic", "out": out, "model": args.model or "gazecnn", "finetune": args.finetune,
          "init": args.init, "workers": args.workers, "ray": args.ray}
    if args.finetune == "full":
        # Seconds per fine-tune, not milliseconds: by default the arms that answer the question, on 6 people,
        # k 9 and 36, and a 3-value grid around the whole network's usual fine-tuning LRs.
        kw.update(arms=list(FULL_ARMS), max_units=6, ks=(9, 36), lr_grid=(3e-5, 3e-4, 3e-3))
    kw.update(given(args, READS["personal"]))
    if args.arms:
        kw["arms"] = list(args.arms)
    pcfg = PersonalConfig.quick(**kw) if args.quick else PersonalConfig(**kw)
    print(f"output folder: {out}")
    t0 = time.perf_counter()
    if not run_interruptible(lambda: run_personal(pcfg, sequential=args.sequential), prog, argv, out):
        return 130
    elapsed = time.perf_counter() - t0
    doc = build_personal(out, elapsed=elapsed, margin=args.margin, command=typed_command(prog, argv))
    print(f"\nPersonal regime: held-out unit = {doc['unit_kind']}; verdicts vs the fine-tuned baseline, paired over "
          f"held-out units, Holm-corrected; equivalence margin +-{doc['margin_cells']:.3g} cells:")
    for line in personal_lines(out):
        print(line)
    print("\nIn plain words:")
    for k, sentences in doc["answer"].items():
        print(f"  k = {k}: " + " ".join(sentences))
    print(f"\nfinished in {elapsed:.0f} s. Report: {Path(out) / 'report.md'} (plots, finetunes.csv, summary.json beside it)")
    return 0


def one_person_main(args, argv, prog) -> int:
    from gazeneg.study.one_person import OnePersonConfig, one_person_arms, run_one_person
    from gazeneg.study.one_person import build_report as build_one
    from gazeneg.study.one_person import verdict_lines as one_lines

    if args.list_arms:
        for name, a in one_person_arms().items():
            print(f"{name:<30} {a.note}")
        return 0
    if not args.data:
        raise EvalOptionError("--regime one_person needs --data (a folder of one person's photos)")
    out = args.out or f"runs/one-person-{time.strftime('%Y%m%d-%H%M%S')}" + ("-quick" if args.quick else "")
    kw = {"data": args.data, "out": out, "model": args.model or "gazecnn", "init": args.init, "workers": args.workers,
          **given(args, READS["one_person"])}
    if args.arms:
        kw["arms"] = list(args.arms)
    cfg = OnePersonConfig.quick(**kw) if args.quick else OnePersonConfig(**kw)
    print(f"output folder: {out}")
    t0 = time.perf_counter()
    if not run_interruptible(lambda: run_one_person(cfg), prog, argv, out):
        return 130
    elapsed = time.perf_counter() - t0
    doc = build_one(out, margin=args.margin, elapsed=elapsed, command=typed_command(prog, argv))
    print(f"\nOne person: verdicts vs the fine-tuned baseline, paired over {doc['n_folds']} cross-validation folds "
          f"(grouped by {doc['group_kind']}), Holm-corrected; equivalence margin +-{doc['margin_cells']:.3g} cells:")
    for line in one_lines(out):
        print(line)
    print("\nWhat these photos can and cannot show:")
    for sentence in doc["answer"]:
        print("  " + sentence)
    print(f"\nfinished in {elapsed:.0f} s. Report: {Path(out) / 'report.md'} (rows.csv, summary.json beside it)")
    return 0


def sweep_main(args, argv, prog) -> int:
    from gazeneg.study.stats import DEFAULT_MARGIN
    from gazeneg.study.sweep import SweepConfig, all_arms, run_sweep
    from gazeneg.study.sweep_report import build_report, verdict_lines

    if args.list_arms:
        for a in all_arms():
            print(f"{a.name:<28} {a.note}")
        return 0
    margin = DEFAULT_MARGIN if args.margin is None else args.margin
    out = args.out or f"runs/wrong-labels-{time.strftime('%Y%m%d-%H%M%S')}" + ("-quick" if args.quick else "")
    data = args.data or ("synthetic" if args.quick else "synthetic:4")
    sweep = SweepConfig.quick(data=data, out=out) if args.quick else SweepConfig(data=data, out=out)
    sweep = dataclasses.replace(sweep, workers=args.workers, ray=args.ray, **given(args, ("seeds", "budgets")),
                                **({"arms": list(args.arms)} if args.arms else {}),
                                base=given(args, ("epochs", "model")))   # the run config every arm overrides
    print(f"output folder: {out}")
    t0 = time.perf_counter()
    if not run_interruptible(lambda: run_sweep(sweep, sequential=args.sequential), prog, argv, out):
        return 130
    elapsed = time.perf_counter() - t0
    build_report(out, elapsed=elapsed, margin=margin, command=typed_command(prog, argv))
    print(f"\nVerdicts (vs each arm's own baseline, paired over seeds, Holm-corrected; equivalence margin "
          f"+-{margin:g} cells):")
    for line in verdict_lines(out):
        print(line)
    print(f"\nfinished in {elapsed:.0f} s. Report: {Path(out) / 'report.md'} (plots, results.csv, summary.json beside it)")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args_parser(prog).parse_args(argv)
    # torch and scipy only once the options are read: `gazeneg eval --help` stays fast
    regime = args.regime
    if regime is None:
        from gazeneg.study.personal import one_person

        regime = "one_person" if args.data and one_person(args.data) else "sweep"
    if regime == "personal" and given(args, SWEEP_ONLY):
        raise EvalOptionError("--seeds, --budgets and --epochs belong to the sweep regime; the personal regime "
                              "uses --ks, --folds and --base-epochs")
    run = {"sweep": sweep_main, "personal": personal_main, "one_person": one_person_main}[regime]
    return run(args, argv, prog)


cli = as_cli(main, resume=RESUME["eval"])
