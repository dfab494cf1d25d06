"""The wrong-label sweep: arms x seeds x data budgets on the same subject splits.

Each run is one `train.fit` of a small, fast model (default "mlp" on pooled pixels plus the face box:
hundreds of runs must fit in minutes on a 2-core CPU) from a base config plus the arm's overrides.
Runs go to a process pool (all cores), or one after another, or to a Ray cluster; each finished run
is appended and flushed to results.csv, so Ctrl-C keeps them and re-running with the same output
folder resumes. Arms are data (`Arm`), defined once here; statistics and the report are in stats.py
and report.py and read arm facts from the `Arm`, never from its name.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gazeneg import grid
from gazeneg.config import ConfigError, TrainConfig, from_dict, option_of
from gazeneg.data.dataset import GazeDataset, load_dataset
from gazeneg.data.splits import Splits, apply_budget, resolve_data_path, split_by_subject, synthetic_people
from gazeneg.files import append_csv_rows, atomic_write_bytes, atomic_write_text, lock_folder
from gazeneg.model.metrics import COLLAPSED, DIVERGED, centre_guess_error, error_metrics
from gazeneg.study.options import SweepOptions
from gazeneg.study.tasks import run_tasks
from gazeneg.training.loop import evaluate, fit, tensors

D = 2.0  # the wrong point's distance in the original question


@dataclass(frozen=True)
class Arm:
    """One arm of the sweep, as data: its configuration (overrides of the sweep's base config) and the
    facts the statistics and the report need, so nothing is parsed back out of its name."""

    name: str
    family: str                     # which baseline it is compared with: "sgd", "adam" or "cls"
    overrides: dict
    group: str = "main"             # main | theory | bound | cls | complement_only
    # Predicted mean signed error along the wrong-point direction d, in cells (docs/science.md section 1):
    # the optimum moves AWAY from w, f* = y - lambda/(1 - lambda) d, so the prediction is negative.
    predicted_bias: float | None = None
    note: str = ""
    # An arm this one is the prediction of: "same as <arm>" (e.g. symmetric Lambda = 0.8 under SGD is
    # the baseline at lr x 0.2), checked by a paired equivalence test in the report.
    same_as: str | None = None
    series: str = ""                # which plot series it belongs to: "naive", "one_sided", "bound" or ""

    @property
    def total_lambda(self) -> float:
        """Lambda = lambda x K, the total weight of the wrong points (0 = no wrong labels)."""
        o = self.overrides
        return float(o.get("neg_lambda", 0.0)) * int(o.get("neg_k", 1)) if o.get("neg_mode", "off") != "off" else 0.0

    @property
    def bound(self) -> float:
        """The error bound B (cells), 0 = none."""
        return float(self.overrides.get("guard_bound", 0.0))

    @property
    def uses_wrong_labels(self) -> bool:
        o = self.overrides
        return self.total_lambda > 0 or float(o.get("cls_neg_weight", 0)) > 0 or bool(o.get("cls_complement_only"))

    @property
    def implementation(self) -> str:
        """Which implementation of the wrong-label step its numbers measure (docs/science.md section 4)."""
        o = self.overrides
        mode = o.get("neg_mode", "off")
        if mode == "combined":
            return "one combined loss (true term - lambda x wrong term), one optimizer step"
        if mode == "literal":
            if o.get("neg_optimizer") == "same":
                return ("the training optimizer itself, its moments too, with its LR set to -lambda x LR for the "
                        "wrong-label batch (the recipe as asked)")
            return "a second optimizer with its own moments steps at LR -lambda x LR (the literal negative step)"
        return ""

    @property
    def policy(self) -> str:
        return self.overrides.get("neg_policy", "one_sided") if self.overrides.get("neg_mode", "off") != "off" else ""


def _main_arms(fam: str) -> list[Arm]:
    opt = {"optimizer": "sgd"} if fam == "sgd" else {"optimizer": "adamw"}
    lit = {"neg_mode": "literal", "neg_distance": D, "neg_boundary": "reflect"}
    rnd = {**lit, "neg_policy": "random"}
    p = fam + ":"
    return [
        Arm(p + "baseline", fam, {**opt}, note="no wrong labels"),
        Arm(p + "lr_control_0.2", fam, {**opt, "lr_scale": 0.2},
            note="baseline at lr x (1 - 0.8): the LR-matched control of symmetric Lambda = 0.8"),
        Arm(p + "naive_l0.3", fam, {**opt, **rnd, "neg_lambda": 0.3}, note="random wrong point, no guard",
            series="naive"),
        Arm(p + "naive_l1.0", fam, {**opt, **rnd, "neg_lambda": 1.0}, note="Lambda = 1: loss linear in f",
            series="naive"),
        Arm(p + "naive_l1.5", fam, {**opt, **rnd, "neg_lambda": 1.5}, note="Lambda > 1: concave loss",
            series="naive"),
        Arm(p + "guard_bound", fam, {**opt, **rnd, "neg_lambda": 0.5, "guard_bound": D},
            note="error bound B = D alone, random placement (the original scheme with a random wrong point)"),
        Arm(p + "guard_direction", fam, {**opt, **rnd, "neg_lambda": 0.5, "guard_direction": True},
            note="direction guard alone"),
        Arm(p + "guard_grad_cap", fam, {**opt, **rnd, "neg_lambda": 0.5, "guard_grad_cap": 1.0},
            note="gradient-norm cap 1.0 alone"),
        Arm(p + "guard_watchdog", fam, {**opt, **rnd, "neg_lambda": 1.5, "watchdog": True},
            note="watchdog alone, on the diverging Lambda = 1.5"),
        # "keep", not "reflect": a point reflected at the edge can land closer to y than the margin, and then y
        # is no longer a minimiser of the repulsion (docs/science.md section 1).
        Arm(p + "repulsion", fam, {**opt, **rnd, "neg_boundary": "keep", "neg_lambda": 0.5, "neg_loss": "repulsion"},
            note="bounded repulsion, m = D, wrong points kept off the screen (no reflection)"),
        # The original scheme: B = D, w on the prediction's side of the truth. The boundary must keep w on
        # that side: "reflect" would mirror it to the far side near an edge, where stepping away from w
        # moves f away from y (docs/science.md section 1), so this arm keeps off-grid points.
        Arm(p + "original_pred_side", fam, {**opt, **lit, "neg_boundary": "keep", "neg_policy": "prediction_side",
                                            "neg_lambda": 0.5, "guard_bound": D},
            note="the original scheme: B = D, wrong point on the prediction's side", same_as=p + "lr_control_1.5"),
        # The same scheme as the question put it: the training optimizer's own LR set negative for the
        # wrong-label batch, its moments shared with the true-label steps.
        Arm(p + "original_same_opt", fam, {**opt, **lit, "neg_boundary": "keep", "neg_policy": "prediction_side",
                                           "neg_lambda": 0.5, "guard_bound": D, "neg_optimizer": "same"},
            note="the original scheme, the recipe as asked: the same optimizer at LR -lambda x LR"),
        # ... and as one combined loss: what the scheme does when no optimizer state is in the way.
        Arm(p + "original_combined", fam, {**opt, "neg_mode": "combined", "neg_distance": D, "neg_boundary": "keep",
                                           "neg_policy": "prediction_side", "neg_lambda": 0.5, "guard_bound": D},
            note="the original scheme as one combined loss"),
        # A literal arm "at the same LR" takes a second step of lambda x lr: its LR-matched control is the
        # baseline at (1 + lambda) x lr (lambda 0.5 for the original scheme).
        Arm(p + "lr_control_1.5", fam, {**opt, "lr_scale": 1.5},
            note="baseline at lr x (1 + 0.5): the LR-matched control of a literal lambda = 0.5 arm"),
        Arm(p + "symmetric_k4", fam, {**opt, "neg_mode": "combined", "neg_policy": "symmetric", "neg_k": 4,
                                      "neg_lambda": 0.2, "neg_boundary": "keep"},
            note="4 symmetric points, Lambda = 0.8", same_as=p + "lr_control_0.2" if fam == "sgd" else p + "baseline"),
    ]


def _theory_arms() -> list[Arm]:
    base = {"optimizer": "sgd", "neg_mode": "combined", "neg_policy": "one_sided", "neg_boundary": "keep",
            "neg_distance": D}
    arms = [Arm(f"sgd:one_sided_l{lam}", "sgd", {**base, "neg_lambda": lam}, group="theory",
                predicted_bias=-lam / (1 - lam) * D, note="one-sided, combined loss, keep", series="one_sided")
            for lam in (0.1, 0.3, 0.5)]
    # Error bound on a Lambda > 1 one-sided run: divergence becomes an error near B.
    arms += [Arm(f"sgd:bound_B{b:g}_l1.5", "sgd", {**base, "neg_lambda": 1.5, "guard_bound": b}, group="bound",
                 predicted_bias=-b, note="one-sided Lambda = 1.5 under error bound B", series="bound")
             for b in (0.5, 1.0, 2.0)]
    return arms


def _cls_arms() -> list[Arm]:
    c = {"head": "classification", "optimizer": "adamw", "neg_distance": D, "neg_policy": "random"}
    return [
        Arm("cls:baseline", "cls", c, group="cls", note="144-way softmax, cross-entropy"),
        Arm("cls:complement", "cls", {**c, "cls_neg_weight": 1.0, "cls_neg_loss": "complement"}, group="cls",
            note="+ -log(1 - p_wrong), wrong cell 2 away"),
        Arm("cls:negated_ce", "cls", {**c, "cls_neg_weight": 1.0, "cls_neg_loss": "negated_ce"}, group="cls",
            note="+ log p_wrong: the naive negative learning rate"),
        Arm("cls:complement_guarded", "cls", {**c, "cls_neg_weight": 1.0, "cls_neg_loss": "complement",
                                              "cls_neg_confidence": 0.5}, group="cls",
            note="complement only where p(true cell) > 0.5 (NLNL-style)"),
        # Complementary labels carry ~1/144 of a true label's gradient at the start (docs/science.md section 3):
        # the arm gets half the cells as wrong per photo per step and 4x the epochs, or it never leaves the
        # uniform prediction within a sweep's budget; half the LR (1e-3) measured best of 5e-4, 1e-3, 2e-3.
        Arm("cls:complement_only", "cls", {**c, "cls_complement_only": True, "neg_k": 72, "epochs_scale": 4,
                                           "lr_scale": 0.5},
            group="complement_only",
            note="ONLY wrong cells (72 uniform per photo per step, redrawn), no true labels, 4x the epochs, "
                 "half the LR"),
    ]


def all_arms() -> list[Arm]:
    return _main_arms("sgd") + _theory_arms() + _main_arms("adam") + _cls_arms()


QUICK_ARMS = ["sgd:baseline", "sgd:lr_control_0.2", "sgd:naive_l0.3", "sgd:naive_l1.5", "sgd:original_pred_side",
              "sgd:symmetric_k4", "sgd:one_sided_l0.3", "adam:baseline", "adam:symmetric_k4", "adam:original_pred_side",
              "adam:original_same_opt", "adam:original_combined",
              "cls:baseline", "cls:complement", "cls:negated_ce", "cls:complement_only"]


@dataclass(frozen=True)
class SweepConfig(SweepOptions):
    """The sweep's design. The fields `gazeneg eval` sets, each with its help, are options.SweepOptions
    (written once there); here the default arms (every arm) and base."""

    arms: list[str] = option_of(SweepOptions, "arms", default_factory=lambda: [a.name for a in all_arms()])
    base: dict = field(default_factory=dict)   # TrainConfig overrides shared by every run

    @classmethod
    def quick(cls, **kw) -> SweepConfig:
        return cls(seeds=3, budgets=(1,), arms=list(QUICK_ARMS), **kw)


# The base of every sweep run: a small model that trains in about a second on a CPU core, plain
# (no augmentation) so the math of docs/science.md applies, constant learning rate so training ends near
# the fixed point the theory predicts.
SWEEP_BASE = dict(model="mlp", loss="mse", ema=0.0, epochs=20, batch_size=256, augment=False, flip=False, schedule="none",
                  weight_decay=0.0, progress=False, save_checkpoints=False, threads=1, device="cpu")
LR = {"sgd": 1.2e-3, "adamw": 2e-3}


def run_config(arm: Arm, seed: int, budget: int, sweep: SweepConfig) -> TrainConfig:
    ov = {**SWEEP_BASE, **sweep.base, **arm.overrides}
    lr_scale = ov.pop("lr_scale", 1.0)
    epochs_scale = ov.pop("epochs_scale", 1)
    # Same number of optimizer steps at every budget (budget b has b x the photos): a larger budget is
    # more data for the same compute, and the sweep's time does not grow with the budget.
    if "epochs" not in arm.overrides and "epochs" not in sweep.base:
        ov["epochs"] = max(4, round(ov["epochs"] / max(budget, 1)))
    ov["epochs"] = int(ov["epochs"] * epochs_scale)
    # Seed s holds out the s-th group of subjects (the same for every arm, so comparisons stay paired):
    # the seeds together test most of the people, and no verdict rests on one trio's quirks. With
    # --replicates seed s has people of its own (seed_data) and holds out its own first group.
    ov.setdefault("split_fold", 0 if sweep.replicates else seed)
    ov.setdefault("lr", LR[ov.get("optimizer", "adamw")] * lr_scale)
    if "lr" in arm.overrides or "lr" in sweep.base:
        ov["lr"] = ov["lr"] * lr_scale
    return from_dict({**ov, "data": seed_data(sweep, seed), "seed": seed, "budget": budget, "name": arm.name})


def seed_data(sweep: SweepConfig, seed: int) -> str:
    """The data set seed `seed` trains and tests on: --data itself, or with --replicates the synthetic set of
    the same size whose people are drawn with this seed ('synthetic:F:seed'), independent of every other
    seed's people."""
    if not sweep.replicates:
        return sweep.data
    spec = synthetic_people(sweep.data, seed)
    if spec is None:
        raise ConfigError(f"--replicates renders new people for every seed: it needs --data synthetic or "
                          f"synthetic:F, not the folder {sweep.data!r} (a folder's people are what they are: "
                          "without --replicates its seeds are cross-validation folds)")
    return spec


def run_key(arm: str, seed: int, budget: int) -> str:
    return f"{arm}|{seed}|{budget}"


RESULT_FIELDS = ["arm", "family", "group", "optimizer", "seed", "budget", "data", "final_test_error", "best_test_error",
                 "final_val_error", "best_val_error", "signed_error_row", "signed_error_col", "bias_along_direction", "train_bias_along_direction",
                 "cell_accuracy",
                 "diverged", "collapsed", "stop_reason", "guard_counts", "watchdog_events", "logit_absmax",
                 "seconds", "n_train", "n_test", "centre_error", "n_train_groups", "n_test_groups"]


# ----------------------------------------------------------------------------------------------
# One run (executed in a worker)

_SPLITS: dict = {}
_DATASETS: dict = {}


_KEEP_DATASETS = 2   # data sets a worker keeps loaded (with --replicates every seed has its own)


def dataset(data: str) -> GazeDataset:
    """The data set named by --data, loaded once per process (a worker runs many runs on it); with
    --replicates the last few seeds' sets, the oldest dropped with its splits."""
    if data not in _DATASETS:
        while len(_DATASETS) >= _KEEP_DATASETS:
            old = next(iter(_DATASETS))
            del _DATASETS[old]
            for k in [k for k in _SPLITS if k[0] == old]:
                del _SPLITS[k]
        _DATASETS[data] = load_dataset(resolve_data_path(data))
    return _DATASETS[data]


def _splits_for(data: str, budget: int, cfg: TrainConfig) -> Splits:
    key = (data, cfg.val_subjects, cfg.test_subjects, cfg.split_seed, cfg.split_fold)
    if key not in _SPLITS:   # dataset() drops an evicted set's splits with it
        _SPLITS[key] = split_by_subject(dataset(data), cfg.val_subjects, cfg.test_subjects, cfg.split_seed,
                                        cfg.split_fold)
    sp = _SPLITS[key]
    return Splits(apply_budget(sp.train, budget), sp.val, sp.test, sp.groups)


def execute(arm: Arm, seed: int, budget: int, sweep: SweepConfig) -> dict:
    """Train one run and measure it; returns a results.csv row plus its learning curve."""
    cfg = run_config(arm, seed, budget, sweep)
    torch.set_num_threads(max(1, cfg.threads))
    t0 = time.perf_counter()
    sp = _splits_for(cfg.data, budget, cfg)
    res = fit(cfg, sp, log=lambda *_: None)
    test_t = sp.test.targets.astype(np.float64)
    # The final model (what training produced; for a watchdog run that ended worse than its best, its
    # best-validation weights) and the best-on-validation weights (what early stopping keeps).
    test_data = tensors(sp.test)
    best_pred = evaluate(res.model, test_data, torch.device("cpu"))
    final_model = copy.deepcopy(res.model)
    final_model.load_state_dict(res.final_state)
    final_pred = evaluate(final_model, test_data, torch.device("cpu"))
    fm = error_metrics(final_pred, test_t)
    bm = error_metrics(best_pred, test_t)
    d = np.asarray(cfg.neg_direction, np.float64)
    d = d / np.linalg.norm(d)
    signed = np.array([fm["mean_signed_error_row"], fm["mean_signed_error_col"]])
    # For the arms with a predicted bias, the same signed error on the training photos, where the
    # theory's fixed point is defined exactly (on held-out people it also carries each person's own
    # offset, which the model cannot know). Other arms skip this pass over the training set.
    train_signed = np.full(2, np.nan)
    if arm.predicted_bias is not None:
        train_pred = evaluate(final_model, tensors(sp.train), torch.device("cpu"))
        with np.errstate(invalid="ignore", over="ignore"):
            train_signed = np.mean(train_pred - sp.train.targets.astype(np.float64), axis=0)
    # The one definition of diverged / collapsed (metrics.outcome), decided on the VALIDATION people (fit's
    # outcome of the final model): a verdict on failures must not be chosen by the test data it is judged on.
    result = res.outcome
    return {
        "arm": arm.name, "family": arm.family, "group": arm.group, "optimizer": cfg.optimizer, "seed": seed,
        "budget": budget, "data": cfg.data, "final_test_error": fm["mean_error_cells"], "best_test_error": bm["mean_error_cells"],
        "final_val_error": res.final_val_error,
        "best_val_error": res.state.best_err,
        "signed_error_row": signed[0], "signed_error_col": signed[1],
        "bias_along_direction": float(signed @ d) if np.isfinite(signed).all() else math.nan,
        "train_bias_along_direction": float(train_signed @ d) if np.isfinite(train_signed).all() else math.nan,
        "cell_accuracy": fm["cell_accuracy"], "diverged": result == DIVERGED, "collapsed": result == COLLAPSED,
        "stop_reason": res.state.stop_reason,
        "guard_counts": json.dumps(res.state.guards.as_dict()), "watchdog_events": json.dumps(res.watchdog_events),
        "logit_absmax": res.state.history[-1].get("val_logit_absmax", "") if res.state.history else "",
        "seconds": time.perf_counter() - t0, "n_train": len(sp.train), "n_test": len(sp.test),
        "centre_error": centre_guess_error(test_t),
        # the seeds are folds whose training people overlap: the statistics correct for it (Nadeau-Bengio)
        "n_train_groups": len(set(sp.train.subjects.tolist())), "n_test_groups": len(set(sp.test.subjects.tolist())),
        "_curve": [h["val_mean_error_cells"] for h in res.state.history],
        "_logit_curve": [h.get("val_logit_absmax") for h in res.state.history],
    }


# ----------------------------------------------------------------------------------------------
# The sweep


def recover_partial_line(path: Path, log=print) -> None:
    """A file appended one line at a time whose last line was cut off (a power cut, a full disk mid-write)
    ends without a newline: drop that line, rewriting the file atomically, and say so. The run it held is
    simply done again."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data[:data.rfind(b"\n") + 1]
        atomic_write_bytes(path, keep)
        log(f"{path}: dropped an incomplete last line ({len(data) - len(keep)} bytes, a write cut off); "
            "its run is done again")


def load_done(out: Path, log=print) -> dict:
    """Finished runs from an earlier (interrupted) sweep in the same folder: key -> row."""
    done = {}
    path = out / "results.csv"
    recover_partial_line(path, log)
    recover_partial_line(out / "curves.jsonl", log)
    if path.exists():
        with open(path, newline="") as f:
            for line, r in enumerate(csv.DictReader(f), start=2):
                try:
                    done[run_key(r["arm"], int(r["seed"]), int(r["budget"]))] = r
                except (KeyError, TypeError, ValueError):
                    raise ValueError(f"{path} line {line}: not a results row ({dict(r)}); move the file away "
                                     "to start the sweep afresh") from None
    return done


def _append(out: Path, row: dict) -> None:
    path = out / "results.csv"
    fields = RESULT_FIELDS
    if path.exists():   # a folder begun by an older version keeps its own columns (rows stay aligned)
        with open(path, newline="") as f:
            fields = next(csv.reader(f), None) or RESULT_FIELDS
    append_csv_rows(path, fields, [row], ignore_extra=True)
    with open(out / "curves.jsonl", "a") as f:
        f.write(json.dumps({"key": run_key(row["arm"], row["seed"], row["budget"]), "val": row["_curve"],
                            "logit": row["_logit_curve"]}, allow_nan=True) + "\n")
        f.flush()


def sweep_test_groups(data_path: Path, n_val: int) -> int:
    """Held-out test groups per seed: 5 where there are enough people (the default set's 24: five seeds
    of five rotate through all of them), fewer for a small capture, so at least 2/3 still train. Groups
    are subjects, or subject/session pairs where there are too few subjects (as split_by_subject)."""
    labels = Path(data_path) / "labels.csv"
    rows = []
    if labels.is_file():
        try:
            with open(labels, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
        except (UnicodeDecodeError, csv.Error):   # the loader's own error names the file and what is wrong
            load_dataset(data_path)
            raise
    if not rows or not {"subject", "session"} <= rows[0].keys():
        load_dataset(data_path)  # raises the loader's own error, naming the file and what is wrong
    n = len({r["subject"] for r in rows})
    if n < n_val + 4:
        n = len({(r["subject"], r["session"]) for r in rows})
    return int(min(5, max(1, (n - n_val) // 3)))


def run_sweep(sweep: SweepConfig, *, progress: bool = True, sequential: bool = False) -> Path:
    out = Path(sweep.out)
    arms = {a.name: a for a in all_arms()}
    unknown = [a for a in sweep.arms if a not in arms]
    if unknown:
        raise ValueError(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(arms)}")
    # Render the data once before forking workers (with --replicates every seed's), and size the held-out
    # groups to it.
    data_path = resolve_data_path(seed_data(sweep, 0))
    if sweep.replicates:
        for s in tqdm(range(1, sweep.seeds), desc="render replicates", unit="seed", disable=not progress):
            resolve_data_path(seed_data(sweep, s))
    if "test_subjects" not in sweep.base:
        sweep = dataclasses.replace(sweep, base={**sweep.base, "test_subjects": sweep_test_groups(
            data_path, sweep.base.get("val_subjects", 2))})
    # Every run's configuration is checked before anything is written (a bad option leaves no folder).
    for a in sweep.arms:
        for b in sweep.budgets:
            run_config(arms[a], 0, b, sweep)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(out, "sweep")
    try:
        return _run_locked(sweep, out, arms, progress, sequential)
    except BaseException:
        # A start that failed before any run finished leaves nothing behind (not sweep.json, not the lock).
        lock.release()
        if not existed and {p.name for p in out.iterdir()} <= {"sweep.json", ".sweep.lock", "curves.jsonl"}:
            for p in out.iterdir():
                p.unlink()
            out.rmdir()
        raise
    finally:
        lock.release()


def _run_locked(sweep: SweepConfig, out: Path, arms: dict, progress: bool, sequential: bool) -> Path:
    meta = {"seeds": sweep.seeds, "budgets": list(sweep.budgets), "arms": sweep.arms, "data": sweep.data,
            "base": {**SWEEP_BASE, **sweep.base}, "lr": LR, **({"replicates": True} if sweep.replicates else {})}
    meta_path = out / "sweep.json"
    done = load_done(out, log=tqdm.write)
    if meta_path.exists() and done:   # a folder that holds no finished run can be reused for another sweep
        old = json.loads(meta_path.read_text())
        if old != json.loads(json.dumps(meta)):
            raise ValueError(f"{out} holds a different sweep ({meta_path}); choose another --out or the same options")
    else:
        atomic_write_text(meta_path, json.dumps(meta, indent=2))
    # One seed's runs together: with --replicates a worker loads each seed's own data set once.
    tasks = [(arms[a], s, b) for s in range(sweep.seeds) for b in sweep.budgets for a in sweep.arms
             if run_key(a, s, b) not in done]
    total = len(tasks) + len(done)
    bar = tqdm(total=total, initial=len(done), unit="run", desc="sweep", disable=not progress, dynamic_ncols=True)
    try:
        for row in run_tasks(tasks, execute, sweep, workers=sweep.workers, ray=sweep.ray, sequential=sequential):
            _append(out, row)
            bar.update(1)
    finally:
        bar.close()
    return out


def centre_error_reference() -> float:
    """Mean error of the centre guess over a uniform grid (every cell once)."""
    return centre_guess_error(grid.cell_centres())
