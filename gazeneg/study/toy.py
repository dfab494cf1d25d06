"""The gradient-ascent logistic toy (docs/science.md section 7): check, with numbers, the claims that a
two-input logistic classifier trained by gradient ASCENT on cross-entropy becomes confidently wrong,
that its weights run off to infinity, that floating point overflows, that "always answer the opposite"
of the ascent model is a usable classifier, that early stopping is the only brake, and that a diverged
loan model "rejects everyone equally, so it is unbiased".

    f(x) = sigmoid(theta1 x1 + theta2 x2 + theta3),   theta = (theta1, theta2, theta3)

A study of its own: nothing else in gazeneg imports it (`gazeneg toy` runs it).
Everything is numpy float64, full batch, constant step, seeded. Three data sets, each with a training
split, an in-distribution validation split (the only one early stopping may look at) and a test split:
overlapping Gaussians, a linearly separable set, and a "loan" set whose nuisance feature (postcode)
is tied to the credit score (neighbourhoods differ in credit) and to the label, with the label part of
that tie reversed in the test split.

Every verdict the report prints is computed by `judge` from the plain numbers in the summary, so the
report's conclusions change when the measurements do.

    result = run_experiment(steps=3000, lr=0.5, seed=0)
    report_path = write_run(result, out_dir)      # report.md, PNGs, history.npz, summary.json
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import expit

from gazeneg.files import atomic_write_bytes
from gazeneg.training.runfiles import new_run_dir

SPLITS = ("train", "val", "test")
# Each variant: sign of the step on the objective (+1 descends the training cross-entropy, -1 ascends
# it), the L2 weight-decay coefficient, and whether labels are flipped (descent on flipped labels is
# descent on -log(1 - p_y), the bounded complement loss of docs/science.md section 3, in two classes).
VARIANTS = {
    "descent": dict(sign=+1.0, weight_decay=0.0, flip_labels=False),
    "ascent": dict(sign=-1.0, weight_decay=0.0, flip_labels=False),
    "ascent+wd": dict(sign=-1.0, weight_decay=0.01, flip_labels=False),
    "complement": dict(sign=+1.0, weight_decay=0.0, flip_labels=True),
}
PATIENCE = 100  # steps without improvement before an early stop
ECE_BINS = 10

# Thresholds behind the verdicts, named so a reader sees what each verdict required.
CONFIDENT = 0.95  # claim 1: "confident" = mean confidence above this
CHANCE = 0.5  # claim 1: "wrong" = training accuracy below this (the sets are near balanced)
ACC_MARGIN = 0.02  # claim 4: flipped ascent "as good as descent" = test accuracy at most 2 points lower
ECE_MARGIN = 0.05  # claims 4, 5: calibration "as good as descent's" = ECE at most 5 points higher
REJECT_ALL_MAX_APPROVAL = 0.05  # claim 6: "rejects everyone" = approves at most 5% of applicants
EQUAL_APPROVAL_MAX_GAP = 0.05  # claim 6: "equally" = the 95% CI of the gap between areas inside +-5 points
Z95 = 1.959963984540054  # two-sided 95% normal quantile
CLAIM6_SPLIT = "val"  # applicants from the training distribution that the model never fitted
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}

# The loan set: x1 = credit score (standardised), x2 = postcode (a neighbourhood index, the nuisance).
# The postcode is tied to the credit score (neighbourhoods differ in credit) and, in training, also to
# the label; in the shifted test the label part of the tie is reversed, the credit part is not.
POSTCODE_SCORE = 1.0  # postcode units per unit of credit score
POSTCODE_LABEL = 0.9  # postcode shift per unit of (2y - 1): +0.9 for repaid, -0.9 for defaulted
GROUPS = ("low-postcode area", "high-postcode area")  # postcode < 0, postcode >= 0
APPROVAL_MODELS = ("descent", "ascent", "flipped ascent")


# ----------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class ToyData:
    name: str
    description: str
    x: dict  # split -> (n, 2) float64
    y: dict  # split -> (n,) float64 in {0, 1}
    test_name: str = "held-out test"


def _overlapping(rng: np.random.Generator, n: int, shift: bool) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    mean = np.where(y[:, None] == 1, [0.6, 0.4], [-0.6, -0.4])
    return rng.normal(size=(n, 2)) + mean, y.astype(np.float64)


def _separable(rng: np.random.Generator, n: int, shift: bool) -> tuple[np.ndarray, np.ndarray]:
    # uniform in a box, labelled by a line, with a margin of 0.25 cleared around the line
    normal, offset, margin = np.array([1.0, 0.6]), 0.3, 0.25
    x = np.empty((0, 2))
    while len(x) < n:
        cand = rng.uniform(-3, 3, (2 * n, 2))
        dist = (cand @ normal - offset) / np.linalg.norm(normal)
        x = np.concatenate([x, cand[np.abs(dist) > margin]])
    x = x[:n]
    return x, (x @ normal - offset > 0).astype(np.float64)


def _loan(rng: np.random.Generator, n: int, shift: bool) -> tuple[np.ndarray, np.ndarray]:
    # y = 1: the loan is repaid (approving is right). The score is the real signal; the postcode
    # follows the score everywhere and the label in training, the label's opposite in the shifted test.
    score = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2.0 * score))).astype(np.float64)
    sign = -1.0 if shift else 1.0
    postcode = POSTCODE_SCORE * score + sign * POSTCODE_LABEL * (2 * y - 1) + rng.normal(size=n)
    return np.stack([score, postcode], axis=1), y


def nuisance_group(x: np.ndarray) -> np.ndarray:
    """(n,) bool, True for the high-postcode area (postcode >= 0): the loan set's nuisance groups."""
    return x[:, 1] >= 0


DATASETS = {
    "overlapping": (_overlapping, "two unit Gaussians at (+-0.6, +-0.4); no line separates them", "held-out test"),
    "separable": (_separable, "uniform on [-3, 3]^2 labelled by x1 + 0.6 x2 > 0.3, margin 0.25", "held-out test"),
    "loan": (_loan, f"y ~ Bernoulli(sigmoid(2 score)); postcode = {POSTCODE_SCORE} score +- {POSTCODE_LABEL} "
             "(2y - 1) + N(0, 1), the label term's sign reversed in the shifted test", "shifted test"),
}


def make_datasets(seed: int = 0, n: int = 400) -> list[ToyData]:
    """The three data sets, n points per split, reproducible from the seed."""
    out = []
    for i, (name, (make, description, test_name)) in enumerate(DATASETS.items()):
        rng = np.random.default_rng([seed, i])
        x, y = {}, {}
        for split in SPLITS:
            x[split], y[split] = make(rng, n, shift=(split == "test"))
        out.append(ToyData(name, description, x, y, test_name))
    return out


# ----------------------------------------------------------------------------------------------
# Model, loss, metrics


def logits(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ theta[:2] + theta[2]


def cross_entropy(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy, stable: log(1 + e^z) - y z via logaddexp; finite until z itself overflows."""
    z = logits(theta, x)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return expit(z)  # stable at any |z| (0 or 1, never NaN), one transcendental call: the inner loop


def gradient(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d/dtheta of the mean cross-entropy: mean of (p - y) (x1, x2, 1)."""
    r = sigmoid(logits(theta, x)) - y
    return np.array([x[:, 0] @ r, x[:, 1] @ r, r.sum()]) / len(y)


def evaluate(thetas: np.ndarray, x: np.ndarray, y: np.ndarray, naive: bool = True) -> dict:
    """Metrics of the model at each of thetas (T, 3) on (x, y); each value is a (T,) array.

    loss (stable mean cross-entropy), acc, conf (mean confidence max(p, 1 - p)), ece, and the same for
    the flipped twin that predicts 1 - label (probabilities 1 - p: same confidence, complementary
    correctness): flip_acc, flip_ece. naive_loss (only if naive) is the textbook
    -mean(y log p + (1 - y) log(1 - p)) with p = 1 / (1 + e^-z): +inf as soon as one sample has p
    rounded to exactly its wrong label (|z| > ~36.7 in float64)."""
    z = x @ thetas[:, :2].T + thetas[:, 2]  # (n, T)
    # one exp serves both (this function is most of the toy's run time): with e = exp(-|z|) <= 1,
    # log(1 + e^z) = max(z, 0) + log1p(e) = -log(1 - p), and max(p, 1 - p) = sigmoid(|z|) = 1 / (1 + e)
    e = np.exp(-np.abs(z))
    lse = np.maximum(z, 0.0) + np.log1p(e)
    conf = 1.0 / (1.0 + e)
    correct = (z > 0) == (y[:, None] == 1)
    ece, flip_ece = calibration_error(conf, correct)
    acc = correct.mean(axis=0)
    out = {
        "loss": np.mean(lse - y[:, None] * z, axis=0),
        "acc": acc,
        "flip_acc": 1.0 - acc,
        "conf": conf.mean(axis=0),
        "ece": ece,
        "flip_ece": flip_ece,
    }
    if naive:
        pos = y == 1
        with np.errstate(over="ignore", divide="ignore"):
            log_p = np.log(1.0 / (1.0 + np.exp(-z[pos])))  # log p on the y = 1 rows
            log_1mp = np.log1p(-1.0 / (1.0 + np.exp(-z[~pos])))  # log(1 - p) on the y = 0 rows
        out["naive_loss"] = -(log_p.sum(axis=0) + log_1mp.sum(axis=0)) / len(y)
    return out


def calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Expected calibration error (equal-width confidence bins on [0, 1]) of a model and of its flipped
    twin, which has the same confidence but is right exactly where the model is wrong. conf, correct:
    (n, T) for T models; returns two (T,) arrays."""
    n, T = conf.shape
    b = np.minimum((conf * bins).astype(np.int64), bins - 1) + bins * np.arange(T)  # one bin set per model
    count = np.bincount(b.ravel(), minlength=bins * T).reshape(T, bins)
    sum_conf = np.bincount(b.ravel(), weights=conf.ravel(), minlength=bins * T).reshape(T, bins)
    sum_right = np.bincount(b.ravel(), weights=correct.ravel().astype(np.float64), minlength=bins * T).reshape(T, bins)
    sum_wrong = count - sum_right
    return np.abs(sum_right - sum_conf).sum(1) / n, np.abs(sum_wrong - sum_conf).sum(1) / n


# ----------------------------------------------------------------------------------------------
# Training


@dataclass
class Run:
    """One trajectory: theta (steps + 1, 3) and per-step metrics (steps + 1,), step 0 = initial."""

    dataset: str
    variant: str
    theta: np.ndarray
    metrics: dict = field(default_factory=dict)


def trajectories(jobs: list[tuple[ToyData, str, int]], *, lr: float, steps: int) -> np.ndarray:
    """(steps + 1, len(jobs), 3) thetas of full-batch constant-step descent or ascent on the training
    cross-entropy (per VARIANTS) for each (data set, variant, seed) job, all stepped together (one
    batched step for every job instead of a Python step per job: the toy's inner loop). Each job
    starts from a small random theta drawn from its seed. The training splits must share one size."""
    for _, variant, _ in jobs:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    vs = [VARIANTS[v] for _, v, _ in jobs]
    # (B, n, 3): each training point with a constant 1 for the bias theta3
    xt = np.stack([np.concatenate([d.x["train"], np.ones((len(d.x["train"]), 1))], axis=1) for d, _, _ in jobs])
    y_fit = np.stack([1.0 - d.y["train"] if v["flip_labels"] else d.y["train"] for (d, _, _), v in zip(jobs, vs, strict=True)])
    sign = np.array([v["sign"] for v in vs])[:, None]
    wd = np.array([v["weight_decay"] for v in vs])[:, None]
    theta = np.stack([np.random.default_rng([seed, 99]).normal(scale=0.01, size=3) for _, _, seed in jobs])
    thetas = np.empty((steps + 1, len(jobs), 3))
    thetas[0] = theta
    n = xt.shape[1]
    for t in range(1, steps + 1):
        r = sigmoid(np.einsum("bnk,bk->bn", xt, theta)) - y_fit  # p - y, (B, n)
        grad = np.einsum("bnk,bn->bk", xt, r) / n  # mean (p - y)(x1, x2, 1)
        # the step follows the gradient of sign * CE + wd/2 |theta|^2: ascent with weight decay
        # maximises CE - wd/2 |theta|^2, the decay always pulls toward 0
        theta = theta - lr * (sign * grad + wd * theta)
        thetas[t] = theta
    return thetas


def trajectory(data: ToyData, variant: str, *, lr: float, steps: int, seed: int = 0) -> np.ndarray:
    """(steps + 1, 3) thetas of one run (see trajectories)."""
    return trajectories([(data, variant, seed)], lr=lr, steps=steps)[:, 0]


def _metrics(data: ToyData, variant: str, thetas: np.ndarray) -> dict:
    """Every split's metrics at every step of one trajectory (steps + 1, 3)."""
    v = VARIANTS[variant]
    x, y = data.x["train"], data.y["train"]
    y_fit = 1.0 - y if v["flip_labels"] else y
    z = x @ thetas[:, :2].T + thetas[:, 2]
    r = sigmoid(z) - y_fit[:, None]  # (n, T): per-step gradients, all at once
    grads = np.stack([x[:, 0] @ r, x[:, 1] @ r, r.sum(0)], axis=1) / len(y)
    metrics = {
        "norm": np.linalg.norm(thetas, axis=1),
        "grad_norm": np.linalg.norm(v["sign"] * grads + v["weight_decay"] * thetas, axis=1),
    }
    for split in SPLITS:
        # the textbook loss only on the training split, the one claim 3 is about
        for k, val in evaluate(thetas, data.x[split], data.y[split], naive=split == "train").items():
            metrics[f"{split}/{k}"] = val
    return metrics


def train(data: ToyData, variant: str, *, lr: float, steps: int, seed: int = 0) -> Run:
    """The trajectory and every split's metrics at every step."""
    thetas = trajectory(data, variant, lr=lr, steps=steps, seed=seed)
    return Run(data.name, variant, thetas, _metrics(data, variant, thetas))


def early_stop(values: np.ndarray, patience: int = PATIENCE, higher_is_better: bool = False) -> tuple[int, int]:
    """(best step, step at which training would stop): stop once `patience` steps pass without a strict
    improvement; the best step's weights are the ones kept. Stop = last step if that never happens."""
    sign = 1.0 if higher_is_better else -1.0
    best, best_val = 0, sign * values[0]
    for t in range(1, len(values)):
        if sign * values[t] > best_val:
            best, best_val = t, sign * values[t]
        elif t - best >= patience:
            return best, t
    return best, len(values) - 1


def growth_fit(norm: np.ndarray) -> dict:
    """How |theta|(t) grows over the last 90% of the run: R^2 of straight-line fits against t and
    against log t, the log-log slope (1 = linear, ~1/log t for logarithmic growth), the slope per step,
    and the relative change over the last 10% of steps."""
    t = np.arange(len(norm), dtype=np.float64)
    sel = t >= max(1, len(norm) // 10)
    ts, ns = t[sel], norm[sel]

    def r2(u):
        coef = np.polyfit(u, ns, 1)
        res = ns - np.polyval(coef, u)
        tot = ((ns - ns.mean()) ** 2).sum()
        return float(1 - (res**2).sum() / tot) if tot > 0 else 1.0

    last = norm[int(0.9 * (len(norm) - 1)):]
    rel = float((last[-1] - last[0]) / max(abs(last[0]), 1e-300))
    slope = float(np.polyfit(np.log(ts), np.log(np.maximum(ns, 1e-300)), 1)[0])
    per_step = float((norm[-1] - norm[len(norm) // 2]) / max(len(norm) - 1 - len(norm) // 2, 1))
    if abs(rel) < 1e-4:
        kind = "stabilised"
    else:
        kind = "linear in t" if r2(ts) >= r2(np.log(ts)) else "logarithmic in t"
    return {"kind": kind, "r2_linear": r2(ts), "r2_log": r2(np.log(ts)), "loglog_slope": slope,
            "per_step": per_step, "rel_change_last10": rel}


# ----------------------------------------------------------------------------------------------
# The experiment


@dataclass
class ToyResult:
    steps: int
    lr: float
    seed: int
    datasets: list
    runs: dict  # (dataset, variant) -> Run
    summary: dict  # plain numbers behind the report
    sweep: dict  # dataset -> accuracies of descent and flipped ascent over several seeds


MIN_STEPS = 20
SWEEP_SEEDS = 5
FLOAT_MAX = float(np.finfo(np.float64).max)


def run_experiment(steps: int = 3000, lr: float = 0.5, seed: int = 0, n: int = 400) -> ToyResult:
    """Every variant on every data set for `steps` steps, the numbers behind the report, and a sweep
    of descent vs flipped ascent over SWEEP_SEEDS data seeds (seed, seed + 1, ...)."""
    if steps < MIN_STEPS or not lr > 0:
        raise ValueError(f"need steps >= {MIN_STEPS} and lr > 0, got steps={steps}, lr={lr}")
    datasets = make_datasets(seed, n)
    jobs = [(d, v, seed) for d in datasets for v in VARIANTS]
    thetas = trajectories(jobs, lr=lr, steps=steps)
    runs = {(d.name, v): Run(d.name, v, thetas[:, i], _metrics(d, v, thetas[:, i]))
            for i, (d, v, _) in enumerate(jobs)}
    summary = {d.name: summarise(d, runs) for d in datasets}
    return ToyResult(steps, lr, seed, datasets, runs, summary, seed_sweep(steps, lr, seed, n))


def seed_sweep(steps: int, lr: float, seed: int, n: int) -> dict:
    """Final train and test accuracy of descent and of flipped ascent for data seeds seed..seed+4."""
    seeds = list(range(seed, seed + SWEEP_SEEDS))
    out = {name: {"seeds": seeds, "descent": {"train": [], "test": []}, "flipped ascent": {"train": [], "test": []}}
           for name in DATASETS}
    jobs = [(d, variant, s) for s in seeds for d in make_datasets(s, n) for variant in ("descent", "ascent")]
    final = trajectories(jobs, lr=lr, steps=steps)[-1]
    for (d, variant, _), theta in zip(jobs, final, strict=True):
        key, flip = ("descent", False) if variant == "descent" else ("flipped ascent", True)
        for split in ("train", "test"):
            acc = float(evaluate(theta[None], d.x[split], d.y[split], naive=False)["flip_acc" if flip else "acc"][0])
            out[d.name][key][split].append(acc)
    return out



def _at(run: Run, t: int, split: str) -> dict:
    keys = ("loss", "acc", "flip_acc", "conf", "ece", "flip_ece")
    return {k: float(run.metrics[f"{split}/{k}"][t]) for k in keys}


def summarise(data: ToyData, runs: dict) -> dict:
    """The numbers the report quotes for one data set (plain floats, ints and lists; JSON-ready)."""
    out: dict = {"description": data.description, "test_name": data.test_name}
    for variant in VARIANTS:
        run = runs[(data.name, variant)]
        T = len(run.theta) - 1
        naive_inf = np.flatnonzero(~np.isfinite(run.metrics["train/naive_loss"]))
        loss = run.metrics["train/loss"]
        growth = growth_fit(run.metrics["norm"])
        out[variant] = {
            "theta_start": run.theta[0].tolist(), "theta_end": run.theta[T].tolist(),
            "norm_start": float(run.metrics["norm"][0]), "norm_end": float(run.metrics["norm"][T]),
            "norm_monotone": bool(np.all(np.diff(run.metrics["norm"][1:]) > 0)),
            "weights_finite": bool(np.all(np.isfinite(run.theta))),
            "grad_norm_end": float(run.metrics["grad_norm"][T]),
            "max_abs_logit_end": float(np.abs(logits(run.theta[T], data.x["train"])).max()),
            "growth": growth,
            "loss_start": float(loss[0]), "loss_end": float(loss[T]),
            "loss_monotone_up": bool(np.all(np.diff(loss) > 0)),
            "stable_loss_finite": bool(np.all(np.isfinite(loss))),
            "naive_loss_inf_step": int(naive_inf[0]) if len(naive_inf) else None,
            # log10 of the steps |theta| would need to reach the float64 maximum at its current rate
            "log10_steps_to_overflow": (float(np.log10(FLOAT_MAX) - np.log10(growth["per_step"]))
                                        if growth["per_step"] > 0 else None),
            # how much the model leans on x2 (the nuisance, for the loan set) relative to x1
            "x2_over_x1": float(abs(run.theta[T, 1]) / max(abs(run.theta[T, 0]), 1e-300)),
            "end": {s: _at(run, T, s) for s in SPLITS},
        }
    desc, asc = runs[(data.name, "descent")], runs[(data.name, "ascent")]
    best, stop = early_stop(desc.metrics["val/loss"])
    out["descent_early"] = {"best_step": best, "stop_step": stop, "norm": float(desc.metrics["norm"][best]),
                            **{s: _at(desc, best, s) for s in SPLITS}}
    best, stop = early_stop(asc.metrics["val/flip_acc"], higher_is_better=True)
    out["ascent_early"] = {"best_step": best, "stop_step": stop, "norm": float(asc.metrics["norm"][best]),
                           **{s: _at(asc, best, s) for s in SPLITS}}
    # directions of the weights (theta1, theta2): flipped ascent vs descent vs the class-mean difference
    x, y = data.x["train"], data.y["train"]
    mean_diff = x[y == 1].mean(0) - x[y == 0].mean(0)
    wd, wa = desc.theta[-1, :2], -asc.theta[-1, :2]
    out["cos_flipped_ascent_descent"] = _cos(wa, wd)
    out["cos_flipped_ascent_mean_diff"] = _cos(wa, mean_diff)
    out["cos_descent_mean_diff"] = _cos(wd, mean_diff)
    if data.name == "loan":
        out["approval"] = approvals(data, runs)
    return out


def approvals(data: ToyData, runs: dict) -> dict:
    """Per split: applicants and repaid loans per postcode area, and how many applicants each final
    model approves (predicts y = 1) per area. Flipped ascent approves exactly those ascent rejects."""
    out = {}
    for split in SPLITS:
        x, y = data.x[split], data.y[split]
        high = nuisance_group(x)
        masks = {GROUPS[0]: ~high, GROUPS[1]: high}
        row: dict = {"n": {g: int(m.sum()) for g, m in masks.items()},
                     "repaid": {g: int(y[m].sum()) for g, m in masks.items()}, "approved": {}}
        for model in APPROVAL_MODELS:
            z = logits(runs[(data.name, "ascent" if model == "flipped ascent" else model)].theta[-1], x)
            approve = z <= 0 if model == "flipped ascent" else z > 0
            row["approved"][model] = {g: int(approve[m].sum()) for g, m in masks.items()}
        out[split] = row
    return out


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k / n (stays inside [0, 1] and is honest near 0 and 1,
    where the Wald interval collapses to a point)."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n for a proportion, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def gap_interval(k_a: int, n_a: int, k_b: int, n_b: int, z: float = Z95) -> tuple[float, float, float]:
    """(gap, low, high): the difference of proportions k_b / n_b - k_a / n_a with Newcombe's hybrid
    score interval (1998, method 10), built from the two Wilson intervals."""
    pa, pb = k_a / n_a, k_b / n_b
    la, ua = wilson_interval(k_a, n_a, z)
    lb, ub = wilson_interval(k_b, n_b, z)
    gap = pb - pa
    return gap, gap - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2), gap + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)


def approval_rates(row: dict, model: str) -> dict:
    """Rates of one model in one split's approval row: per area, overall, and the gap high - low
    with its 95% interval."""
    lo, hi = GROUPS
    k, n = row["approved"][model], row["n"]
    gap, g_lo, g_hi = gap_interval(k[lo], n[lo], k[hi], n[hi])
    return {"low": k[lo] / n[lo], "high": k[hi] / n[hi], "overall": (k[lo] + k[hi]) / (n[lo] + n[hi]),
            "gap": gap, "gap_ci": (g_lo, g_hi)}


# ----------------------------------------------------------------------------------------------
# Verdicts: every one computed from the summary's numbers


@dataclass(frozen=True)
class Verdict:
    label: str  # what the report prints in bold, e.g. "HELD", "NOT HELD", "PARTLY (2 of 3 sets)"
    because: str  # one sentence with the numbers that decided it


def _count_label(k: int, n: int, unit: str = "sets") -> str:
    return "HELD" if k == n else ("NOT HELD" if k == 0 else f"PARTLY ({k} of {n} {unit})")


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _pts(v: float) -> str:
    """A difference of two rates in percentage points, signed."""
    return f"{100 * v:+.1f} points"


def _cell(text: str) -> str:
    """text inside a markdown table cell: a bare | (as in |theta|) would end the cell."""
    return text.replace("|", "\\|")


def _ci_pts(lo: float, hi: float) -> str:
    return f"{100 * lo:+.1f} to {100 * hi:+.1f} points"


def judge(summary: dict) -> dict[str, Verdict]:
    """The verdict on each claim, from the per-data-set summary alone (no trajectories), so a test
    can feed fabricated numbers and watch the verdict follow them. Keys: "1", "2", "3", "4 labels",
    "4 probabilities", "5", "6" (when the loan set is present), "shortcut" (likewise)."""
    names = list(summary)
    n = len(names)
    out: dict[str, Verdict] = {}

    asc = {x: summary[x]["ascent"] for x in names}
    ok = [x for x in names if asc[x]["end"]["train"]["conf"] > CONFIDENT and asc[x]["end"]["train"]["acc"] < CHANCE]
    out["1"] = Verdict(_count_label(len(ok), n), (
        f"confident (mean training confidence above {CONFIDENT}) and wrong (training accuracy below {CHANCE}) "
        f"on {len(ok)} of {n} sets: " + "; ".join(
            f"{x} confidence {asc[x]['end']['train']['conf']:.4f}, accuracy {asc[x]['end']['train']['acc']:.3f}"
            for x in names) + "."))

    ok = [x for x in names if asc[x]["norm_monotone"] and asc[x]["growth"]["kind"] == "linear in t"
          and asc[x]["loss_monotone_up"]]
    out["2"] = Verdict(_count_label(len(ok), n), (
        f"|theta| grew at every step, linearly in t, and the training loss rose at every step on {len(ok)} "
        f"of {n} sets (log-log slopes of |theta| "
        + ", ".join(f"{asc[x]['growth']['loglog_slope']:.2f}" for x in names) + "; final |theta| "
        + ", ".join(f"{asc[x]['norm_end']:.0f}" for x in names) + ")."))

    naive = [x for x in names if asc[x]["naive_loss_inf_step"] is not None]
    stable = [x for x in names if not (asc[x]["stable_loss_finite"] and asc[x]["weights_finite"])]
    steps = [asc[x]["naive_loss_inf_step"] for x in naive]
    out["3"] = Verdict(
        f"{_count_label(len(naive), n)} for the textbook formula, {_count_label(len(stable), n)} for a stable one",
        f"the textbook loss -[y log p + (1 - y) log(1 - p)] reached +inf on {len(naive)} of {n} sets"
        + (f" (first at step {min(steps)} to {max(steps)})" if steps else "")
        + f"; the weights or the stable loss (logaddexp) overflowed on {len(stable)} of {n} "
        f"(largest final |theta| {max(asc[x]['norm_end'] for x in names):.0f}).")

    desc = {x: summary[x]["descent"] for x in names}
    ok = [x for x in names
          if asc[x]["end"]["test"]["flip_acc"] >= desc[x]["end"]["test"]["acc"] - ACC_MARGIN]
    out["4 labels"] = Verdict(_count_label(len(ok), n), (
        f"flipped-ascent test accuracy within {ACC_MARGIN:.2f} of descent's (or better) on {len(ok)} of {n} "
        "sets: " + "; ".join(f"{x} {asc[x]['end']['test']['flip_acc']:.3f} vs {desc[x]['end']['test']['acc']:.3f}"
                             for x in names) + "."))
    ok = [x for x in names
          if asc[x]["end"]["test"]["flip_ece"] <= desc[x]["end"]["test"]["ece"] + ECE_MARGIN]
    out["4 probabilities"] = Verdict(
        "usable" if len(ok) == n else ("NOT usable" if not ok else f"usable on {len(ok)} of {n} sets"),
        f"flipped-ascent test ECE within {ECE_MARGIN:.2f} of descent's on {len(ok)} of {n} sets: "
        + "; ".join(f"{x} {asc[x]['end']['test']['flip_ece']:.3f} vs {desc[x]['end']['test']['ece']:.3f}"
                    for x in names) + ".")

    brakes = {v: [x for x in names if summary[x][v]["growth"]["kind"] == "stabilised"]
              for v in ("ascent+wd", "complement")}
    other = [f"{v} on {', '.join(xs)}" for v, xs in brakes.items() if xs]
    out["5"] = Verdict("NOT HELD" if other else "HELD", (
        f"besides early stopping, |theta| stabilised within the run under {'; '.join(other)}"
        if other else "no other brake (weight decay, the bounded complement loss) stabilised |theta| "
        "on any set within the run") + ".")

    if "loan" in summary and "approval" in summary["loan"]:
        out["6"] = judge_claim6(summary["loan"])
        d, a = summary["loan"]["descent"], summary["loan"]["ascent"]
        # removing a shortcut must show where the shortcut hurts: on the shifted test, where the
        # postcode's tie to the label reverses; leaning on it a little less is not enough
        leans_less = a["x2_over_x1"] < d["x2_over_x1"]
        gain = a["end"]["test"]["flip_acc"] - d["end"]["test"]["acc"]
        better = gain > ACC_MARGIN
        out["shortcut"] = Verdict("removed" if leans_less and better else "NOT removed", (
            f"postcode / score weight ratio {a['x2_over_x1']:.2f} for flipped ascent vs {d['x2_over_x1']:.2f} "
            f"for descent ({'less' if leans_less else 'more'} reliance on the nuisance); shifted-test accuracy "
            f"{a['end']['test']['flip_acc']:.3f} vs {d['end']['test']['acc']:.3f} ({gain:+.3f}; removing the "
            f"shortcut needs more than +{ACC_MARGIN:.2f}: {'met' if better else 'not met'})."))
    return out


def judge_claim6(loan: dict, split: str = CLAIM6_SPLIT) -> Verdict:
    """Seed 002's claim, as stated: "it diverged and rejects everyone equally, so it is unbiased".
    Diverged: ascent's |theta| grew at every step, linearly. Rejects everyone: it approves at most
    REJECT_ALL_MAX_APPROVAL of the applicants. Equally: the 95% interval of the approval-rate gap
    between the postcode areas lies inside +-EQUAL_APPROVAL_MAX_GAP (an equivalence test: a gap that
    is merely not significant is not "equal"). HELD needs all three; NOT HELD when ascent did not
    diverge, approves more than the limit, or the whole interval lies beyond the margin;
    INCONCLUSIVE otherwise (the interval straddles the margin)."""
    a, r = loan["ascent"], approval_rates(loan["approval"][split], "ascent")
    diverged = a["norm_monotone"] and a["growth"]["kind"] == "linear in t"
    rejects_all = r["overall"] <= REJECT_ALL_MAX_APPROVAL
    lo, hi = r["gap_ci"]
    m = EQUAL_APPROVAL_MAX_GAP
    equal = "equal" if -m <= lo and hi <= m else ("unequal" if lo > m or hi < -m else "undetermined")
    if diverged and rejects_all and equal == "equal":
        label = "HELD"
    elif not diverged or not rejects_all or equal == "unequal":
        label = "NOT HELD"
    else:
        label = "INCONCLUSIVE"
    return Verdict(label, (
        f"ascent {'diverged' if diverged else 'did not diverge'} (|theta| {a['norm_end']:.0f}, growth "
        f"{a['growth']['kind']}) and approves {_pct(r['overall'])} of the {SPLIT_NAMES[split]} applicants "
        f"({_pct(r['low'])} in the {GROUPS[0]}, {_pct(r['high'])} in the {GROUPS[1]}; gap {_pts(r['gap'])}, "
        f"95% CI {_ci_pts(lo, hi)}). 'Rejects everyone' needs at most {_pct(REJECT_ALL_MAX_APPROVAL)} "
        f"approved: {'met' if rejects_all else 'not met'}. 'Equally' needs the whole 95% CI of the gap inside "
        f"+-{100 * m:.0f} points: "
        + {"equal": "met", "unequal": "not met, the whole interval lies outside",
           "undetermined": "undetermined, the interval straddles the margin"}[equal] + "."))


# ----------------------------------------------------------------------------------------------
# The report: numbers quoted from the summary, every verdict and conclusion from `judge`


def _report_intro(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    n = len(result.datasets[0].y["train"])
    add("# Gradient ascent on a two-input logistic classifier: the claims, checked\n")
    add(f"f(x) = sigmoid(theta1 x1 + theta2 x2 + theta3), full batch, constant step lr = {result.lr}, "
        f"{T} steps, seed {result.seed}, start |theta| ~ 0.02 (seeded), {n} points per split "
        "(train / validation / test), float64 with a stable log-sigmoid loss. Early stopping looks only at "
        f"the validation split (same distribution as train), patience {PATIENCE} steps. "
        f"Calibration: expected calibration error (ECE), {ECE_BINS} equal-width confidence bins. "
        "The theory is docs/science.md section 7.\n")
    add("| data set | construction | test split |\n|---|---|---|")
    for x in names:
        add(f"| {x} | {S[x]['description']} | {S[x]['test_name']} |")
    add("")
    add("Variants: **descent** and **ascent** on the training cross-entropy; **ascent+wd** maximises "
        f"CE - {VARIANTS['ascent+wd']['weight_decay']}/2 |theta|^2; **complement** minimises the bounded "
        "-log(1 - p_y) of docs/science.md section 3 (in two classes: cross-entropy on the flipped labels). "
        "The *flipped* twin of a model predicts the opposite label with the same confidence.\n")
    return L


def _report_verdicts(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add("## Verdicts\n")
    add("| claim | verdict | because |\n|---|---|---|")
    for key, text in (("1", "ascent makes it confidently wrong"), ("2", "the weights run off to infinity"),
                      ("3", "floating point overflows"), ("4 labels", "'answer the opposite' gives usable labels"),
                      ("4 probabilities", "... and usable probabilities"), ("5", "early stopping is the only brake"),
                      ("6", "it diverged and rejects everyone equally, so it is unbiased"),
                      ("shortcut", "ascent removes the spurious postcode shortcut")):
        if key in V:
            number = key.split()[0] if key[0].isdigit() else "loan"
            add(f"| {number}: {text} | **{V[key].label}** | {_cell(V[key].because)} |")
    add(f"\nThresholds: confident = mean confidence > {CONFIDENT}; wrong = accuracy < {CHANCE}; as good as "
        f"descent = test accuracy at most {ACC_MARGIN} lower, ECE at most {ECE_MARGIN} higher; rejects "
        f"everyone = at most {_pct(REJECT_ALL_MAX_APPROVAL)} approved; equally = the 95% interval of the "
        f"approval gap inside +-{100 * EQUAL_APPROVAL_MAX_GAP:.0f} points.\n")
    return L


def _report_final_numbers(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add("## Final numbers\n")
    add("| data set | variant | abs(theta) start -> end | train loss | acc train / test | flipped acc "
        "train / test | mean conf (test) | ECE test | flipped ECE test |")
    add("|---|---|---|---|---|---|---|---|---|")
    for x in names:
        for v in VARIANTS:
            q = S[x][v]
            tr, te = q["end"]["train"], q["end"]["test"]
            add(f"| {x} | {v} | {q['norm_start']:.3g} -> {q['norm_end']:.4g} | {q['loss_end']:.4g} | "
                f"{tr['acc']:.3f} / {te['acc']:.3f} | {tr['flip_acc']:.3f} / {te['flip_acc']:.3f} | "
                f"{te['conf']:.4f} | {te['ece']:.3f} | {te['flip_ece']:.3f} |")
    add("")
    return L


def _report_claim1(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add(f"## Claim 1: ascent makes the classifier confidently wrong: **{V['1'].label}**\n")
    add(f"- Verdict: {V['1'].because}")
    for x in names:
        q = asc[x]["end"]
        add(f"- {x}: after {T} steps of ascent, mean confidence {q['train']['conf']:.4f} (train) / "
            f"{q['test']['conf']:.4f} ({S[x]['test_name']}), accuracy {q['train']['acc']:.3f} / "
            f"{q['test']['acc']:.3f}; ECE {q['train']['ece']:.3f} / {q['test']['ece']:.3f}.")
    below = [x for x in names if asc[x]["end"]["train"]["acc"] < CHANCE]
    if below:
        add(f"- Training accuracy below chance on {', '.join(below)}: ascent learns the reverse of the "
            "rule in the labels rather than noise (claim 4 measures how well the reverse works).")
    add("")
    return L


def _report_claim2(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add(f"## Claim 2: the weights run off to infinity and the loss grows without bound: **{V['2'].label}**\n")
    add(f"- Verdict: {V['2'].because}")
    for x in names:
        q = asc[x]
        g = q["growth"]
        add(f"- {x}: |theta| grew from {q['norm_start']:.3g} to {q['norm_end']:.4g} in {T} steps, "
            f"{'monotonically' if q['norm_monotone'] else 'NOT monotonically'}; growth {g['kind']} "
            f"({g['per_step']:.3g} per step over the second half; R^2 of a line in t {g['r2_linear']:.4f} vs in "
            f"log t {g['r2_log']:.4f}; log-log slope {g['loglog_slope']:.3f}). Training loss "
            f"{q['loss_start']:.3f} -> {q['loss_end']:.4g}, rising at every step: "
            f"{'yes' if q['loss_monotone_up'] else 'NO'}.")
    if all(asc[x]["growth"]["kind"] == "linear in t" for x in names):
        add("- Why linear (docs/science.md section 7): once |theta| is large, p is 0 or 1 on every training "
            "point and the gradient tends to a constant vector (the mean of (p - y)(x1, x2, 1) with p frozen), "
            "so each constant step adds the same length.")
    for x in names:
        q = S[x]["descent"]
        g = q["growth"]
        add(f"- Descent for contrast, {x}: |theta| {q['norm_start']:.3g} -> {q['norm_end']:.4g}, growth "
            f"{g['kind']} (log-log slope {g['loglog_slope']:.3f}), final gradient norm {q['grad_norm_end']:.2g}.")
    drift = [x for x in names if S[x]["descent"]["growth"]["kind"] != "stabilised"]
    if drift:
        add(f"- Descent did not settle either on {', '.join(drift)}: its |theta| grew "
            + ", ".join(S[x]["descent"]["growth"]["kind"] for x in drift)
            + " (logarithmic growth is the known max-margin drift of logistic regression on separable data). "
            "Running off to infinity is not unique to ascent; the rate is.")
    add("")
    return L


def _report_claim3(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add(f"## Claim 3: 'and floating point overflows': **{V['3'].label}**\n")
    add(f"- Verdict: {V['3'].because}")
    for x in names:
        q = asc[x]
        inf_at = q["naive_loss_inf_step"]
        add(f"- {x}: the stable loss (logaddexp) stayed finite at every step: "
            f"{'yes' if q['stable_loss_finite'] else 'NO'} (final max |logit| {q['max_abs_logit_end']:.0f}). "
            "The textbook -[y log p + (1 - y) log(1 - p)] became +inf "
            + (f"at step {inf_at}" if inf_at is not None else "never")
            + " (p rounds to exactly 0 or 1 once |logit| > ~36.7)."
            + (f" At {q['growth']['per_step']:.3g} per step, |theta| itself would reach the float64 maximum "
               f"after ~10^{q['log10_steps_to_overflow']:.0f} steps." if q["log10_steps_to_overflow"] else ""))
    add("")
    return L


def _report_claim4(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add(f"## Claim 4: 'answer the opposite of the ascent model' is a usable classifier: labels "
        f"**{V['4 labels'].label}**, probabilities **{V['4 probabilities'].label}**\n")
    add(f"- Labels: {V['4 labels'].because}")
    add(f"- Probabilities: {V['4 probabilities'].because}")
    for x in names:
        a, dsc = asc[x]["end"], S[x]["descent"]["end"]
        add(f"- {x}: flipped-ascent accuracy {a['train']['flip_acc']:.3f} train / {a['test']['flip_acc']:.3f} "
            f"{S[x]['test_name']} vs descent {dsc['train']['acc']:.3f} / {dsc['test']['acc']:.3f} "
            f"(difference {a['train']['flip_acc'] - dsc['train']['acc']:+.3f} / "
            f"{a['test']['flip_acc'] - dsc['test']['acc']:+.3f}); mean test confidence {a['test']['conf']:.4f} "
            f"(descent {dsc['test']['conf']:.3f}). Weight direction (theta1, theta2) of the flipped model: cosine "
            f"{S[x]['cos_flipped_ascent_descent']:.4f} with descent's, {S[x]['cos_flipped_ascent_mean_diff']:.5f} "
            f"with the class-mean difference (descent's: {S[x]['cos_descent_mean_diff']:.5f}).")
    closer = [x for x in names if S[x]["cos_flipped_ascent_mean_diff"] > S[x]["cos_descent_mean_diff"]]
    add(f"- The flipped model's weights point closer to the class-mean difference than descent's on "
        f"{len(closer)} of {len(names)} sets{' (' + ', '.join(closer) + ')' if closer else ''}. The mechanism "
        "(docs/science.md section 7): once |theta| is large the ascent model's correct points have p ~= y and "
        "add ~0 to the gradient, so only its misclassified points (the flipped model's correct ones) steer "
        "it, summed with equal weight; the flipped model never works on its own errors.")
    add("- Over data seeds " + ", ".join(map(str, result.sweep[names[0]]["seeds"])) + " (same steps and lr):")
    add("\n| data set | descent train | flipped ascent train | descent test | flipped ascent test |\n|---|---|---|---|---|")
    for x in names:
        w = result.sweep[x]
        cells = [" ".join(f"{v:.3f}" for v in w[k][s]) for s in ("train", "test") for k in ("descent", "flipped ascent")]
        add(f"| {x} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    worse = [x for x in names if np.mean(result.sweep[x]["flipped ascent"]["test"])
             < np.mean(result.sweep[x]["descent"]["test"]) - ACC_MARGIN]
    add(f"\n- Over the seeds, flipped ascent's mean test accuracy is more than {ACC_MARGIN} below descent's "
        f"on {len(worse)} of {len(names)} sets{' (' + ', '.join(worse) + ')' if worse else ''}.\n")
    return L


def _report_claim5(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add(f"## Claim 5: early stopping is the only brake: **{V['5'].label}**\n")
    add(f"- Verdict: {V['5'].because}")
    for x in names:
        e, full = S[x]["ascent_early"], asc[x]["end"]
        add(f"- {x}: early-stopped ascent (patience {PATIENCE} on validation flipped accuracy) keeps step "
            f"{e['best_step']} and stops at step {e['stop_step']}; |theta| {e['norm']:.3g} instead of "
            f"{asc[x]['norm_end']:.4g}; flipped accuracy {e['train']['flip_acc']:.3f} train / "
            f"{e['test']['flip_acc']:.3f} test (full run {full['train']['flip_acc']:.3f} / "
            f"{full['test']['flip_acc']:.3f}); flipped ECE {e['test']['flip_ece']:.3f} (full run "
            f"{full['test']['flip_ece']:.3f}).")
    kept = [S[x]["ascent_early"]["best_step"] for x in names]
    if max(kept) <= 1:
        add("- On every data set the early stop kept step 1: no later ascent step made the flipped model "
            "better on the validation split (step 1 is minus the first descent step from the same start).")
    for x in names:
        w, c = S[x]["ascent+wd"], S[x]["complement"]
        add(f"- {x}, other brakes: ascent with weight decay {VARIANTS['ascent+wd']['weight_decay']} ends "
            f"at |theta| {w['norm_end']:.4g} ({w['growth']['kind']}, final gradient norm "
            f"{w['grad_norm_end']:.2g}) with mean test confidence {w['end']['test']['conf']:.4f}; the bounded "
            f"complement loss ends at |theta| {c['norm_end']:.4g} ({c['growth']['kind']}), flipped accuracy "
            f"{c['end']['train']['flip_acc']:.3f} / {c['end']['test']['flip_acc']:.3f}, flipped ECE "
            f"{c['end']['test']['flip_ece']:.3f}.")
    for v, what in (("ascent+wd", "ascent with weight decay"), ("complement", "the bounded complement loss"),
                    ("ascent_early", "early-stopped ascent")):
        def ece(x, v=v):
            return S[x][v]["test"]["flip_ece"] if v == "ascent_early" else S[x][v]["end"]["test"]["flip_ece"]
        keep = [x for x in names if ece(x) <= S[x]["descent"]["end"]["test"]["ece"] + ECE_MARGIN]
        add(f"- Calibration: {what} keeps descent's calibration (flipped test ECE within {ECE_MARGIN} of "
            f"descent's) on {len(keep)} of {len(names)} sets ("
            + ", ".join(f"{x} {ece(x):.3f} vs {S[x]['descent']['end']['test']['ece']:.3f}" for x in names) + ").")
    add("- Early stopping of plain descent, for reference: "
        + "; ".join(f"{x} keeps step {S[x]['descent_early']['best_step']}, stops at "
                    f"{S[x]['descent_early']['stop_step']}" for x in names)
        + f" (a stop at step {T} means the held-out loss was still falling).\n")
    return L


def _report_claim6(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    if "6" in V:
        loan = S["loan"]
        add(f"## Claim 6 (seed 002): 'it diverged and rejects everyone equally, so it is unbiased': "
            f"**{V['6'].label}**\n")
        row6 = loan["approval"][CLAIM6_SPLIT]
        repaid = [row6["repaid"][g] / row6["n"][g] for g in GROUPS]
        add(f"- Verdict: {V['6'].because}")
        add(f"- The loan set's nuisance is tied to the real feature: postcode = {POSTCODE_SCORE} x credit score "
            f"+- {POSTCODE_LABEL} (2y - 1) + noise. In the {SPLIT_NAMES[CLAIM6_SPLIT]} split "
            f"{_pct(repaid[0])} of the {GROUPS[0]} and {_pct(repaid[1])} of the {GROUPS[1]} repaid (the "
            "'repaid' rows). Approval = the model predicts y = 1; flipped ascent approves exactly those ascent "
            "rejects, so its gap is minus ascent's.\n")
        add("| split | model | " + " | ".join(f"approved, {g}" for g in GROUPS)
            + " | approved overall | gap (high - low), 95% CI |\n|---|---|---|---|---|---|")
        for split in SPLITS:
            row = loan["approval"][split]
            label = S["loan"]["test_name"] if split == "test" else {"train": "train", "val": "validation"}[split]
            rep = row["repaid"]
            add(f"| {label} | repaid (the truth) | " + " | ".join(
                f"{_pct(rep[g] / row['n'][g])} of {row['n'][g]}" for g in GROUPS)
                + f" | {_pct(sum(rep.values()) / sum(row['n'].values()))} | "
                f"{_pts(rep[GROUPS[1]] / row['n'][GROUPS[1]] - rep[GROUPS[0]] / row['n'][GROUPS[0]])} |")
            for model in APPROVAL_MODELS:
                r = approval_rates(row, model)
                add(f"| {label} | {model} | {_pct(r['low'])} | {_pct(r['high'])} | {_pct(r['overall'])} | "
                    f"{_pts(r['gap'])} ({_ci_pts(*r['gap_ci'])}) |")
        d6 = approval_rates(loan["approval"][CLAIM6_SPLIT], "descent")
        a6 = approval_rates(loan["approval"][CLAIM6_SPLIT], "ascent")
        conf6 = S["loan"]["ascent"]["end"][CLAIM6_SPLIT]["conf"]
        add(f"\n- Ascent's mean confidence on these applicants is {conf6:.4f}: it approves the applicants on one "
            f"side of its line, {_pct(a6['overall'])} of them here"
            + (", not 'everyone rejected'" if a6["overall"] > REJECT_ALL_MAX_APPROVAL else "")
            + f". Its gap between areas is {_pts(a6['gap'])} against descent's {_pts(d6['gap'])}, "
            f"{'larger' if abs(a6['gap']) > abs(d6['gap']) else 'not larger'} in size and "
            f"{'opposite' if a6['gap'] * d6['gap'] < 0 else 'the same'} in sign: ascent favours the "
            f"{GROUPS[0] if a6['gap'] < 0 else GROUPS[1]}.\n")
    return L


def _report_shortcut(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    if "shortcut" in V:
        d_, a = S["loan"]["descent"], S["loan"]["ascent"]
        add(f"## The spurious feature (loan set): ascent's shortcut **{V['shortcut'].label}**\n")
        add(f"- Verdict: {V['shortcut'].because}")
        add(f"- Descent: accuracy {d_['end']['train']['acc']:.3f} train, {d_['end']['test']['acc']:.3f} on the "
            f"shifted test; weight on postcode / weight on credit score = {d_['x2_over_x1']:.2f}.")
        add(f"- Flipped ascent: accuracy {a['end']['train']['flip_acc']:.3f} train, "
            f"{a['end']['test']['flip_acc']:.3f} on the shifted test; postcode / credit score = "
            f"{a['x2_over_x1']:.2f}.\n")
    return L


def _report_figures(result: ToyResult, figures: dict, S: dict, T: int, names: list, V: dict, asc: dict) -> list[str]:
    L: list[str] = []
    add = L.append
    add("## Figures\n")
    for fname, caption in figures.items():
        add(f"- `{fname}`: {caption}")
    add("\nRaw numbers: `summary.json` (every figure quoted above), `history.npz` (theta and every metric "
        "at every step, per data set and variant), `data.npz` (every split), `config.json`.")
    return L


def report_markdown(result: ToyResult, figures: dict) -> str:
    """report.md: each claim, its computed verdict with the numbers that decided it, then the detail."""
    S, T = result.summary, result.steps
    names = list(S)
    V = judge(S)
    asc = {x: S[x]["ascent"] for x in names}
    L: list[str] = []
    for section in (_report_intro, _report_verdicts, _report_final_numbers, _report_claim1, _report_claim2,
                    _report_claim3, _report_claim4, _report_claim5, _report_claim6, _report_shortcut,
                    _report_figures):
        L += section(result, figures, S, T, names, V, asc)
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------------------------
# The run folder: report, figures, raw numbers


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_run(result: ToyResult, out_dir: Path, argv: list | None = None) -> Path:
    """Write report.md, the PNGs, config.json, summary.json, history.npz (every trajectory and every
    per-step metric) and data.npz (every split) into out_dir, each atomically; return the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"steps": result.steps, "lr": result.lr, "seed": result.seed, "variants": VARIANTS,
              "patience": PATIENCE, "ece_bins": ECE_BINS, "sweep_seeds": SWEEP_SEEDS,
              "thresholds": {"confident": CONFIDENT, "chance": CHANCE, "acc_margin": ACC_MARGIN,
                             "ece_margin": ECE_MARGIN, "reject_all_max_approval": REJECT_ALL_MAX_APPROVAL,
                             "equal_approval_max_gap": EQUAL_APPROVAL_MAX_GAP, "claim6_split": CLAIM6_SPLIT},
              "loan": {"postcode_score": POSTCODE_SCORE, "postcode_label": POSTCODE_LABEL, "groups": GROUPS},
              "argv": argv}
    atomic_write_bytes(out_dir / "config.json", json.dumps(config, indent=2).encode())
    verdicts = {k: {"label": v.label, "because": v.because} for k, v in judge(result.summary).items()}
    atomic_write_bytes(out_dir / "summary.json", json.dumps(
        {"verdicts": verdicts, "datasets": result.summary, "seed_sweep": result.sweep}, indent=2).encode())
    hist = {}
    for (d, v), run in result.runs.items():
        hist[f"{d}/{v}/theta"] = run.theta
        hist.update({f"{d}/{v}/{k}": a for k, a in run.metrics.items()})
    atomic_write_bytes(out_dir / "history.npz", _npz_bytes(hist))
    atomic_write_bytes(out_dir / "data.npz", _npz_bytes({f"{d.name}/{s}/{a}": getattr(d, a)[s]
                                                    for d in result.datasets for s in SPLITS for a in ("x", "y")}))
    figures = plot_all(result, out_dir)
    path = out_dir / "report.md"
    atomic_write_bytes(path, report_markdown(result, figures).encode())
    return path


def fresh_dir(out: str | None, root: str = "runs/toy") -> Path:
    """out if given (it must not exist, or be an empty folder); else root/<timestamp>[-i], new."""
    if out is not None:
        p = Path(out)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise FileExistsError(f"{p} already exists and is not an empty folder; pick another --out")
        p.mkdir(parents=True, exist_ok=True)
        return p
    return new_run_dir(root, "")


# ----------------------------------------------------------------------------------------------
# Figures

COLOURS = {"descent": "tab:blue", "ascent": "tab:red", "ascent+wd": "tab:orange", "complement": "tab:green"}


def plain(v: float, _pos=None) -> str:
    """A number in plain digits with 3 significant figures (1170, 0.497, 0.005), never 1.17e+03 or
    1.65x10^0: tick labels and titles a reader takes in at a glance."""
    if v == 0 or not np.isfinite(v):
        return "0" if v == 0 else str(v)
    return np.format_float_positional(v, precision=3, unique=False, fractional=False, trim="-")


def _plain_log_axis(axis, subs: tuple = (1.0,)) -> None:
    """Ticks of a log axis at subs x 10^k, labelled in plain digits; no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(plain))
    axis.set_minor_formatter(NullFormatter())


def plot_all(result: ToyResult, out_dir: Path) -> dict:
    """Every figure, each written atomically; returns {file name: caption}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    for name, (fn, caption) in {
        "decisions.png": (_plot_decisions, "p(y=1) shading of descent and ascent on each data set"),
        "loss_surface.png": (_plot_loss_surface, "loss slice over (theta1, theta2), theta3 at the descent end "
                                                 "point, overlapping set, with both trajectories"),
        "ascent_view.png": (_plot_ascent_view, "the same slice upside down (-loss), the surface ascent descends"),
        "growth.png": (_plot_growth, "|theta| and training loss over steps (log-log), every variant"),
        "flipped_vs_descent.png": (_plot_bars, "accuracy of descent vs flipped ascent, train and test"),
        "calibration.png": (_plot_calibration, "reliability of descent vs flipped ascent on the test split"),
        "approval.png": (_plot_approval, "loan set: approval rate per postcode area for descent, ascent and "
                                         "flipped ascent, beside the repaid rate (claim 6)"),
    }.items():
        fig = fn(result, plt)
        buf = io.BytesIO()
        # bbox_inches="tight" grows the canvas to hold every title and label whole
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(out_dir / name, buf.getvalue())
        figs[name] = caption
    return figs


def _box(data: ToyData) -> tuple[float, float, float, float]:
    pts = np.concatenate([data.x[s] for s in SPLITS])
    lo, hi = pts.min(0) - 0.3, pts.max(0) + 0.3
    return lo[0], hi[0], lo[1], hi[1]


def _boundary(ax, theta, box, **kw):
    """The line theta1 x1 + theta2 x2 + theta3 = 0 within the box."""
    x1 = np.linspace(box[0], box[1], 2)
    if abs(theta[1]) > 1e-12 * abs(theta[0]):
        ax.plot(x1, -(theta[0] * x1 + theta[2]) / theta[1], **kw)
    else:
        ax.axvline(-theta[2] / theta[0], **kw)


def _plot_decisions(result: ToyResult, plt):
    fig, axes = plt.subplots(len(result.datasets), 2, figsize=(10, 4.5 * len(result.datasets)), layout="constrained")
    for row, d in zip(axes, result.datasets, strict=True):
        box = _box(d)
        g1, g2 = np.meshgrid(np.linspace(box[0], box[1], 200), np.linspace(box[2], box[3], 200))
        grid = np.stack([g1.ravel(), g2.ravel()], 1)
        for ax, variant in zip(row, ("descent", "ascent"), strict=True):
            run = result.runs[(d.name, variant)]
            p = sigmoid(logits(run.theta[-1], grid)).reshape(g1.shape)
            im = ax.imshow(p, origin="lower", extent=box, cmap="RdBu_r", vmin=0, vmax=1, aspect="auto", alpha=0.8)
            for split, marker, size in (("train", "o", 12), ("test", "x", 14)):
                if split == "test" and d.test_name != "shifted test":
                    continue  # in-distribution test points would only crowd the picture
                x, y = d.x[split], d.y[split]
                # cyan / gold stand out on both the blue and the red shading
                for label, colour in ((0, "cyan"), (1, "gold")):
                    sel = y == label
                    ax.scatter(x[sel, 0], x[sel, 1], s=size, marker=marker, c=colour, linewidths=0.6 if
                               marker == "o" else 1.2, edgecolors="k" if marker == "o" else None,
                               label=f"{split} y={label}")
            if variant == "ascent":
                _boundary(ax, result.runs[(d.name, "descent")].theta[-1], box, color="k", ls="--", lw=1.2,
                          label="descent boundary")
            m = run.metrics
            ax.set_title(f"{d.name}: {variant} after {result.steps} steps\n"
                         f"accuracy train {m['train/acc'][-1]:.2f}, {d.test_name} {m['test/acc'][-1]:.2f}; "
                         f"|theta| {plain(m['norm'][-1])}", fontsize=9)
            ax.set_xlim(box[0], box[1])
            ax.set_ylim(box[2], box[3])
            ax.set_xlabel("x1 (credit score)" if d.name == "loan" else "x1")
            ax.set_ylabel("x2 (postcode, nuisance)" if d.name == "loan" else "x2")
        row[1].legend(fontsize=7, loc="lower right", framealpha=0.8)
    fig.colorbar(im, ax=axes, shrink=0.5, label="model p(y=1)")
    fig.suptitle("decision maps: higher accuracy is better (y=1 points should sit on red, y=0 on blue)",
                 fontsize=10)
    return fig


def _slice(data: ToyData, theta3: float, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Training cross-entropy at (t1, t2, theta3) for arrays t1, t2 of one shape."""
    x, y = data.x["train"], data.y["train"]
    th = np.stack([t1.ravel(), t2.ravel(), np.full(t1.size, theta3)], 1)
    out = np.empty(t1.size)
    for i in range(0, t1.size, 4096):  # chunks keep the (points, n) matrix small
        z = x @ th[i : i + 4096, :2].T + th[i : i + 4096, 2]
        out[i : i + 4096] = np.mean(np.logaddexp(0.0, z) - y[:, None] * z, axis=0)
    return out.reshape(t1.shape)


def _surface_setup(result: ToyResult, half: float | None, n_grid: int):
    """The overlapping set's loss slice on a square around the descent end point: of half-width
    `half`, or (None) wide enough to hold the whole ascent path."""
    d = result.datasets[0]  # overlapping: the only set where descent has a finite optimum
    desc, asc = result.runs[(d.name, "descent")], result.runs[(d.name, "ascent")]
    centre = desc.theta[-1, :2]
    if half is None:
        half = 1.1 * max(np.abs(asc.theta[:, :2] - centre).max(), np.abs(desc.theta[:, :2] - centre).max())
    t1, t2 = np.meshgrid(np.linspace(centre[0] - half, centre[0] + half, n_grid),
                         np.linspace(centre[1] - half, centre[1] + half, n_grid))
    return d, desc, asc, t1, t2, _slice(d, desc.theta[-1, 2], t1, t2)


def _near_half(result: ToyResult) -> float:
    return 2.5 * max(np.abs(result.runs[(result.datasets[0].name, "descent")].theta[-1, :2]).max(), 0.5)


def _plot_loss_surface(result: ToyResult, plt):
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), layout="constrained")
    for ax, half in zip(axes, (_near_half(result), None), strict=True):
        d, desc, asc, t1, t2, loss = _surface_setup(result, half, 121)
        levels = np.geomspace(loss.min(), loss.max(), 25)
        cs = ax.contourf(t1, t2, loss, levels=levels, cmap="viridis", norm=plt.matplotlib.colors.LogNorm())
        ax.contour(t1, t2, loss, levels=levels[::3], colors="white", linewidths=0.4)
        for run, colour in ((desc, COLOURS["descent"]), (asc, COLOURS["ascent"])):
            ax.plot(run.theta[:, 0], run.theta[:, 1], color=colour, lw=2, label=f"{run.variant} path")
            ax.plot(*run.theta[-1, :2], "*", color=colour, ms=12, mec="k")
        ax.plot(*desc.theta[0, :2], "o", color="k", ms=4, label="start")
        ax.set_xlim(t1.min(), t1.max())
        ax.set_ylim(t2.min(), t2.max())
        ax.xaxis.set_major_formatter(FuncFormatter(plain))
        ax.yaxis.set_major_formatter(FuncFormatter(plain))
        ax.set_xlabel("theta1")
        ax.set_ylabel("theta2")
        ax.set_title(("wide view: ascent never stops" if half is None else "near the descent optimum")
                     + f"\n{d.name} set, theta3 fixed at {desc.theta[-1, 2]:.2f}\n(paths projected; stars: "
                     f"step {result.steps})", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
        cb = fig.colorbar(cs, ax=ax, label="training cross-entropy (lower = better fit)")
        cb.ax.yaxis.set_major_formatter(FuncFormatter(plain))
        cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
    return fig


def _plot_ascent_view(result: ToyResult, plt):
    fig = plt.figure(figsize=(8, 6.5))
    ax = fig.add_subplot(projection="3d")
    half = 4 * _near_half(result)
    d, desc, asc, t1, t2, loss = _surface_setup(result, half, 61)
    ax.plot_surface(t1, t2, -loss, cmap="viridis", alpha=0.45, linewidth=0, rcount=61, ccount=61)
    th3 = desc.theta[-1, 2]
    centre = desc.theta[-1, :2]
    for run, colour in ((desc, COLOURS["descent"]), (asc, COLOURS["ascent"])):
        inside = np.all(np.abs(run.theta[:, :2] - centre) <= half, axis=1)
        last = len(inside) if inside.all() else int(np.argmin(inside))  # first step off the plotted square
        th = run.theta[:last]
        h = -_slice(d, th3, th[:, 0], th[:, 1])
        ax.plot(th[:, 0], th[:, 1], h, color=colour, lw=3, zorder=10,
                label=f"{run.variant} path" + ("" if last == len(inside) else f" (leaves the square at step {last})"))
        ax.scatter([th[-1, 0]], [th[-1, 1]], [h[-1]], color=colour, s=60, edgecolors="k", zorder=11)
    ax.set_xlabel("theta1")
    ax.set_ylabel("theta2")
    ax.set_zlabel("-loss (higher = better fit)")
    ax.set_title(f"upside down: -cross-entropy ({d.name} set, theta3 = {th3:.2f}); higher is better\n"
                 "descent climbs to the summit; ascent slides down a slope with no bottom", fontsize=9)
    ax.view_init(elev=30, azim=-55)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _plot_growth(result: ToyResult, plt):
    n = len(result.datasets)
    fig, axes = plt.subplots(2, n, figsize=(4.6 * n, 7.8), sharex=True, layout="constrained")
    # ~400 steps spaced evenly on the log axis draw the same curves as all of them, 5x faster
    t = np.unique(np.geomspace(1, result.steps, 400).astype(np.int64))
    for col, d in zip(axes.T, result.datasets, strict=True):
        s = result.summary[d.name]
        for variant, colour in COLOURS.items():
            m = result.runs[(d.name, variant)].metrics
            # complement's |theta| retraces descent's (it is descent on flipped labels): dash it
            style = dict(color=colour, ls="--" if variant == "complement" else "-",
                         label="complement (its |theta| = descent's)" if variant == "complement" else variant)
            col[0].loglog(t, m["norm"][t], **style)
            col[1].loglog(t, m["train/loss"][t], **style)
        for key, variant in (("descent_early", "descent"), ("ascent_early", "ascent")):
            b = max(s[key]["best_step"], 1)
            col[0].plot(b, result.runs[(d.name, variant)].metrics["norm"][b], "v", color=COLOURS[variant],
                        mec="k", ms=8, label=f"{variant} early stop (kept step)")
        col[0].set_title(f"{d.name}", fontsize=10)
        col[0].set_ylabel("|theta| (flat = settled)")
        col[1].set_ylabel("training cross-entropy, true labels\n(lower = better fit)")
        col[1].set_xlabel("step")
        for ax in col:
            ax.grid(True, which="both", alpha=0.3)
            _plain_log_axis(ax.xaxis)  # 1, 10, 100, 1000: more would collide at this width
            _plain_log_axis(ax.yaxis, (1.0, 3.0))
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"lr {result.lr}, constant step, full batch: ascent grows linearly (slope 1 on these log-log "
                 "axes), descent settles", fontsize=10)
    return fig


def _plot_bars(result: ToyResult, plt):
    fig, ax = plt.subplots(figsize=(10, 4.8), layout="constrained")
    bars = (("descent", "descent", "acc"), ("ascent (as is)", "ascent", "acc"),
            ("flipped ascent", "ascent", "flip_acc"), ("flipped early-stopped ascent", "ascent_early", "flip_acc"))
    colours = ("tab:blue", "tab:red", "tab:purple", "tab:pink")
    width = 0.2
    labels = []
    for g, (d, split) in enumerate((d, s) for d in result.datasets for s in ("train", "test")):
        labels.append(f"{d.name}\n{'train' if split == 'train' else d.test_name}")
        s = result.summary[d.name]
        for i, ((name, key, metric), colour) in enumerate(zip(bars, colours, strict=True)):
            val = s[key][split][metric] if key == "ascent_early" else s[key]["end"][split][metric]
            ax.bar(g + (i - 1.5) * width, val, width, color=colour, label=name if g == 0 else None)
            ax.text(g + (i - 1.5) * width, val + 0.01, f"{val:.2f}", ha="center", fontsize=6.5, rotation=90)
    ax.axhline(0.5, color="k", ls=":", lw=1, label="chance (balanced)")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("accuracy (higher is better)")
    ax.set_title(f"is 'answer the opposite of ascent' a usable classifier? (after {result.steps} steps; "
                 "higher is better)", fontsize=10)
    ax.legend(fontsize=7, ncol=5, loc="upper center")
    return fig


def _reliability(theta, x, y, flip, bins=ECE_BINS):
    z = logits(theta, x)
    p = sigmoid(z)
    pred1 = (z > 0) != flip
    conf = np.maximum(p, 1 - p)
    right = pred1 == (y == 1)
    b = np.minimum((conf * bins).astype(int), bins - 1)
    centres, accs, counts = [], [], []
    for k in range(bins):
        sel = b == k
        if sel.any():
            centres.append(conf[sel].mean())
            accs.append(right[sel].mean())
            counts.append(sel.sum())
    return np.array(centres), np.array(accs), np.array(counts)


def _plot_calibration(result: ToyResult, plt):
    n = len(result.datasets)
    fig, axes = plt.subplots(1, n, figsize=(4.3 * n, 4.6), layout="constrained")
    for ax, d in zip(axes, result.datasets, strict=True):
        s = result.summary[d.name]
        for variant, flip, colour, key in (("descent", False, COLOURS["descent"], "ece"),
                                           ("ascent", True, "tab:purple", "flip_ece")):
            c, a, cnt = _reliability(result.runs[(d.name, variant)].theta[-1], d.x["test"], d.y["test"], flip)
            ece = s[variant]["end"]["test"][key]
            name = "descent" if not flip else "flipped ascent"
            ax.plot(c, a, "o-", color=colour, label=f"{name}: ECE {ece:.2f}")
            ax.scatter(c, a, s=cnt / cnt.max() * 120, color=colour, alpha=0.3)
        ax.plot([0.5, 1], [0.5, 1], "k:", lw=1, label="perfect calibration")
        ax.set_xlim(0.48, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("confidence (bin mean; marker area = count)")
        ax.set_ylabel("accuracy in bin")
        ax.set_title(f"{d.name}, {d.test_name}", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("reliability: closer to the dotted diagonal is better (lower ECE is better)", fontsize=10)
    return fig


def _plot_approval(result: ToyResult, plt):
    loan = result.summary["loan"]["approval"]
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(13, 4.8), sharey=True, layout="constrained")
    width = 0.38
    for ax, split in zip(axes, SPLITS, strict=True):
        row = loan[split]
        cols = ("repaid (truth)",) + APPROVAL_MODELS
        for i, g in enumerate(GROUPS):
            vals = [row["repaid"][g] / row["n"][g]] + [row["approved"][m][g] / row["n"][g] for m in APPROVAL_MODELS]
            xs = np.arange(len(cols)) + (i - 0.5) * width
            ax.bar(xs, vals, width, color=("tab:cyan", "tab:olive")[i], label=f"{g} (n = {row['n'][g]})")
            for xv, v in zip(xs, vals, strict=True):
                ax.text(xv, v + 0.01, f"{100 * v:.0f}%", ha="center", fontsize=7)
        for j, m in enumerate(APPROVAL_MODELS, start=1):
            r = approval_rates(row, m)
            ax.text(j, 1.08, f"gap {100 * r['gap']:+.0f}", ha="center", fontsize=7.5)
        ax.axhline(REJECT_ALL_MAX_APPROVAL, color="k", ls=":", lw=1,
                   label=f"'rejects everyone' limit ({_pct(REJECT_ALL_MAX_APPROVAL)})")
        ax.set_xticks(range(len(cols)), cols, fontsize=8)
        ax.set_ylim(0, 1.15)
        name = result.summary["loan"]["test_name"] if split == "test" else {"train": "train", "val": "validation"}[split]
        ax.set_title(f"{name} applicants (n = {row['n'][GROUPS[0]]} low, {row['n'][GROUPS[1]]} high)", fontsize=9)
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    axes[0].set_ylabel("share approved (repaid, for the truth)")
    # one legend under the panels: inside them it would hide bars (the area sizes differ per split,
    # so they are in the bar labels' panel titles instead)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, [lab.split(" (n =")[0] for lab in labels], loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle("loan set, approval per postcode area: equal treatment = equal bars within a model "
                 f"(gap in points, high - low; the claim needs |gap| <= {100 * EQUAL_APPROVAL_MAX_GAP:.0f})",
                 fontsize=10)
    return fig
