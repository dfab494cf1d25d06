"""The studies' options that `gazeneg eval` sets, each written once: its help line, --help group and
choices in its field's metadata (config.option), from which cli/eval.py derives the parser. These classes
import no torch, so `gazeneg eval --help` stays fast; sweep.SweepConfig and personal.PersonalConfig extend
them with the defaults that need the arms (every arm of the regime) and the fields no option sets.

    SweepConfig(SweepOptions)        data out seeds budgets replicates arms workers ray  (+ base)
    PersonalConfig(PersonalOptions)  data out model ks arms lr_grid finetune steps folds base_epochs init
                                     max_units workers ray cache  (+ base_budget, seed)

An option several regimes share (--data, --out, --arms, --workers, --ray) is SweepOptions' field, and
PersonalOptions takes it with config.option_of (the same metadata, its own default)."""

from __future__ import annotations

from dataclasses import dataclass

from gazeneg.config import option, option_of
from gazeneg.units import at_least

PERSONAL = "personal regime"   # the --help group of the fine-tuning regimes' options

KS = (9, 36, 144)
# cells: the sweep's equivalence margin, differences within +-margin are "no difference that matters" (here,
# not in study.stats, which imports it, so that `gazeneg eval --help` needs no scipy)
DEFAULT_MARGIN = 0.05
ONE_PERSON_REPEATS = 2     # repeats of the one-person regime's grouped k-fold (one_person.OnePersonConfig)
BASE_CACHE = "runs/personal-base-cache"
# One LR grid for every arm (AdamW, the fine-tune's optimizer). Wide enough that the chosen LR is rarely
# at an edge; the report shows how often each was chosen.
# A first grid (1e-4 to 3e-3) had the baseline choose its top LR for 35 of 36 (person, k): the last layer
# wants more; the 144-way head chose the bottom. The next grid, 1e-4 to 3e-2, had the 144-way head choose
# its bottom LR for 70 of 72 (person, k) and the baseline its top for 5 of 72 (runs/personal-default-1):
# six values, a factor ~3 apart, one step lower.
LR_GRID = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
# The personal regime's grid, one step higher: on renderer version 4 with six folds the baseline chose the
# top of LR_GRID (1e-2) for 35 of 72 (person, k) (runs/personal-v4-6folds); the 144-way head still chooses
# the bottom often, so the bottom stays.
PERSONAL_LR_GRID = (*LR_GRID, 3e-2)


@dataclass(frozen=True)
class SweepOptions:
    """sweep.SweepConfig's options (SweepConfig sets arms to every arm and adds base, the TrainConfig
    overrides every run shares)."""

    data: str = option("synthetic",
        "dataset folder; default the built-in synthetic set ('synthetic:4', 4 frames per cell, so budgets up to 4 "
        "exist; 'synthetic' with --quick)")
    out: str = option("", "output folder (default runs/wrong-labels-<time>); reuse to resume")
    seeds: int = option(5, "seeds per arm (sweep; at least 2)", parse=at_least(2, " for a paired test"))
    budgets: tuple[int, ...] = option((1, 2, 4), "frames per cell per training subject")
    replicates: bool = option(False,
        "sweep on synthetic data: seed s renders its own people (synthetic:F:s) and holds out some of them, so the "
        "seeds are independent replications (no overlap correction) and more seeds shrink the interval as "
        "1/sqrt(seeds); default: the seeds are folds over one set of people")
    arms: list[str] = option(help="subset of arms (see --list-arms)", default_factory=list)
    workers: int = option(0, "processes (0 = all cores)")
    ray: str = option("", "Ray cluster address or 'auto' (needs gazeneg[cluster])", metavar="ADDRESS")   # "" = local


@dataclass(frozen=True)
class PersonalOptions:
    """personal.PersonalConfig's options (PersonalConfig sets arms to every personal arm)."""

    data: str = option_of(SweepOptions, "data", default="synthetic")
    out: str = option_of(SweepOptions, "out", default="")
    model: str = option("gazecnn", "model per run (default mlp; the personal and one-person regimes: gazecnn)")
    ks: tuple[int, ...] = option(KS, f"calibration photos per person (default {' '.join(map(str, KS))})",
                                 group=PERSONAL)
    arms: list[str] = option_of(SweepOptions, "arms", default_factory=list)
    lr_grid: tuple[float, ...] = option(PERSONAL_LR_GRID, "the one LR grid for every arm", group=PERSONAL)
    finetune: str = option("last",
        "last: the head's last layer on features computed once (default, milliseconds); head: the whole fc "
        "head on features; full: the whole network (seconds per fine-tune)",
        group=PERSONAL, choices=("last", "head", "full"))
    steps: int = option(40, "optimizer steps per fine-tune", group=PERSONAL)   # full batch in feature mode
    # Each held-out unit (person, or session) is tested once, in one fold; one base model per fold. The units
    # of a fold share its base, so the comparisons carry the Nadeau-Bengio correction n_test/n_train: 0.5 with
    # 3 folds of 24 people, 0.2 with 6. Measured on renderer version 4 (docs/results.md): 6 folds shrank the
    # median detectable difference from 3.04 / 2.56 / 2.67 to 2.31 / 2.43 / 1.03 cells at k = 9 / 36 / 144,
    # in 1298 s on 2 idle cores. Fewer units than folds: one fold per unit.
    folds: int = option(6, "folds of held-out people (each has its own base model)", group=PERSONAL)
    base_epochs: int = option(0, "epochs of each base model (default: the model's recipe)", group=PERSONAL)
    base_budget: int = 0            # frames per cell per training unit for the base (0 = all)
    init: str = option("",
        "base model for every fold instead of pretraining one (architecture checked; e.g. checkpoints/demo.pt)",
        group=PERSONAL, metavar="CKPT")
    max_units: int = option(0, "test only this many held-out people (0 = all)", group=PERSONAL)   # for full fine-tuning
    workers: int = option_of(SweepOptions, "workers", default=0)
    ray: str = option_of(SweepOptions, "ray", default="")
    seed: int = 0
    cache: str = option(BASE_CACHE, f"folder of cached base models (default {BASE_CACHE})", group=PERSONAL)

