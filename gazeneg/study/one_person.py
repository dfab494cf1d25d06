"""The one-person regime: one person's own labelled photos, and a verdict with power.

The question came from one person with a webcam and a set of their own photos. Holding out whole sessions
(the personal regime on such a capture) gives n = 3 units, bases pretrained on a fraction of the person's
data, and intervals wider than any effect. This regime answers inside the person's data instead:

- Repeated, grouped cross-validation. The photos are grouped by target position (the screen cell: the
  photos of one target are never split between training and test), or by session where every session
  covers most of the grid; `repeats` shuffles of the groups into `folds` folds. Every arm runs on the same
  folds and seeds: the comparisons are paired by fold.
- Per fold: an inner validation split (a share of the training groups) chooses each arm's LR from one grid;
  the rest of the training groups are the photos the arms learn from; the fold's own groups are the test.
- Arms: the base model (pretrained ONCE on other people, the built-in synthetic set, or the user's --init;
  never on a slice of this person's data) with its head fine-tuned on the fold's photos: with true labels
  only (the baseline) and with wrong labels (the original scheme in its three implementations, larger
  lambda, symmetric points, the naive step); the base as it is (no fine-tuning); and the CNN trained from
  scratch on the fold's photos (`gazeneg train`'s recipe), the baseline a person with this many photos
  would otherwise use.
- "Collapsed" is judged on the validation photos against the centre guess's error over the whole screen
  (or the validation photos' own, if larger), a reference that does not shrink with a fold's targets.
- The folds' training sets overlap, so the statistics (stats.py) carry the Nadeau-Bengio correction with
  n_test/n_train = 1/(folds - 1).

    cfg = OnePersonConfig(data="my_capture", out="runs/one-1")
    run_one_person(cfg)           # rows.csv (every arm x fold x LR), one_person.json
    build_report(cfg.out)         # summary.json, report.md
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from gazeneg import grid, seeding
from gazeneg.config import from_dict
from gazeneg.data.dataset import DatasetError, GazeDataset
from gazeneg.data.splits import Splits
from gazeneg.files import append_csv_rows, atomic_write_text
from gazeneg.model.checkpoint import init_state, read_checkpoint
from gazeneg.model.metrics import COLLAPSED, DIVERGED, centre_guess_error, error_metrics, outcome
from gazeneg.model.networks import create_model
from gazeneg.study.formatting import clean_json, fmt, fmt_signed
from gazeneg.study.options import BASE_CACHE, ONE_PERSON_REPEATS
from gazeneg.study.personal import (
    BASE_RECIPE,
    LR_GRID,
    QUICK_LR_GRID,
    Head,
    PersonalConfig,
    features,
    finetune_head,
    ft_config,
    head_points,
    personal_arms,
    select_lr,
    train_base,
)
from gazeneg.study.stats import ALPHA, POWER, summarize
from gazeneg.study.sweep import Arm, dataset
from gazeneg.training.loop import evaluate, fit, tensors

OWN = "own:trained"
ARMS = ["ft:no_finetune", "ft:baseline", "ft:original_l0.5_B2", "ft:original_l0.5_B2_same",
        "ft:original_l0.5_B2_combined", "ft:original_l4_B2", "ft:symmetric_k4", "ft:naive_l1.5", OWN]
# --quick: the original scheme's three implementations against the fine-tuned baseline and the base as it
# is (the positive control that sets the margin). The CNN trained from scratch on the person's photos is not
# a --quick arm: at --quick's few epochs it measured 4.3 cells (about the centre guess) at 13% of the run's
# time (docs/results-study.md); `--arms ... own:trained` adds it back.
QUICK_ARMS = ["ft:no_finetune", "ft:baseline", "ft:original_l0.5_B2", "ft:original_l0.5_B2_same",
              "ft:original_l0.5_B2_combined"]
# --quick's base: pretrained on one frame per person and target of base_data (3,024 photos of the built-in
# set, not 6,048) for 2 epochs, regression only: the whole base took 76% of a --quick run (1003 of 1315 s).
QUICK_BASE = {"base_budget": 1, "base_epochs": 2}
BASELINES = {"ft": "ft:baseline"}
FIELDS = ["arm", "family", "group", "person", "repeat", "fold", "budget", "lr", "selected", "val_error",
          "final_test_error", "best_test_error", "cell_accuracy", "diverged", "collapsed", "val_outcome",
          "centre_error", "n_train", "n_val", "n_test", "seconds"]


def own_arm() -> Arm:
    return Arm(OWN, "ft", {}, group="reference",
               note="the CNN trained from scratch on the fold's photos of this person (gazeneg train's recipe)")


def one_person_arms() -> dict:
    arms = {a.name: a for a in personal_arms()}
    arms[OWN] = own_arm()
    return arms


@dataclass(frozen=True)
class OnePersonConfig:
    data: str = ""
    out: str = ""
    model: str = "gazecnn"
    folds: int = 4
    repeats: int = ONE_PERSON_REPEATS
    arms: list = field(default_factory=lambda: list(ARMS))
    lr_grid: tuple = LR_GRID
    finetune: str = "last"          # the head part fine-tuned on features computed once (personal.HEAD_PARTS)
    steps: int = 60
    init: str = ""                  # a checkpoint as the base instead of pretraining one on base_data
    base_data: str = "synthetic"    # other people the base is pretrained on (once, cached)
    base_epochs: int = 0            # 0 = the model's recipe
    base_budget: int = 0            # frames per person and target of base_data the base learns from (0 = all)
    own_epochs: int = 10            # epochs of the CNN trained on the person's own photos, per fold
    val_share: float = 0.2          # share of a fold's training groups that choose the LR
    seed: int = 0
    workers: int = 0
    cache: str = BASE_CACHE
    quick_design: bool = False      # set by quick(): the report says it is the smaller design

    @classmethod
    def quick(cls, **kw) -> OnePersonConfig:
        """3 folds x 1 repeat, QUICK_ARMS, QUICK_LR_GRID, QUICK_BASE (the default: 4 folds x 2 repeats, ARMS,
        LR_GRID, the base on all of base_data for the model's recipe)."""
        return cls(**{"folds": 3, "repeats": 1, "arms": list(QUICK_ARMS), "lr_grid": QUICK_LR_GRID, **QUICK_BASE,
                      "own_epochs": 4, "quick_design": True, **kw})


# ----------------------------------------------------------------------------------------------
# Groups and folds


def groups_of(ds: GazeDataset, min_cover: float = 0.5) -> tuple[str, np.ndarray]:
    """("session", session per photo) when there are 3 or more sessions and each covers at least min_cover of
    the capture's targets (then a session is a fair test of the whole grid); else ("target", the screen
    cell per photo): the photos of one target always stay together."""
    cells = np.atleast_1d(grid.nearest_cell(ds.targets[:, 0], ds.targets[:, 1]))
    sessions = ds.sessions.astype(str)
    uniq = sorted(set(sessions.tolist()))
    n_cells = len(np.unique(cells))
    if len(uniq) >= 3 and all(len(np.unique(cells[sessions == s])) >= min_cover * n_cells for s in uniq):
        return "session", sessions
    return "target", cells.astype(str)


def make_folds(groups: np.ndarray, folds: int, repeats: int, seed: int) -> list[dict]:
    """Repeated grouped k-fold: [{"repeat", "fold", "test_groups"}], each repeat a new shuffle of the groups."""
    uniq = np.array(sorted(set(groups.tolist())))
    k = min(folds, len(uniq))
    if k < 2:
        raise DatasetError(f"the one-person regime needs photos of at least 2 targets (or sessions); found {len(uniq)}")
    out = []
    for r in range(repeats):
        perm = seeding.numpy_rng(seed, "personal", 10_000 + r).permutation(uniq)
        for f in range(k):
            out.append({"repeat": r, "fold": f, "test_groups": sorted(perm[f::k].tolist())})
    return out


def fold_rows(groups: np.ndarray, test_groups, val_share: float, seed: int, key: int):
    """(train, val, test) row indices: test = the fold's groups; val = a val_share of the other groups
    (at least one), chosen per fold; train = the rest."""
    test_mask = np.isin(groups, test_groups)
    rest = np.array(sorted(set(groups[~test_mask].tolist())))
    n_val = max(1, int(round(val_share * len(rest))))
    if len(rest) - n_val < 1:
        raise DatasetError("too few targets for a training, a validation and a test split in every fold")
    val_groups = seeding.numpy_rng(seed, "personal", 20_000 + key).permutation(rest)[:n_val]
    val_mask = np.isin(groups, val_groups)
    return np.flatnonzero(~test_mask & ~val_mask), np.flatnonzero(val_mask), np.flatnonzero(test_mask)


# ----------------------------------------------------------------------------------------------
# The base model (once)


def base_model(cfg: OnePersonConfig, log=print):
    """(regression base model, seconds, where it came from): the user's --init, or a base pretrained on
    base_data (other people; personal.train_base, cached on disk)."""
    t0 = time.perf_counter()
    if cfg.init:
        m = create_model(cfg.model)
        m.load_state_dict(init_state(cfg.init, cfg.model, {"head": "regression"}))
        return m.eval(), 0.0, f"--init {cfg.init}"
    ds = dataset(cfg.base_data)
    subjects = sorted(set(ds.subjects.tolist()))
    if len(subjects) < 2:
        raise DatasetError(f"{cfg.base_data}: the base is pretrained on other people; it holds {len(subjects)}")
    val_subj = subjects[-max(1, len(subjects) // 8):]
    val = np.flatnonzero(np.isin(ds.subjects, val_subj))
    train = np.flatnonzero(~np.isin(ds.subjects, val_subj))
    pc = PersonalConfig(data=cfg.base_data, model=cfg.model, base_epochs=cfg.base_epochs,
                        base_budget=cfg.base_budget, seed=cfg.seed, workers=cfg.workers, cache=cfg.cache)
    base = train_base(pc, ds, 0, train, val, log=log, classification=False)
    ck = read_checkpoint(base["regression"])
    m = create_model(ck["model_name"], **ck["model_kwargs"])
    m.load_state_dict(ck["state_dict"])
    frames = f"{cfg.base_budget} frame(s) per person and target" if cfg.base_budget else "all their photos"
    epochs = f"{cfg.base_epochs} epochs" if cfg.base_epochs else "the model's recipe"
    how = (f"pretrained on {cfg.base_data} ({len(subjects) - len(val_subj)} other people, {frames}, {epochs}; "
           f"cached in {cfg.cache})")
    return m.eval(), time.perf_counter() - t0 if not base["cached"] else 0.0, how


# ----------------------------------------------------------------------------------------------
# One fold


def run_fold(cfg: OnePersonConfig, ds: GazeDataset, base, groups: np.ndarray, fold: dict) -> list[dict]:
    """Every arm x LR on one fold; returns rows (the LR chosen on validation marked)."""
    tag = f"r{fold['repeat']}f{fold['fold']}"
    tr, va, te = fold_rows(groups, fold["test_groups"], cfg.val_share, cfg.seed, 100 * fold["repeat"] + fold["fold"])
    train, val, test = ds.subset(tr), ds.subset(va), ds.subset(te)
    yv, yt = val.targets.astype(np.float64), test.targets.astype(np.float64)
    ref = max(centre_guess_error(yv), centre_guess_error(grid.cell_centres()))
    ct = centre_guess_error(yt)
    arms = one_person_arms()
    common = {"person": tag, "repeat": fold["repeat"], "fold": fold["fold"], "budget": 1, "n_train": len(tr),
              "n_val": len(va), "n_test": len(te), "centre_error": ct}

    def measure(pv, pt, diverged):
        ev = error_metrics(pv, yv)["mean_error_cells"] if not diverged else math.inf
        mt = error_metrics(pt, yt) if not diverged else {"mean_error_cells": math.inf, "cell_accuracy": 0.0}
        res = outcome(ev, ref, nonfinite=diverged)
        return {"val_error": ev, "final_test_error": mt["mean_error_cells"], "best_test_error": mt["mean_error_cells"],
                "cell_accuracy": mt["cell_accuracy"], "diverged": res == DIVERGED, "collapsed": res == COLLAPSED,
                "val_outcome": res}

    f = {"calib": features(base, train, cfg.finetune), "val": features(base, val, cfg.finetune),
         "test": features(base, test, cfg.finetune)}
    y = torch.from_numpy(train.targets.astype(np.float32))
    rows = []
    for name in cfg.arms:
        arm = arms[name]
        row0 = {"arm": name, "family": arm.family, "group": arm.group, **common}
        t1 = time.perf_counter()
        if name == OWN:
            rows.append({**row0, "lr": 0.0, "selected": True, **_own(cfg, train, val, test, measure),
                         "seconds": time.perf_counter() - t1})
            continue
        if arm.overrides.get("no_finetune"):
            cpu = torch.device("cpu")
            rows.append({**row0, "lr": 0.0, "selected": True,
                         **measure(evaluate(base, tensors(val), cpu), evaluate(base, tensors(test), cpu), False),
                         "seconds": time.perf_counter() - t1})
            continue
        cand = []
        for lr in cfg.lr_grid:
            fc = ft_config(arm, lr, PersonalConfig(model=cfg.model, finetune=cfg.finetune), cfg.seed + fold["repeat"],
                           len(y))
            t1 = time.perf_counter()
            head, diverged = finetune_head(Head(base, cfg.finetune), f["calib"], y, fc, cfg.steps)
            pv = head_points(head, f["val"]) if not diverged else None
            pt = head_points(head, f["test"]) if not diverged else None
            cand.append({**row0, "lr": fc.lr, "selected": False, **measure(pv, pt, diverged),
                         "seconds": time.perf_counter() - t1})
        select_lr(cand)["selected"] = True
        rows += cand
    return rows


def _own(cfg: OnePersonConfig, train, val, test, measure) -> dict:
    """The CNN trained from scratch on the fold's photos with the model's own recipe, selected on the
    fold's validation photos."""
    ov = {**BASE_RECIPE.get(cfg.model, {}), "model": cfg.model, "epochs": cfg.own_epochs, "seed": cfg.seed,
          "progress": False, "save_checkpoints": False, "device": "cpu", "name": OWN}
    if cfg.own_epochs < 10 and ov.get("ema", 0.99) > 0.9:
        ov["ema"] = 0.9   # a short run ends before a 0.99 EMA forgets the initial weights
    tc = from_dict(ov)
    res = fit(tc, Splits(train, val, test), log=lambda *_: None)
    m = copy.deepcopy(res.model)
    cpu = torch.device("cpu")
    return measure(evaluate(m, tensors(val), cpu), evaluate(m, tensors(test), cpu), res.state.diverged)


# ----------------------------------------------------------------------------------------------
# The regime


def run_one_person(cfg: OnePersonConfig, *, progress: bool = True, log=print) -> Path:
    arms = one_person_arms()
    unknown = [a for a in cfg.arms if a not in arms]
    if unknown:
        raise ValueError(f"unknown one-person arm(s) {', '.join(unknown)}; known: {', '.join(arms)}")
    if cfg.folds < 2 or cfg.repeats < 1:
        raise ValueError(f"folds must be >= 2 and repeats >= 1, not {cfg.folds} and {cfg.repeats}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.workers or os.cpu_count() or 1))
    ds = dataset(cfg.data)
    if len(set(ds.subjects.tolist())) != 1:
        raise DatasetError(f"{cfg.data}: the one-person regime takes one person's photos; it holds "
                           f"{len(set(ds.subjects.tolist()))} people (use --regime personal)")
    kind, groups = groups_of(ds)
    folds = make_folds(groups, cfg.folds, cfg.repeats, cfg.seed)
    meta = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()
                       if k not in ("workers", "out")},
            "group_kind": kind, "n_groups": len(set(groups.tolist())), "n_photos": len(ds),
            "sessions": sorted(set(ds.sessions.astype(str).tolist())), "n_folds": len(folds)}
    meta_path = out / "one_person.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("config") != json.loads(json.dumps(meta["config"])):
            raise ValueError(f"{out} holds a different one-person run ({meta_path}); choose another --out or the "
                             "same options")
    t0 = time.perf_counter()
    base, base_seconds, how = base_model(cfg, log=log)
    meta.update({"base": how, "base_seconds": base_seconds})
    done = _done(out)
    t1 = time.perf_counter()
    from tqdm import tqdm

    for fold in tqdm(folds, desc="one person: folds", disable=not progress, dynamic_ncols=True):
        tag = f"r{fold['repeat']}f{fold['fold']}"
        if tag in done:
            continue
        _append(out, run_fold(cfg, ds, base, groups, fold))
    meta["fold_seconds"] = time.perf_counter() - t1
    meta["seconds"] = time.perf_counter() - t0
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return out


def _done(out: Path) -> set:
    p = out / "rows.csv"
    if not p.exists():
        return set()
    with open(p, newline="") as f:
        return {r["person"] for r in csv.DictReader(f)}


def _append(out: Path, rows: list[dict]) -> None:
    """One fold's rows at once, flushed: a fold is wholly in rows.csv or not at all."""
    append_csv_rows(out / "rows.csv", FIELDS, rows, ignore_extra=True)


def read_rows(out) -> list[dict]:
    rows = []
    with open(Path(out) / "rows.csv", newline="") as f:
        for r in csv.DictReader(f):
            for k in ("lr", "val_error", "final_test_error", "best_test_error", "cell_accuracy", "centre_error",
                      "seconds"):
                r[k] = float(r[k]) if r.get(k) not in ("", None) else math.nan
            for k in ("repeat", "fold", "budget", "n_train", "n_val", "n_test"):
                r[k] = int(r[k])
            for k in ("selected", "diverged", "collapsed"):
                r[k] = r[k] == "True"
            rows.append(r)
    return rows


# ----------------------------------------------------------------------------------------------
# The report


def build_report(out, *, margin: float | None = None, command: str = "", elapsed: float | None = None) -> dict:
    """summary.json and report.md from rows.csv: verdicts paired by fold with the Nadeau-Bengio corrected
    shape-free interval, the margin from half the measured calibration gain, the detectable effect, what
    more photos would do, and the answer in plain words."""
    from gazeneg.study.personal_report import edge_choices, margin_from_gain

    out = Path(out)
    meta = json.loads((out / "one_person.json").read_text())
    rows = read_rows(out)
    arms = {n: a for n, a in one_person_arms().items() if any(r["arm"] == n for r in rows)}
    chosen = [r for r in rows if r["selected"]]
    n_folds = max(1, meta["config"]["folds"])
    ratio = 1.0 / max(1, n_folds - 1)            # n_test/n_train of a k-fold split
    gain = math.nan
    if margin is None:
        margin, gain = margin_from_gain(chosen, arms, ratio)
    summary = summarize(chosen, arms, margin=margin, baselines=BASELINES, unit="person", ratio=ratio)
    lrs = {}
    for name, a in arms.items():
        if name != OWN and not a.overrides.get("no_finetune"):
            c: dict = {}
            for r in chosen:
                if r["arm"] == name:
                    c[f"{r['lr']:g}"] = c.get(f"{r['lr']:g}", 0) + 1
            lrs[name] = c
    grid_lrs = sorted({r["lr"] for r in rows if r["arm"] == "ft:baseline"})
    edges = edge_choices(lrs, grid_lrs)
    for e in summary:
        if edges.get(e["arm"]) == "bottom":
            e["lr_edge"] = "switched off (chose the grid's bottom LR)"
        elif edges.get(e["arm"]) == "top":
            e["lr_edge"] = "at the grid's top LR"
    doc = {"entries": summary, "margin_cells": margin, "calibration_gain_cells": gain, "overlap_ratio": ratio,
           "lr_choices": lrs, "group_kind": meta["group_kind"], "n_folds": meta["n_folds"], "base": meta.get("base"),
           "n_photos": meta["n_photos"], "seconds": meta.get("seconds"), "command": command, "elapsed_seconds": elapsed,
           "quick": bool(meta["config"].get("quick_design")), "repeats": meta["config"].get("repeats")}
    doc["answer"] = answer(summary, doc)
    atomic_write_text(out / "summary.json", json.dumps(clean_json(doc), indent=2))
    atomic_write_text(out / "report.md", render_markdown(doc, summary))
    return doc


def answer(summary: list[dict], doc: dict) -> list[str]:
    """The plain-words answer: what this person's data can and cannot show, computed from the verdicts."""
    es = {e["arm"]: e for e in summary}
    base = es.get("ft:baseline")
    S = []
    n = base["n_seeds"] if base else 0
    S.append(f"{doc['n_photos']} photos of one person, grouped by {doc['group_kind']}, in {doc['n_folds']} "
             f"cross-validation folds (every arm on the same folds; the folds' training sets overlap, which the "
             f"intervals account for).")
    if doc.get("quick"):
        S.append(f"This is the --quick design ({doc['n_folds']} folds, {doc.get('repeats')} repeat(s), "
                 f"{len(summary)} arms, a base pretrained on fewer photos for fewer epochs): it has less power than "
                 "the default (4 folds x 2 repeats, every arm), and the detectable effect below says how much less."
                 + ("" if any(e["arm"] == OWN for e in summary) else
                    " The CNN trained on this person's photos alone is not a --quick arm (add it with --arms).")
                 )
    own, nf = es.get(OWN), es.get("ft:no_finetune")
    if base is not None:
        parts = [f"the base fine-tuned on this person's photos: {fmt(base['mean_error_cells'], 2)} cells"]
        if own is not None:
            parts.append(f"the CNN trained on this person's photos alone: {fmt(own['mean_error_cells'], 2)} cells "
                         f"({own['verdict']} vs the fine-tuned base, {fmt_signed(own.get('diff_vs_baseline'), 3)})")
        if nf is not None:
            parts.append(f"the base without fine-tuning: {fmt(nf['mean_error_cells'], 2)} cells")
        S.append("Errors on held-out targets: " + "; ".join(parts) + ".")
    wl = [e for e in summary if e["arm"] not in ("ft:baseline", OWN, "ft:no_finetune")]
    by = {v: sorted(e["arm"] for e in wl if e["verdict"] == v) for v in ("helps", "hurts", "equivalent", "inconclusive")}
    if wl:
        S.append(f"Wrong labels, {len(wl)} arms against the fine-tuned baseline: helps in "
                 + (", ".join(f"{a} ({fmt_signed(es[a]['diff_vs_baseline'], 3)})" for a in by["helps"]) or "none")
                 + "; hurts in "
                 + (", ".join(f"{a} ({fmt_signed(es[a]['diff_vs_baseline'], 3)})" for a in by["hurts"]) or "none")
                 + f"; equivalent (within +-{doc['margin_cells']:.3g} cells) in {len(by['equivalent'])}; "
                 f"inconclusive in {len(by['inconclusive'])}.")
    det = [e["detectable_cells"] for e in wl if math.isfinite(e.get("detectable_cells", math.nan))]
    if det:
        d = float(np.median(det))
        target = doc["margin_cells"]
        S.append(f"What these photos can show: a difference of about {fmt(d, 3)} cells (median over the arms; "
                 f"{fmt(min(det), 3)} to {fmt(max(det), 3)}) would be found with {POWER:.0%} power; smaller ones "
                 "cannot be told from noise here, so an 'inconclusive' is no evidence of no effect.")
        if target > 0 and d > target:
            factor = (d / target) ** 2
            S.append(f"To detect an effect the size of the margin ({target:.3g} cells) about {factor:.0f}x as many "
                     f"photos (about {factor * doc['n_photos']:.0f}) would be needed, if the fold-to-fold spread "
                     "shrinks as 1/sqrt(photos) as test-photo noise does; more folds of the same photos cannot do it "
                     "(the overlap correction does not shrink with the number of folds).")
    failing = [f"{e['arm']} ({e['failure_verdict']})" for e in summary if e["failed_runs"]]
    if failing:
        S.append("Failed runs (judged on validation): " + ", ".join(failing) + ".")
    off = sorted(e["arm"] for e in wl if e.get("lr_edge", "").startswith("switched off"))
    if off:
        S.append(f"Switched off (chose the grid's bottom LR in most folds): {', '.join(off)}.")
    S.append(f"(n = {n} folds; alpha {ALPHA:g}; verdicts Holm-corrected within the family.)")
    return S


def render_markdown(doc: dict, summary: list[dict]) -> str:
    from gazeneg.study.sweep_report import entry_row, method_text

    L = ["# One person's own photos: do wrong labels with a negative learning rate help?", ""]
    if doc.get("command"):
        L += [f"Command: `{doc['command']}`" + (f" ({doc['elapsed_seconds']:.0f} s)" if doc.get("elapsed_seconds")
                                                 else ""), ""]
    L += [f"Design: repeated grouped cross-validation inside this person's photos ({doc['n_folds']} folds, grouped "
          f"by {doc['group_kind']}); in each fold an inner validation split of the training targets chooses each "
          f"arm's LR; the base model: {doc.get('base')}. ", ""]
    gain = doc.get("calibration_gain_cells")
    L += [method_text(f"{doc['margin_cells']:.3g}", doc["overlap_ratio"])
          + (f" The margin is half the calibration's measured gain ({fmt(gain, 3)} cells)."
             if gain is not None and math.isfinite(gain) and gain > 0 else ""), ""]
    L += ["## What this person's data can and cannot show", ""] + [f"- {s}" for s in doc["answer"]] + [""]
    L += ["## Verdicts", "",
          "| arm | what it is | error (mean, 95% t-CI) | diff vs fine-tuned baseline (shape-free 95% CI; median; share "
          "harmed; detectable at 80% power) | p (Holm) | p (equivalence, Holm) | verdict | failures | LR chosen |",
          "|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        lr = doc["lr_choices"].get(e["arm"], {})
        L.append(entry_row(e, (str(max(lr, key=lr.get)) if lr else "-")
                           + (f" ({e['lr_edge']})" if e.get("lr_edge") else "")))
    return "\n".join(L) + "\n"


def verdict_lines(out) -> list[str]:
    doc = json.loads((Path(out) / "summary.json").read_text())
    return [f"  {e['arm']:<30} {e['verdict']:<12} error {fmt(e['mean_error_cells'])}"
            + (f"  diff {fmt_signed(e['diff_vs_baseline'], 3)}" if e.get("diff_vs_baseline") is not None else "")
            + (f"  detectable {fmt(e.get('detectable_cells'), 3)}" if e.get("detectable_cells") is not None else "")
            for e in doc["entries"]]
