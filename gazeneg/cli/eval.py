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
    gazeneg eval --data my_capture --quick   # one person, 3 folds x 5 arms, a smaller base: 32 s (14-15 s with
                                             # the base cached) on 2 idle cores (benchmarks/one_person_quick.py)
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
from dataclasses import dataclass
from pathlib import Path

from gazeneg.cli.errors import RESUME, as_cli
from gazeneg.config import add_options, option
from gazeneg.errors import GazenegError
from gazeneg.study.options import DEFAULT_MARGIN, ONE_PERSON_REPEATS, PERSONAL, PersonalOptions, SweepOptions

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


@dataclass(frozen=True)
class EvalCommand:
    """The options of `gazeneg eval` itself, beside the studies' (study.options): each written once, here,
    with its help in the field's metadata (config.option). A schema, never built: the parser reads the
    metadata, and an option not given is None (the regime's default applies)."""

    quick: bool = option(help="fewer arms, 3 seeds, budget 1")
    list_arms: bool = option(help="print the regime's arms, one line each with what it tests, and exit")
    sequential: bool = option(help="run one after another in this process")
    epochs: int = option(help="epochs per run (default 20 at budget 1, 20/budget above it: the same number of "
                              "steps at every budget)")
    margin: float = option(
        help="equivalence margin in cells: a difference whose 95% interval lies within +-margin is 'equivalent' "
        f"(default: sweep gazeneg.study.stats.DEFAULT_MARGIN, {DEFAULT_MARGIN} cells today; personal: half the measured "
        "calibration gain)", parse=positive_cells)
    regime: str = option(
        help="sweep: arms x seeds x budgets over many people; personal: k calibration photos of each held-out person "
        "or session; one_person: repeated grouped cross-validation inside one person's photos (default when "
        "--data holds one person)", group=PERSONAL, choices=("sweep", "personal", "one_person"))
    repeats: int = option(help=f"one_person: repeats of the grouped k-fold (default {ONE_PERSON_REPEATS})",
                          group=PERSONAL)


# The order --help lists the options in (their help, group and choices are in their fields' metadata).
ORDER = ("data", "out", "quick", "seeds", "budgets", "replicates", "arms", "list_arms", "workers", "sequential", "ray", "epochs",
         "model", "margin", "regime", "repeats", "init", "ks", "finetune", "lr_grid", "steps", "folds", "base_epochs",
         "max_units", "cache")
OPTION_CLASSES = (EvalCommand, SweepOptions, PersonalOptions)


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """Derived from the options' fields (config.add_options); an option not given is None."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p, OPTION_CLASSES, ORDER)
    return p


# The options each regime reads beyond the common ones (the others are ignored, as they always were, except
# that the personal regime refuses the sweep's: its --ks, --folds and --base-epochs play their part).
SWEEP_ONLY = ("seeds", "budgets", "replicates", "epochs")
FINETUNE = ("lr_grid", "steps", "folds", "base_epochs", "cache")
READS = {"sweep": SWEEP_ONLY, "personal": ("ks", "max_units", *FINETUNE), "one_person": ("repeats", *FINETUNE)}


def given(args, keys: tuple[str, ...]) -> dict:
    """The options among keys that the user gave (lists as tuples), by their config field name; a flag not
    given reads False (argparse's store_true), a value not given None."""
    return {k: tuple(v) if isinstance(v, list) else v for k in keys
            if (v := getattr(args, k)) is not None and v is not False and v != []}


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
    kw = {"data": args.data or "synthetic", "out": out, "model": args.model or "gazecnn",
          **given(args, ("finetune", "init", "workers", "ray"))}
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
    kw = {"data": args.data, "out": out, "model": args.model or "gazecnn", **given(args, ("init", "workers")),
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
    sweep = dataclasses.replace(sweep, **given(args, ("workers", "ray", "seeds", "budgets", "replicates")),
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
        raise EvalOptionError("--seeds, --budgets, --replicates and --epochs belong to the sweep regime; the personal regime "
                              "uses --ks, --folds and --base-epochs")
    run = {"sweep": sweep_main, "personal": personal_main, "one_person": one_person_main}[regime]
    return run(args, argv, prog)


cli = as_cli(main, resume=RESUME["eval"])
