"""The personal regime: one person, k calibration photos, a model fine-tuned from a pretrained base.

The question came from one person with a webcam and too little data. This regime measures it as that
person meets it: a base model pretrained on other people (or sessions), then fine-tuned on k photos of
the held-out person (k = 9, a 9-point calibration, then 36 and 144), with and without wrong labels, and
tested on that person's other photos.

Held-out units. On a data set of several people the unit is the person; on a one-person capture with
several sessions it is the session; with one session, a third of the cells (three cell folds). Units
go into folds; the base model of a fold is trained once on every other unit (cached on disk, keyed by
a hash of its config and rows) or loaded with --init. Each held-out unit's cells are split three ways
(`split_unit`): calibration cells (the first nine are a 3 x 3 grid: the 9-point calibration; the k
photos are their first frames, then their second frames...), validation cells (choose the LR, and the
base model) and test cells. No test cell is ever a calibration or validation cell.

Fine-tuning. The default adapts the head (the model's `fc` MLP) on backbone features computed once per
unit, as few-shot calibration methods do (FAZE, Park et al. ICCV 2019): each fine-tune is a few dozen
full-batch steps on at most 144 feature vectors, milliseconds, so the whole grid (arms x k x LR x
people) fits in minutes. The wrong-label objective acts on the head's output exactly as in full
training: the same WrongLabelObjective (negative_term, backward_combined, literal_step) on the same
predictions. `finetune="full"` fine-tunes the whole network with train.fit (augmentation and EMA, the
CNN's recipe) from the base weights; it costs seconds per fine-tune, so it is for a few arms.

The LR of every arm is chosen per (unit, k) on the validation cells from ONE grid shared by all arms; the
LR-matched control (the baseline at 0.2 x each grid LR) is kept, and every (arm, LR) result is stored, so
the report also compares each arm with the baseline at the very LR the arm chose.

    pcfg = PersonalConfig(data="synthetic", out="runs/personal-1")
    run_personal(pcfg)          # finetunes.csv (every arm x unit x k x LR), base models cached
    personal_report.build_report(pcfg.out)
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gazeneg import grid, seeding
from gazeneg.config import TrainConfig, from_dict, option_of
from gazeneg.data.dataset import DatasetError, GazeDataset
from gazeneg.data.splits import Splits
from gazeneg.files import append_csv_rows, atomic_write_text, lock_folder
from gazeneg.model.checkpoint import init_state, read_checkpoint, save_checkpoint
from gazeneg.model.metrics import COLLAPSED, DIVERGED, OK, centre_guess_error, error_metrics, outcome
from gazeneg.model.networks import GazeModel, Head, create_model
from gazeneg.model.networks import features as cut_features
from gazeneg.study.options import KS, LR_GRID, PersonalOptions, SweepOptions  # noqa: F401 (KS, LR_GRID: re-exported)
from gazeneg.study.sweep import Arm, dataset
from gazeneg.study.tasks import run_tasks
from gazeneg.training.loop import evaluate, fit, tensors
from gazeneg.training.optim import lr_at, make_optimizer, set_lr
from gazeneg.training.step import Recipe, train_step
from gazeneg.wronglabels.guards import weights_finite
from gazeneg.wronglabels.objective import WrongLabelObjective

# KS (9, 36, 144) and PERSONAL_LR_GRID, the defaults of --ks and --lr-grid (the grids' history beside them), are in
# options.py.
QUICK_LR_GRID = (3e-4, 3e-3, 3e-2)
# The 9-point calibration: a 3 x 3 grid of cells at about 10%, 50% and 90% of the screen.
NINE_POINT = tuple((r, c) for r in (1, 4, 7) for c in (1, 7, 14))
D = 2.0

# The base model's recipe per model (pretraining on the other people) and the fine-tune's true-label
# loss: the CNN's own recipe (Huber, augmentation, EMA), and the sweep's plain recipe for the mlp (MSE).
BASE_RECIPE = {
    # TrainConfig's defaults (Huber, AdamW 2e-3, cosine, EMA 0.99, augmentation) but 10 epochs, not 18: a base
    # is trained per fold, and the default run must fit in 15 minutes on 2 cores (12 epochs: 110 s per base,
    # 847 s in all, runs/personal-default-2).
    "gazecnn": dict(epochs=10),
    # The pixel MLP at half TrainConfig's LR: at 2e-3 its MSE start (loss ~100) killed its ReLUs on some folds
    # of the tests' tiny set (the base then predicts a constant).
    "mlp": dict(loss="mse", ema=0.0, epochs=20, batch_size=256, augment=False, flip=False, schedule="none", lr=1e-3,
                weight_decay=0.0),
}
FT_RECIPE = {
    "gazecnn": dict(loss="huber", optimizer="adamw", weight_decay=1e-4, schedule="cosine"),
    "mlp": dict(loss="mse", optimizer="adamw", weight_decay=0.0, schedule="cosine"),
}


# ----------------------------------------------------------------------------------------------
# Arms


def personal_arms() -> list[Arm]:
    """The arms of the personal regime, as data. Family "ft" is compared with the fine-tuned baseline,
    "cls" (a 144-way head) with its own baseline. overrides are TrainConfig fields of the fine-tune, plus
    lr_scale (a multiple of each grid LR) and "no_finetune"."""
    lit = {"neg_mode": "literal", "neg_boundary": "keep"}
    arms = [
        Arm("ft:no_finetune", "ft", {"no_finetune": True}, group="reference",
            note="the base model as it is: no calibration"),
        Arm("ft:baseline", "ft", {}, note="fine-tuned on the k photos, true labels only"),
        Arm("ft:lr_control_0.2", "ft", {"lr_scale": 0.2},
            note="the baseline at 0.2 x each grid LR: the LR-matched control of symmetric Lambda = 0.8"),
    ]
    # The original scheme: "I am sure the error is below B, so use a point B away": w = y + B u on the
    # prediction's side, only where |f - y| < B; "keep" holds w on that side (docs/science.md section 1).
    # As a pull toward y it does not run away at lambda > 1, so large lambda is the natural question.
    for lam in (0.25, 0.5, 1.0, 2.0, 4.0):
        for b in (1, 2, 3):
            arms.append(Arm(f"ft:original_l{lam:g}_B{b}", "ft",
                            {**lit, "neg_policy": "prediction_side", "neg_distance": float(b),
                             "guard_bound": float(b), "neg_lambda": lam},
                            group="original", series="original",
                            note=f"the original scheme: lambda {lam:g}, B = D = {b}, w on the prediction's side"))
    arms += [
        Arm("ft:original_random_B2", "ft", {**lit, "neg_policy": "random", "neg_distance": D, "guard_bound": D,
                                            "neg_lambda": 0.5},
            note="the original scheme's bound B = D = 2 with the wrong point in a random direction, lambda 0.5"),
        Arm("ft:symmetric_k4", "ft", {"neg_mode": "combined", "neg_policy": "symmetric", "neg_k": 4,
                                      "neg_lambda": 0.2, "neg_distance": D, "neg_boundary": "keep"},
            note="4 symmetric points 2 cells away, Lambda = 0.8", same_as="ft:lr_control_0.2"),
        # The original scheme at lambda 0.5, B = 2 in the two other implementations (the arm above is the
        # literal step by a second AdamW with its own moments): the recipe as asked, the fine-tune's own
        # optimizer with its LR set negative for the wrong-label batch; and one combined loss.
        Arm("ft:original_l0.5_B2_same", "ft", {**lit, "neg_policy": "prediction_side", "neg_distance": D,
                                               "guard_bound": D, "neg_lambda": 0.5, "neg_optimizer": "same"},
            note="the original scheme (lambda 0.5, B = 2), the recipe as asked: the same AdamW at LR -lambda x LR"),
        Arm("ft:original_l0.5_B2_combined", "ft", {"neg_mode": "combined", "neg_boundary": "keep",
                                                   "neg_policy": "prediction_side", "neg_distance": D,
                                                   "guard_bound": D, "neg_lambda": 0.5},
            note="the original scheme (lambda 0.5, B = 2) as one combined loss"),
        Arm("ft:naive_l0.3", "ft", {**lit, "neg_policy": "random", "neg_distance": D, "neg_lambda": 0.3},
            note="random wrong point 2 cells away, lambda 0.3, no guard", series="naive"),
        Arm("ft:naive_l1.5", "ft", {**lit, "neg_policy": "random", "neg_distance": D, "neg_lambda": 1.5},
            note="random wrong point 2 cells away, lambda 1.5 (> 1), no guard", series="naive"),
        Arm("cls:baseline", "cls", {"head": "classification"}, group="cls",
            note="144-way softmax head fine-tuned with cross-entropy"),
        Arm("cls:complement", "cls", {"head": "classification", "cls_neg_weight": 1.0, "cls_neg_loss": "complement",
                                      "neg_distance": D, "neg_policy": "random"}, group="cls",
            note="+ -log(1 - p_wrong), a wrong cell 2 away (the bounded complement loss)"),
    ]
    return arms


QUICK_ARMS = ["ft:no_finetune", "ft:baseline", "ft:lr_control_0.2", "ft:original_l0.5_B2", "ft:original_l0.5_B2_same",
              "ft:original_l0.5_B2_combined", "ft:original_l4_B2",
              "ft:original_random_B2", "ft:symmetric_k4", "ft:naive_l1.5", "cls:baseline", "cls:complement"]
# Full fine-tuning costs seconds per run: by default it measures the arms that answer the question.
FULL_ARMS = ["ft:no_finetune", "ft:baseline", "ft:original_l0.5_B2", "ft:original_l4_B2", "ft:symmetric_k4"]
BASELINES = {"ft": "ft:baseline", "cls": "cls:baseline"}


@dataclass(frozen=True)
class PersonalConfig(PersonalOptions):
    """The personal regime's design. Its fields, each option's help with them, are options.PersonalOptions
    (written once there, read by `gazeneg eval`); here only the default arms: every personal arm."""

    arms: list[str] = option_of(SweepOptions, "arms", default_factory=lambda: [a.name for a in personal_arms()])

    @classmethod
    def quick(cls, **kw) -> PersonalConfig:
        return cls(**{"arms": list(QUICK_ARMS), "lr_grid": QUICK_LR_GRID, "folds": 2, "base_epochs": 4,
                      "max_units": 12, "steps": 40, **kw})


# ----------------------------------------------------------------------------------------------
# Held-out units and the per-unit split


@dataclass
class Unit:
    name: str
    rows: np.ndarray                # row indices into the data set


def held_out_units(ds: GazeDataset, seed: int = 0) -> tuple[str, list[Unit]]:
    """(kind, units). kind: "person" (4 or more people), "session" (fewer people, several sessions: each
    person/session pair), or "cells" (one session: three disjoint thirds of the cells)."""
    subjects = sorted(set(ds.subjects.tolist()))
    if len(subjects) >= 4:
        return "person", [Unit(s, np.flatnonzero(ds.subjects == s)) for s in subjects]
    pairs = sorted(set(zip(ds.subjects.tolist(), ds.sessions.tolist(), strict=True)))
    if len(pairs) >= 2:
        names = [s if len(subjects) == 1 else f"{p}/{s}" for p, s in pairs]
        return "session", [Unit(n, np.flatnonzero((ds.subjects == p) & (ds.sessions == s)))
                           for n, (p, s) in zip(names, pairs, strict=True)]
    cells = grid.nearest_cell(ds.targets[:, 0], ds.targets[:, 1])
    uniq = np.unique(cells)
    if len(uniq) < 9:
        raise DatasetError(f"{ds.root}: one person, one session and {len(uniq)} cells: the personal regime needs "
                           f"another session (gazeneg capture --session NAME) or at least 9 cells")
    perm = seeding.numpy_rng(seed, "personal", 999).permutation(uniq)
    return "cells", [Unit(f"cells{i + 1}of3", np.flatnonzero(np.isin(cells, part)))
                     for i, part in enumerate(np.array_split(perm, 3))]


@dataclass
class UnitSplit:
    calib: np.ndarray    # rows of the calibration photos in calibration order: the first k are the k photos
    val: np.ndarray      # rows of the validation cells
    test: np.ndarray     # rows of the test cells
    calib_cells: np.ndarray
    val_cells: np.ndarray
    test_cells: np.ndarray


def split_unit(targets: np.ndarray, rows: np.ndarray, seed: int, unit_no: int, name: str = "") -> UnitSplit:
    """Split one held-out unit's photos by cell: half the cells for calibration (the 9-point grid first),
    a sixth for validation, a third for test. rows: the unit's row indices; targets: the whole data set's
    (N, 2) targets."""
    rows = np.asarray(rows)
    cells = np.atleast_1d(grid.nearest_cell(targets[rows, 0], targets[rows, 1]))
    uniq = np.unique(cells)
    if len(uniq) < 3:
        raise DatasetError(f"held-out unit {name or unit_no} has photos of {len(uniq)} cells; the personal regime needs at least 3 "
                           f"(calibration, validation and test cells are disjoint)")
    rng = seeding.numpy_rng(seed, "personal", unit_no)
    nine = [c for c in (grid.cell_index(r, c) for r, c in NINE_POINT) if c in set(uniq.tolist())]
    rest = rng.permutation([c for c in uniq if c not in nine])
    n_test = max(1, len(uniq) // 3)
    n_val = max(1, len(uniq) // 6)
    order = list(nine) + [int(c) for c in rest]
    test_cells = np.array(order[len(order) - n_test:])
    val_cells = np.array(order[len(order) - n_test - n_val:len(order) - n_test])
    calib_cells = np.array(order[:len(order) - n_test - n_val])
    if len(calib_cells) == 0:
        raise DatasetError(f"held-out unit {name or unit_no} has photos of only {len(uniq)} cells: none left for calibration")
    # Calibration order: the first frame of every calibration cell (9-point grid first), then the second...
    per_cell = {int(c): rows[cells == c] for c in calib_cells}
    calib = []
    for f in range(max(len(v) for v in per_cell.values())):
        calib += [int(v[f]) for v in per_cell.values() if f < len(v)]
    split = UnitSplit(np.array(calib), rows[np.isin(cells, val_cells)], rows[np.isin(cells, test_cells)],
                      calib_cells, val_cells, test_cells)
    assert not set(test_cells.tolist()) & (set(calib_cells.tolist()) | set(val_cells.tolist()))
    return split


def make_folds(n_units: int, folds: int, seed: int) -> list[list[int]]:
    """Unit numbers per fold: every unit is held out once, in min(folds, n_units) folds."""
    n = max(1, min(folds, n_units))
    order = seeding.numpy_rng(seed, "split").permutation(n_units)
    return [sorted(int(u) for u in order[f::n]) for f in range(n)]


# ----------------------------------------------------------------------------------------------
# Base models (once per fold, cached on disk)


def base_config(pcfg: PersonalConfig, fold: int) -> TrainConfig:
    if pcfg.model not in BASE_RECIPE:
        raise ValueError(f"personal regime: model {pcfg.model!r} has no recipe; choose one of "
                         f"{', '.join(BASE_RECIPE)}")
    ov = {**BASE_RECIPE[pcfg.model], "model": pcfg.model, "data": pcfg.data, "seed": pcfg.seed + fold,
          "progress": True, "save_checkpoints": False, "device": "cpu", "name": f"base-fold{fold}"}
    if pcfg.base_epochs:
        ov["epochs"] = pcfg.base_epochs
        if pcfg.base_epochs < 10 and TrainConfig(**{k: v for k, v in ov.items() if k != "data"}).ema > 0:
            # A short run (--quick) ends before a 0.99 EMA (a ~100-step horizon) forgets the initial weights.
            ov["ema"] = 0.9
    return from_dict(ov)


def _digest(values) -> str:
    return hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()[:16]


def base_key(cfg: TrainConfig, ds: GazeDataset, train_rows, val_rows) -> str:
    """A hash of what decides the base model: its config (not where or how verbosely it runs) and the
    photos it trains and selects on."""
    c = {k: v for k, v in cfg.to_dict().items() if k not in ("out", "name", "progress", "threads", "save_checkpoints")}
    return _digest([json.dumps(c, sort_keys=True), str(Path(ds.root).resolve()), len(ds),
                    _digest(ds.paths[np.sort(train_rows)]), _digest(ds.paths[np.sort(val_rows)]), "v1"])


def _budget_rows(ds: GazeDataset, rows: np.ndarray, budget: int) -> np.ndarray:
    if budget <= 0:
        return rows
    cells = grid.nearest_cell(ds.targets[rows, 0], ds.targets[rows, 1])
    seen: dict = {}
    keep = []
    for r, key in zip(rows, zip(ds.subjects[rows].tolist(), ds.sessions[rows].tolist(),
                                np.atleast_1d(cells).tolist(), strict=True), strict=True):
        if seen.get(key, 0) < budget:
            seen[key] = seen.get(key, 0) + 1
            keep.append(r)
    return np.array(keep)


def train_base(pcfg: PersonalConfig, ds: GazeDataset, fold: int, train_rows, val_rows, log=print,
               classification: bool = True) -> dict:
    """The fold's base models: {"regression": path, "classification": path, "seconds": s, "cached": bool}
    (with classification=False the 144-way model is neither trained nor needed from the cache).
    The regression model is train.fit on the other units, selected on the held-out units' validation cells
    (never their test cells); the 144-way classification model shares its backbone, with a new fc MLP
    trained by cross-entropy on the same photos' features."""
    cfg = base_config(pcfg, fold)
    train_rows = _budget_rows(ds, np.asarray(train_rows), pcfg.base_budget)
    key = base_key(cfg, ds, train_rows, val_rows)
    cache = Path(pcfg.cache)
    cache.mkdir(parents=True, exist_ok=True)
    paths = {"regression": cache / f"base-{key}.pt", "classification": cache / f"base-{key}-cls.pt"}
    if all(p.is_file() for k, p in paths.items() if classification or k == "regression"):
        meta = read_checkpoint(paths["regression"])["extra"]
        return {**{k: str(v) for k, v in paths.items()}, "seconds": float(meta.get("seconds", 0.0)), "cached": True,
                "key": key}
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, pcfg.workers or os.cpu_count() or 1))
    sp = Splits(ds.subset(train_rows), ds.subset(val_rows), ds.subset(val_rows))
    log(f"base model for fold {fold}: {cfg.model}, {len(sp.train)} photos of the other units, {cfg.epochs} epochs")
    res = fit(cfg, sp, log=lambda *_: None)
    kwargs = {"head": "regression", **cfg.model_kwargs}
    extra = {"key": key, "fold": fold, "val_error": res.state.best_err, "fit_seconds": res.train_seconds}
    cls_model = classification_base(res.model, cfg, sp) if classification else None
    extra["seconds"] = time.perf_counter() - t0
    if cls_model is not None:
        save_checkpoint(paths["classification"], cls_model, model_name=cfg.model,
                        model_kwargs={**kwargs, "head": "classification"}, config=cfg.to_dict(), epoch=0, extra=extra)
    save_checkpoint(paths["regression"], res.model, model_name=cfg.model, model_kwargs=kwargs, config=cfg.to_dict(),
                    epoch=res.state.best_epoch, extra=extra)
    return {**{k: str(v) for k, v in paths.items()}, "seconds": extra["seconds"], "cached": False, "key": key}


def classification_base(reg: GazeModel, cfg: TrainConfig, sp: Splits, epochs: int = 30) -> GazeModel:
    """A 144-way model with the regression base's backbone and face MLP and a new fc MLP trained by
    cross-entropy (step.train_step, no wrong labels) on their features of the base's training photos
    (minibatches of 256, AdamW 2e-3)."""
    model = create_model(cfg.model, head="classification", **cfg.model_kwargs)
    state = {k: v for k, v in reg.state_dict().items() if not k.startswith("fc.")}
    state.update({k: v for k, v in model.state_dict().items() if k.startswith("fc.")})   # a fresh 144-way fc
    model.load_state_dict(state)
    h = features(model, sp.train, part="head")
    y = torch.from_numpy(sp.train.targets.astype(np.float32))
    head = Head(model, "head")   # the model's own fc: training the head trains the model
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-4)
    recipe, no_wrong_labels = Recipe(head="classification", seed=cfg.seed), WrongLabelObjective()
    g = seeding.torch_generator(cfg.seed, "personal", 1)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(h), generator=g)
        for s in range(0, len(h), 256):
            i = order[s:s + 256]
            train_step(recipe, head, opt, opt, no_wrong_labels, (h[i], None, y[i]), i, step=0, lam=0.0, lr=2e-3)
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Head-only fine-tuning on features computed once


HEAD_PARTS = ("last", "head")   # the fine-tuned part in feature mode (networks.Head's cut): fc's last Linear
                                # layer, or all of fc


def features(model: GazeModel, ds: GazeDataset, part: str = "last", batch_size: int = 512) -> torch.Tensor:
    """(N, F) float32 networks.features of a data set's photos up to a HEAD_PARTS cut, in eval mode: what
    networks.Head(model, part) takes."""
    return cut_features(model, ds.images, ds.face, part, batch_size=batch_size)


def finetune_head(head: Head, h: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, steps: int) -> tuple[Head, bool]:
    """Fine-tune a copy of head on features h (k, F) and targets y (k, 2): `steps` full-batch steps of
    step.train_step, the very step full training takes, with the config's optimizer, LR (its schedule over
    the steps: optim.lr_at), true-label loss and wrong-label objective (combined: one backward of
    pos - lambda N; literal: a separate optimizer's step at -lambda * lr). Returns (the fine-tuned head,
    diverged)."""
    head = copy.deepcopy(head).train()
    torch.manual_seed(seeding.seed_int(cfg.seed, "torch", 0))
    obj = WrongLabelObjective.from_config(cfg, n_train=len(y))
    params = list(head.parameters())
    opt = make_optimizer(cfg, params)
    neg_opt = obj.pick_neg_optimizer(opt, lambda: make_optimizer(cfg, params, negative=True))
    recipe, idx = Recipe.from_config(cfg), torch.arange(len(y))
    lam = obj.lambda_at(cfg.epochs - 1)   # constant schedule: the base lambda
    for step in range(steps):
        lr = lr_at(cfg, step, steps)
        set_lr(opt, lr)
        if not math.isfinite(train_step(recipe, head, opt, neg_opt, obj, (h, None, y), idx, step=step, lam=lam,
                                        lr=lr)):
            return head, True
    return head.eval(), not weights_finite(head)


@torch.no_grad()
def head_points(head: Head, h: torch.Tensor) -> np.ndarray:
    head.eval()
    return head.points(head(h)).double().numpy()


def ft_config(arm: Arm, lr: float, pcfg: PersonalConfig, seed: int, k: int) -> TrainConfig:
    """The fine-tune's TrainConfig for an arm at grid LR lr (times the arm's lr_scale)."""
    ov = {**FT_RECIPE[pcfg.model], **{k_: v for k_, v in arm.overrides.items() if k_ not in ("lr_scale",
                                                                                          "no_finetune")}}
    lr = lr * float(arm.overrides.get("lr_scale", 1.0))
    base = dict(model=pcfg.model, data=pcfg.data, seed=seed, lr=lr, progress=False, save_checkpoints=False,
                threads=1, device="cpu", name=arm.name)
    if pcfg.finetune == "full":
        # The CNN's recipe with its augmentation and EMA, from the base weights; steps of at most 32 photos.
        bs = min(32, k)
        base.update(batch_size=bs, epochs=max(1, round(pcfg.steps / math.ceil(k / bs))),
                    augment=pcfg.model == "gazecnn", flip=False, ema=0.9 if pcfg.model == "gazecnn" else 0.0)
    return from_dict({**base, **ov})


# ----------------------------------------------------------------------------------------------
# One held-out unit (executed in a worker)

FIELDS = ["arm", "family", "group", "person", "unit_kind", "fold", "budget", "k_used", "lr", "selected",
          "val_error", "final_test_error", "best_test_error", "cell_accuracy", "diverged", "collapsed",
          "val_outcome", "seconds", "feature_seconds", "finetune", "centre_error"]


@dataclass
class UnitTask:
    unit: str
    unit_no: int
    kind: str
    fold: int
    rows: list
    base: dict          # {"regression": path, "classification": path}
    data: GazeDataset | None = None   # the unit's photos (rows then index into them): a worker need not
                                      # load the whole data set


def select_lr(rows: list[dict]) -> dict:
    """The row whose LR gives the lowest validation error among the runs whose validation outcome is ok
    (else the lowest validation error of all). Only validation errors are read: never a test error."""
    ok = [r for r in rows if r["val_outcome"] == OK and math.isfinite(r["val_error"])]
    pool = ok or [r for r in rows if math.isfinite(r["val_error"])] or rows
    return min(pool, key=lambda r: (r["val_error"] if math.isfinite(r["val_error"]) else math.inf, r["lr"]))


def execute_unit(task: UnitTask, pcfg: PersonalConfig) -> list[dict]:
    """Every arm x k x LR for one held-out unit; returns finetunes.csv rows (the chosen LR marked)."""
    torch.set_num_threads(1)
    ds = task.data if task.data is not None else dataset(pcfg.data)
    rows_ = np.arange(len(ds)) if task.data is not None else np.asarray(task.rows)
    split = split_unit(ds.targets, rows_, pcfg.seed, task.unit_no, task.unit)
    arms = {a.name: a for a in personal_arms()}
    val, test = ds.subset(split.val), ds.subset(split.test)
    yv, yt = val.targets.astype(np.float64), test.targets.astype(np.float64)
    cv, ct = centre_guess_error(yv), centre_guess_error(yt)
    models = {}
    for head_type in ("regression", "classification"):
        ck = read_checkpoint(task.base[head_type])
        m = create_model(ck["model_name"], **ck["model_kwargs"])
        m.load_state_dict(ck["state_dict"])
        models[head_type] = m.eval()
    t0 = time.perf_counter()
    feats = {}
    if pcfg.finetune in HEAD_PARTS:
        for head_type, m in models.items():
            feats[head_type] = {"calib": features(m, ds.subset(split.calib), pcfg.finetune),
                                "val": features(m, val, pcfg.finetune), "test": features(m, test, pcfg.finetune)}
    feature_seconds = time.perf_counter() - t0
    rows = []
    common = {"person": task.unit, "unit_kind": task.kind, "fold": task.fold, "finetune": pcfg.finetune,
              "feature_seconds": feature_seconds}

    # "Collapsed" is judged on the VALIDATION cells against a reference that does not shrink with a unit's
    # target layout: the centre guess's error over the whole screen (or the unit's own, if larger). A unit
    # whose targets sit near the centre has a tiny centre-guess error of its own, which a good model can miss.
    ref = max(cv, centre_guess_error(grid.cell_centres()))

    def measure(pv, pt, diverged):
        ev = error_metrics(pv, yv)["mean_error_cells"] if not diverged else math.inf
        mt = error_metrics(pt, yt) if not diverged else {"mean_error_cells": math.inf, "cell_accuracy": 0.0}
        res = outcome(ev, ref, nonfinite=diverged)
        return {"val_error": ev, "final_test_error": mt["mean_error_cells"], "best_test_error": mt["mean_error_cells"],
                "cell_accuracy": mt["cell_accuracy"], "diverged": res == DIVERGED, "collapsed": res == COLLAPSED,
                "val_outcome": res, "centre_error": ct}

    for k in pcfg.ks:
        kk = min(k, len(split.calib))
        calib = ds.subset(split.calib[:kk])
        y = torch.from_numpy(calib.targets.astype(np.float32))
        for name in pcfg.arms:
            arm = arms[name]
            head_type = arm.overrides.get("head", "regression")
            base_row = {"arm": name, "family": arm.family, "group": arm.group, "budget": k, "k_used": kk, **common}
            if arm.overrides.get("no_finetune"):
                t1 = time.perf_counter()
                m = models[head_type]
                pv, pt = evaluate(m, tensors(val), torch.device("cpu")), evaluate(m, tensors(test), torch.device("cpu"))
                rows.append({**base_row, "lr": 0.0, "selected": True, **measure(pv, pt, False),
                             "seconds": time.perf_counter() - t1})
                continue
            cand = []
            for lr in pcfg.lr_grid:
                cfg = ft_config(arm, lr, pcfg, pcfg.seed, kk)
                t1 = time.perf_counter()
                if pcfg.finetune in HEAD_PARTS:
                    f = feats[head_type]
                    head, diverged = finetune_head(Head(models[head_type], pcfg.finetune), f["calib"][:kk], y, cfg,
                                                   pcfg.steps)
                    pv = head_points(head, f["val"]) if not diverged else None
                    pt = head_points(head, f["test"]) if not diverged else None
                else:
                    pv, pt, diverged = _finetune_full(models[head_type], cfg, calib, val, test)
                cand.append({**base_row, "lr": cfg.lr, "selected": False, **measure(pv, pt, diverged),
                             "seconds": time.perf_counter() - t1})
            select_lr(cand)["selected"] = True
            rows += cand
    return rows


def _finetune_full(model: GazeModel, cfg: TrainConfig, calib, val, test):
    res = fit(cfg, Splits(calib, val, test), log=lambda *_: None, init_state=model.state_dict())
    if res.state.diverged:
        return None, None, True
    m = copy.deepcopy(res.model)
    m.load_state_dict(res.final_state)
    cpu = torch.device("cpu")
    return evaluate(m, tensors(val), cpu), evaluate(m, tensors(test), cpu), False


# ----------------------------------------------------------------------------------------------
# The regime


def plan(pcfg: PersonalConfig, ds: GazeDataset) -> tuple[str, list[Unit], list[list[int]]]:
    kind, units = held_out_units(ds, pcfg.seed)
    folds = make_folds(len(units), pcfg.folds, pcfg.seed)
    if pcfg.max_units:
        keep = set(sorted(range(len(units)), key=lambda u: [u in f for f in folds].index(True))[:pcfg.max_units])
        folds = [[u for u in f if u in keep] for f in folds]
        folds = [f for f in folds if f]
    return kind, units, folds


def run_personal(pcfg: PersonalConfig, *, progress: bool = True, sequential: bool = False, log=print) -> Path:
    """Pretrain (or load) the base models, fine-tune every arm x k x LR for every held-out unit, append the
    rows to finetunes.csv unit by unit (re-running the same command resumes), write personal.json. One
    process at a time writes an --out folder (its .personal.lock): two at once wrote every row twice."""
    out = Path(pcfg.out)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(out, "personal", lambda _m: ValueError(
        f"{out} is in use by another personal run (it holds {out / '.personal.lock'}); wait for it to finish or "
        "choose another --out"))
    try:
        return _run_personal(pcfg, progress=progress, sequential=sequential, log=log)
    except BaseException:
        lock.release()
        if not existed and {p.name for p in out.iterdir()} <= {".personal.lock"}:   # a failed start leaves nothing
            (out / ".personal.lock").unlink(missing_ok=True)
            out.rmdir()
        raise
    finally:
        lock.release()


def _run_personal(pcfg: PersonalConfig, *, progress: bool, sequential: bool, log) -> Path:
    arms = {a.name: a for a in personal_arms()}
    unknown = [a for a in pcfg.arms if a not in arms]
    if unknown:
        raise ValueError(f"unknown personal arm(s) {', '.join(unknown)}; known: {', '.join(arms)}")
    if pcfg.finetune not in (*HEAD_PARTS, "full"):
        raise ValueError(f"finetune must be one of {', '.join((*HEAD_PARTS, 'full'))}, not {pcfg.finetune!r}")
    if not pcfg.lr_grid or min(pcfg.lr_grid) <= 0:
        raise ValueError(f"the LR grid must be positive numbers, not {pcfg.lr_grid}")
    out = Path(pcfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = dataset(pcfg.data)
    kind, units, folds = plan(pcfg, ds)
    meta = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(pcfg).items()
                       if k not in ("workers", "ray", "out")},
            "unit_kind": kind, "units": [u.name for u in units], "folds": [[units[u].name for u in f] for f in folds]}
    meta_path = out / "personal.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in meta} != json.loads(json.dumps(meta)):
            raise ValueError(f"{out} holds a different personal run ({meta_path}); choose another --out or the "
                             f"same options")
    done = _done_units(out)
    t0 = time.perf_counter()
    tasks, bases = [], []
    for f, members in enumerate(folds):
        if all(units[u].name in done for u in members):
            continue
        held = np.concatenate([units[u].rows for u in members])
        splits = {u: split_unit(ds.targets, units[u].rows, pcfg.seed, u, units[u].name) for u in members}
        val_rows = np.concatenate([s.val for s in splits.values()])
        others = np.setdiff1d(np.arange(len(ds)), held)
        if pcfg.init:
            base = _init_base(pcfg, out, f, others)
        else:
            base = train_base(pcfg, ds, f, others, val_rows, log=log)
        bases.append({"fold": f, **base})
        tasks += [UnitTask(units[u].name, u, kind, f, units[u].rows.tolist(), base, ds.subset(units[u].rows))
                  for u in members if units[u].name not in done]
    base_seconds = time.perf_counter() - t0
    meta["bases"] = bases if bases else json.loads(meta_path.read_text()).get("bases", []) if meta_path.exists() else []
    meta["base_seconds"] = base_seconds
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    t1 = time.perf_counter()
    bar = tqdm(total=len(tasks) + len(done), initial=len(done), unit="person" if kind == "person" else kind,
               desc="fine-tune", disable=not progress, dynamic_ncols=True)
    try:
        for rows in run_tasks([(t,) for t in tasks], execute_unit, pcfg, workers=pcfg.workers,
                              ray=pcfg.ray, sequential=sequential):
            _append(out, rows)
            bar.update(1)
    finally:
        bar.close()
    meta["finetune_seconds"] = time.perf_counter() - t1
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return out


def _init_base(pcfg: PersonalConfig, out: Path, fold: int, others: np.ndarray) -> dict:
    """--init: the checkpoint is every fold's regression base (architecture checked); the fold's 144-way
    twin gets the checkpoint's backbone and an fc fitted by cross-entropy on the photos of the fold's other
    units (never a held-out unit's), as train_base does."""
    state = init_state(pcfg.init, pcfg.model, {"head": "regression"})
    model = create_model(pcfg.model)
    model.load_state_dict(state)
    path = out / "init-regression.pt"
    if not path.is_file():
        save_checkpoint(path, model, model_name=pcfg.model, model_kwargs={"head": "regression"}, config={}, epoch=0,
                        extra={"from": str(pcfg.init)})
    cls_path = out / f"init-classification-fold{fold}.pt"
    if not cls_path.is_file():
        sub = dataset(pcfg.data).subset(others)
        cls = classification_base(model, from_dict({"model": pcfg.model, "seed": pcfg.seed + fold}),
                                  Splits(sub, sub, sub))
        save_checkpoint(cls_path, cls, model_name=pcfg.model, model_kwargs={"head": "classification"}, config={},
                        epoch=0, extra={"from": str(pcfg.init)})
    return {"regression": str(path), "classification": str(cls_path), "seconds": 0.0, "cached": True,
            "key": "init:" + str(pcfg.init)}


def _done_units(out: Path) -> set:
    path = out / "finetunes.csv"
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {r["person"] for r in csv.DictReader(f)}


def _append(out: Path, rows: list[dict]) -> None:
    """One unit's rows at once, flushed: a unit is either wholly in finetunes.csv or not at all. A file
    begun by an older version keeps its own columns."""
    path = out / "finetunes.csv"
    fields = FIELDS
    if path.exists():
        with open(path, newline="") as f:
            fields = next(csv.reader(f), None) or FIELDS
    append_csv_rows(path, fields, rows, ignore_extra=True)


def read_finetunes(out) -> list[dict]:
    rows = []
    with open(Path(out) / "finetunes.csv", newline="") as f:
        for r in csv.DictReader(f):
            for k in ("lr", "val_error", "final_test_error", "best_test_error", "cell_accuracy", "seconds",
                      "feature_seconds", "centre_error"):
                r[k] = float(r[k]) if r.get(k) not in ("", None) else math.nan
            for k in ("budget", "k_used", "fold"):
                r[k] = int(r[k])
            for k in ("selected", "diverged", "collapsed"):
                r[k] = r[k] == "True"
            rows.append(r)
    return rows


def one_person(data: str) -> bool:
    """Whether a dataset folder holds one person (then the personal regime is the default)."""
    if data.startswith("synthetic"):
        return False
    labels = Path(data) / "labels.csv"
    if not labels.is_file():
        return False
    with open(labels, newline="") as f:
        return len({r.get("subject") for r in csv.DictReader(f)}) == 1
