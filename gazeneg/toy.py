"""The gradient-ascent logistic toy (SCIENCE.md section 4): check, with numbers, the claims that a
two-input logistic classifier trained by gradient ASCENT on cross-entropy becomes confidently wrong,
that its weights run off to infinity, that early stopping is the only brake, and that "always answer
the opposite" of the ascent model is a usable classifier.

    f(x) = sigmoid(theta1 x1 + theta2 x2 + theta3),   theta = (theta1, theta2, theta3)

Everything is numpy float64, full batch, constant step, seeded. Three data sets, each with a training
split, an in-distribution validation split (the only one early stopping may look at) and a test split:
overlapping Gaussians, a linearly separable set, and a "loan" set whose nuisance feature (postcode)
tracks the label in training and is reversed in the test split.

    result = run_experiment(steps=3000, lr=0.5, seed=0)
    report_path = write_run(result, out_dir)      # report.md, PNGs, history.npz, summary.json
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
# Each variant: sign of the step on the objective (+1 descends the training cross-entropy, -1 ascends
# it), the L2 weight-decay coefficient, and whether labels are flipped (descent on flipped labels is
# descent on -log(1 - p_y), the bounded complement loss of SCIENCE.md section 2, in two classes).
VARIANTS = {
    "descent": dict(sign=+1.0, weight_decay=0.0, flip_labels=False),
    "ascent": dict(sign=-1.0, weight_decay=0.0, flip_labels=False),
    "ascent+wd": dict(sign=-1.0, weight_decay=0.01, flip_labels=False),
    "complement": dict(sign=+1.0, weight_decay=0.0, flip_labels=True),
}
PATIENCE = 100  # steps without improvement before an early stop
ECE_BINS = 10


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
    # x1: income-like true signal, the label is a noisy function of it; x2: a postcode-like nuisance
    # that tracks the label in training (and validation) and tracks its opposite in the shifted test
    income = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2.0 * income))).astype(np.float64)
    sign = -1.0 if shift else 1.0
    postcode = sign * 0.8 * (2 * y - 1) + rng.normal(size=n)
    return np.stack([income, postcode], axis=1), y


DATASETS = {
    "overlapping": (_overlapping, "two unit Gaussians at (+-0.6, +-0.4); no line separates them", "held-out test"),
    "separable": (_separable, "uniform on [-3, 3]^2 labelled by x1 + 0.6 x2 > 0.3, margin 0.25", "held-out test"),
    "loan": (_loan, "y ~ Bernoulli(sigmoid(2 income)); postcode = +-0.8 (2y - 1) + N(0, 1), sign reversed "
             "in the shifted test", "shifted test"),
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
    return np.exp(-np.logaddexp(0.0, -z))


def gradient(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d/dtheta of the mean cross-entropy: mean of (p - y) (x1, x2, 1)."""
    r = sigmoid(logits(theta, x)) - y
    return np.array([x[:, 0] @ r, x[:, 1] @ r, r.sum()]) / len(y)


def evaluate(thetas: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    """Metrics of the model at each of thetas (T, 3) on (x, y); each value is a (T,) array.

    loss (stable mean cross-entropy), acc, conf (mean confidence max(p, 1 - p)), ece, and the same for
    the flipped twin that predicts 1 - label (probabilities 1 - p: same confidence, complementary
    correctness): flip_acc, flip_ece. naive_loss is the textbook -mean(y log p + (1 - y) log(1 - p)) with p = 1 / (1 + e^-z): +inf as
    soon as one sample has p rounded to exactly its wrong label (|z| > ~36.7 in float64)."""
    z = x @ thetas[:, :2].T + thetas[:, 2]  # (n, T)
    lse = np.logaddexp(0.0, z)  # log(1 + e^z) = -log(1 - p)
    conf = np.exp(np.abs(z) - np.logaddexp(0.0, np.abs(z)))  # max(p, 1 - p) = sigmoid(|z|)
    correct = (z > 0) == (y[:, None] == 1)
    with np.errstate(over="ignore", divide="ignore"):
        q = 1.0 / (1.0 + np.exp(-z))
        naive = -np.mean(np.where(y[:, None] == 1, np.log(q), np.log1p(-q)), axis=0)
    ece, flip_ece = calibration_error(conf, correct)
    acc = correct.mean(axis=0)
    return {
        "loss": np.mean(lse - y[:, None] * z, axis=0),
        "naive_loss": naive,
        "acc": acc,
        "flip_acc": 1.0 - acc,
        "conf": conf.mean(axis=0),
        "ece": ece,
        "flip_ece": flip_ece,
    }


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


def trajectory(data: ToyData, variant: str, *, lr: float, steps: int, seed: int = 0) -> np.ndarray:
    """(steps + 1, 3) thetas of full-batch constant-step descent or ascent on the training
    cross-entropy (per VARIANTS), from a small seeded random start."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    v = VARIANTS[variant]
    x, y = data.x["train"], data.y["train"]
    y_fit = 1.0 - y if v["flip_labels"] else y
    theta = np.random.default_rng([seed, 99]).normal(scale=0.01, size=3)
    thetas = np.empty((steps + 1, 3))
    thetas[0] = theta
    for t in range(1, steps + 1):
        # the step follows the gradient of sign * CE + wd/2 |theta|^2: ascent with weight decay
        # maximises CE - wd/2 |theta|^2, the decay always pulls toward 0
        theta = theta - lr * (v["sign"] * gradient(theta, x, y_fit) + v["weight_decay"] * theta)
        thetas[t] = theta
    return thetas


def train(data: ToyData, variant: str, *, lr: float, steps: int, seed: int = 0) -> Run:
    """The trajectory and every split's metrics at every step."""
    thetas = trajectory(data, variant, lr=lr, steps=steps, seed=seed)
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
        for k, val in evaluate(thetas, data.x[split], data.y[split]).items():
            metrics[f"{split}/{k}"] = val
    return Run(data.name, variant, thetas, metrics)


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
    runs = {(d.name, v): train(d, v, lr=lr, steps=steps, seed=seed) for d in datasets for v in VARIANTS}
    summary = {d.name: summarise(d, runs) for d in datasets}
    return ToyResult(steps, lr, seed, datasets, runs, summary, seed_sweep(steps, lr, seed, n))


def seed_sweep(steps: int, lr: float, seed: int, n: int) -> dict:
    """Final train and test accuracy of descent and of flipped ascent for data seeds seed..seed+4."""
    seeds = list(range(seed, seed + SWEEP_SEEDS))
    out = {name: {"seeds": seeds, "descent": {"train": [], "test": []}, "flipped ascent": {"train": [], "test": []}}
           for name in DATASETS}
    for s in seeds:
        for d in make_datasets(s, n):
            for variant, key, flip in (("descent", "descent", False), ("ascent", "flipped ascent", True)):
                theta = trajectory(d, variant, lr=lr, steps=steps, seed=s)[-1:]
                for split in ("train", "test"):
                    acc = float(evaluate(theta, d.x[split], d.y[split])["flip_acc" if flip else "acc"][0])
                    out[d.name][key][split].append(acc)
    return out


def _at(run: Run, t: int, split: str) -> dict:
    keys = ("loss", "acc", "flip_acc", "conf", "ece", "flip_ece")
    return {k: float(run.metrics[f"{split}/{k}"][t]) for k in keys}


def summarise(data: ToyData, runs: dict) -> dict:
    """The numbers the report quotes for one data set."""
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
    return out


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


# ----------------------------------------------------------------------------------------------
# The run folder: report, figures, raw numbers


def write_run(result: ToyResult, out_dir: Path, argv: list | None = None) -> Path:
    """Write report.md, the PNGs, config.json, summary.json, history.npz (every trajectory and every
    per-step metric) and data.npz (every split) into out_dir; return the report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(
        {"steps": result.steps, "lr": result.lr, "seed": result.seed, "variants": VARIANTS,
         "patience": PATIENCE, "ece_bins": ECE_BINS, "sweep_seeds": SWEEP_SEEDS, "argv": argv}, indent=2))
    (out_dir / "summary.json").write_text(json.dumps({"datasets": result.summary, "seed_sweep": result.sweep},
                                                     indent=2))
    hist = {}
    for (d, v), run in result.runs.items():
        hist[f"{d}/{v}/theta"] = run.theta
        hist.update({f"{d}/{v}/{k}": a for k, a in run.metrics.items()})
    np.savez_compressed(out_dir / "history.npz", **hist)
    np.savez_compressed(out_dir / "data.npz", **{f"{d.name}/{s}/{a}": getattr(d, a)[s]
                                                 for d in result.datasets for s in SPLITS for a in ("x", "y")})
    figures = plot_all(result, out_dir)
    path = out_dir / "report.md"
    path.write_text(report_markdown(result, figures))
    return path


def fresh_dir(out: str | None, root: str = "runs/toy") -> Path:
    """out if given (it must not exist, or be an empty folder); else root/<timestamp>[-i], new."""
    if out is not None:
        p = Path(out)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise FileExistsError(f"{p} already exists and is not an empty folder; pick another --out")
        p.mkdir(parents=True, exist_ok=True)
        return p
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        p = base / (stem if i == 0 else f"{stem}-{i}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {base}")


# ----------------------------------------------------------------------------------------------
# Figures

COLOURS = {"descent": "tab:blue", "ascent": "tab:red", "ascent+wd": "tab:orange", "complement": "tab:green"}


def plot_all(result: ToyResult, out_dir: Path) -> dict:
    """Every figure; returns {file name: caption}."""
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
    }.items():
        fig = fn(result, plt)
        fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
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
                         f"acc train {m['train/acc'][-1]:.2f}, {d.test_name} {m['test/acc'][-1]:.2f}; "
                         f"|theta| {m['norm'][-1]:.3g}", fontsize=9)
            ax.set_xlim(box[0], box[1])
            ax.set_ylim(box[2], box[3])
            ax.set_xlabel("x1 (income)" if d.name == "loan" else "x1")
            ax.set_ylabel("x2 (postcode, nuisance)" if d.name == "loan" else "x2")
        row[1].legend(fontsize=7, loc="lower right", framealpha=0.8)
    fig.colorbar(im, ax=axes, shrink=0.5, label="model p(y=1)")
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
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
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
        ax.set_xlabel("theta1")
        ax.set_ylabel("theta2")
        ax.set_title(("wide view: ascent never stops" if half is None else "near the descent optimum")
                     + f"\n{d.name} set, theta3 fixed at {desc.theta[-1, 2]:.2f} (paths projected; stars: "
                     f"step {result.steps})", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
        fig.colorbar(cs, ax=ax, label="training cross-entropy", format="%.3g")
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
    ax.set_zlabel("-loss")
    ax.set_title(f"upside down: -cross-entropy ({d.name} set, theta3 = {th3:.2f})\n"
                 "descent climbs to the summit; ascent slides down a slope with no bottom", fontsize=9)
    ax.view_init(elev=30, azim=-55)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _plot_growth(result: ToyResult, plt):
    n = len(result.datasets)
    fig, axes = plt.subplots(2, n, figsize=(4.6 * n, 7.5), sharex=True)
    t = np.arange(1, result.steps + 1)
    for col, d in zip(axes.T, result.datasets, strict=True):
        s = result.summary[d.name]
        for variant, colour in COLOURS.items():
            m = result.runs[(d.name, variant)].metrics
            # complement's |theta| retraces descent's (it is descent on flipped labels): dash it
            style = dict(color=colour, ls="--" if variant == "complement" else "-",
                         label="complement (its |theta| = descent's)" if variant == "complement" else variant)
            col[0].loglog(t, m["norm"][1:], **style)
            col[1].loglog(t, m["train/loss"][1:], **style)
        for key, variant in (("descent_early", "descent"), ("ascent_early", "ascent")):
            b = max(s[key]["best_step"], 1)
            col[0].plot(b, result.runs[(d.name, variant)].metrics["norm"][b], "v", color=COLOURS[variant],
                        mec="k", ms=8, label=f"{variant} early stop (kept step)")
        col[0].set_title(f"{d.name}", fontsize=10)
        col[0].set_ylabel("|theta|")
        col[1].set_ylabel("training cross-entropy (true labels)")
        col[1].set_xlabel("step")
        for ax in col:
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"lr {result.lr}, constant step, full batch; ascent grows linearly (slope 1 on log-log)",
                 fontsize=10)
    return fig


def _plot_bars(result: ToyResult, plt):
    fig, ax = plt.subplots(figsize=(10, 4.5))
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
    ax.set_ylabel("accuracy")
    ax.set_title(f"is 'answer the opposite of ascent' a usable classifier? (after {result.steps} steps)", fontsize=10)
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
    fig, axes = plt.subplots(1, n, figsize=(4.3 * n, 4.2))
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
    return fig


# ----------------------------------------------------------------------------------------------
# The report


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def report_markdown(result: ToyResult, figures: dict) -> str:
    """report.md: each claim, whether it held, and the measured numbers behind the verdict."""
    S, T, names = result.summary, result.steps, [d.name for d in result.datasets]
    first = result.datasets[0]
    n = len(first.y["train"])
    L: list[str] = []
    add = L.append
    add("# Gradient ascent on a two-input logistic classifier: the claims, checked\n")
    add(f"f(x) = sigmoid(theta1 x1 + theta2 x2 + theta3), full batch, constant step lr = {result.lr}, "
        f"{T} steps, seed {result.seed}, start |theta| ~ 0.02 (seeded), {n} points per split "
        "(train / validation / test), float64 with a stable log-sigmoid loss. Early stopping looks only at "
        f"the validation split (same distribution as train), patience {PATIENCE} steps. "
        f"Calibration: expected calibration error (ECE), {ECE_BINS} equal-width confidence bins.\n")
    add("| data set | construction | test split |\n|---|---|---|")
    for d in result.datasets:
        add(f"| {d.name} | {d.description} | {d.test_name} |")
    add("")
    add("Variants: **descent** and **ascent** on the training cross-entropy; **ascent+wd** maximises "
        f"CE - {VARIANTS['ascent+wd']['weight_decay']}/2 |theta|^2; **complement** minimises the bounded "
        "-log(1 - p_y) of SCIENCE.md section 2 (in two classes: cross-entropy on the flipped labels). "
        "The *flipped* twin of a model predicts the opposite label with the same confidence.\n")

    add("## Final numbers\n")
    add("| data set | variant | abs(theta) start -> end | train loss | acc train / test | flipped acc "
        "train / test | mean conf (test) | ECE test | flipped ECE test |")
    add("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for v in VARIANTS:
            q = S[name][v]
            tr, te = q["end"]["train"], q["end"]["test"]
            add(f"| {name} | {v} | {q['norm_start']:.3g} -> {q['norm_end']:.4g} | {q['loss_end']:.4g} | "
                f"{tr['acc']:.3f} / {te['acc']:.3f} | {tr['flip_acc']:.3f} / {te['flip_acc']:.3f} | "
                f"{te['conf']:.4f} | {te['ece']:.3f} | {te['flip_ece']:.3f} |")
    add("")

    # 1. confidently wrong
    held = all(S[x]["ascent"]["end"]["train"]["conf"] > 0.95 and S[x]["ascent"]["end"]["train"]["acc"] < 0.5
               for x in names)
    add(f"## Claim 1: ascent makes the classifier confidently wrong: **{'HELD' if held else 'NOT HELD'}**\n")
    for x in names:
        q = S[x]["ascent"]["end"]
        add(f"- {x}: after {T} steps of ascent, mean confidence {q['train']['conf']:.4f} (train) / "
            f"{q['test']['conf']:.4f} ({S[x]['test_name']}), accuracy {q['train']['acc']:.3f} / "
            f"{q['test']['acc']:.3f}; ECE {q['train']['ece']:.3f} / {q['test']['ece']:.3f}.")
    add("- Wrong, not random: accuracy sits well below chance on the training data, because ascent "
        "learns the reverse of a real rule (see claim 4). On the loan set's shifted test the ascent "
        f"model is *right* {_pct(S['loan']['ascent']['end']['test']['acc'])} of the time: the reversed "
        "postcode correlation turns its reversed rule partly right.\n" if "loan" in S else "")

    # 2. weights run off
    add("## Claim 2: the weights run off to infinity and the loss grows without bound: **"
        + ("HELD" if all(S[x]["ascent"]["norm_monotone"] and S[x]["ascent"]["growth"]["kind"] == "linear in t"
                         for x in names) else "PARTLY") + "**\n")
    for x in names:
        q = S[x]["ascent"]
        g = q["growth"]
        add(f"- {x}: |theta| grew from {q['norm_start']:.3g} to {q['norm_end']:.4g} in {T} steps, "
            f"{'monotonically' if q['norm_monotone'] else 'NOT monotonically'}; growth {g['kind']} "
            f"({g['per_step']:.3g} per step over the second half; R^2 of a line in t {g['r2_linear']:.4f} vs in "
            f"log t {g['r2_log']:.4f}; log-log slope {g['loglog_slope']:.3f}). Training loss "
            f"{q['loss_start']:.3f} -> {q['loss_end']:.4g}, rising at every step: "
            f"{'yes' if q['loss_monotone_up'] else 'NO'}.")
    add("- Why linear: once |theta| is large, p is 0 or 1 everywhere and the gradient tends to a constant "
        "vector (the mean of (p - y)(x1, x2, 1) with p frozen), so each constant step adds the same length. "
        "Each ascent step raises a convex loss by at least lr |grad|^2, so the loss can never come back down.")
    for x in names:
        q = S[x]["descent"]
        g = q["growth"]
        add(f"- Descent for contrast, {x}: |theta| {q['norm_start']:.3g} -> {q['norm_end']:.4g}, growth "
            f"{g['kind']} (log-log slope {g['loglog_slope']:.3f}), final gradient norm {q['grad_norm_end']:.2g}.")
    if "separable" in S:
        add("- On the separable set descent does not converge either: its |theta| also grows without "
            "bound, but logarithmically (the known max-margin drift of logistic regression on separable "
            "data), not linearly. Running off to infinity is not unique to ascent; the rate is.")
    add("")

    stable_ok = all(S[x]["ascent"]["stable_loss_finite"] for x in names)
    naive_inf = [x for x in names if S[x]["ascent"]["naive_loss_inf_step"] is not None]
    add("## Claim 3: 'and floating point overflows': **"
        + ("NOT HELD for the weights or a stable loss" if stable_ok else "HELD even for the stable loss")
        + f"; the textbook loss formula overflowed on {len(naive_inf)} of {len(names)} sets**\n")
    for x in names:
        q = S[x]["ascent"]
        inf_at = q["naive_loss_inf_step"]
        add(f"- {x}: the stable loss (logaddexp) stayed finite at every step: "
            f"{'yes' if q['stable_loss_finite'] else 'NO'} (final max |logit| {q['max_abs_logit_end']:.4g}). "
            "The textbook -[y log p + (1 - y) log(1 - p)] became +inf "
            + (f"at step {inf_at}" if inf_at is not None else "never")
            + f" (p rounds to exactly 0 or 1 once |logit| > ~36.7). At {q['growth']['per_step']:.3g} per step, "
            f"|theta| itself would reach the float64 maximum after ~10^{q['log10_steps_to_overflow']:.0f} steps.")
    add("")

    # 4. flipped usable
    add("## Claim 4: 'answer the opposite of the ascent model' is a usable classifier\n")
    verdicts = []
    for x in names:
        a, dsc = S[x]["ascent"]["end"], S[x]["descent"]["end"]
        gap_tr = a["train"]["flip_acc"] - dsc["train"]["acc"]
        gap_te = a["test"]["flip_acc"] - dsc["test"]["acc"]
        ok = gap_te >= -0.02
        verdicts.append(ok)
        add(f"- {x}: flipped-ascent accuracy {a['train']['flip_acc']:.3f} train / {a['test']['flip_acc']:.3f} "
            f"{S[x]['test_name']} vs descent {dsc['train']['acc']:.3f} / {dsc['test']['acc']:.3f} "
            f"(difference {gap_tr:+.3f} / {gap_te:+.3f}): "
            f"{'as good as descent (within 2 points)' if ok else 'worse than descent'}. "
            f"Weight direction (theta1, theta2) of the flipped model: cosine {S[x]['cos_flipped_ascent_descent']:.4f} "
            f"with descent's, {S[x]['cos_flipped_ascent_mean_diff']:.5f} with the class-mean difference "
            f"(descent's: {S[x]['cos_descent_mean_diff']:.5f}).")
    add("- Over data seeds " + ", ".join(map(str, result.sweep[names[0]]["seeds"])) + " (same steps and lr):")
    add("\n| data set | descent train | flipped ascent train | descent test | flipped ascent test |\n|---|---|---|---|---|")
    for x in names:
        w = result.sweep[x]
        cells = [" ".join(f"{v:.3f}" for v in w[k][s]) for s in ("train", "test") for k in ("descent", "flipped ascent")]
        add(f"| {x} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    add("")
    n_ok = sum(verdicts)
    add(f"- Verdict on labels: **{'HELD' if n_ok == len(names) else ('PARTLY' if n_ok else 'NOT HELD')}** "
        f"(as good as descent on {n_ok} of {len(names)} data sets at seed {result.seed}). The flipped "
        "ascent model is not the maximum-likelihood fit: its direction is set by the points it already gets "
        "right: once |theta| is large, the ascent model's correct points have p ~= y and add ~0 to the "
        "gradient, so only its *misclassified* points, i.e. the flipped model's correct ones, steer it; the "
        "flipped model never works on its own errors. Its weights end up close to the class-mean difference "
        "(cosines above). On the overlapping set (isotropic Gaussians, where that direction is also the "
        "likelihood optimum's) this matches descent; where it is not, the flipped model is worse.")
    cal = [(x, S[x]["ascent"]["end"]["test"], S[x]["descent"]["end"]["test"]) for x in names]
    add("- Verdict on probabilities: **not usable**. The flipped model has the ascent model's confidences: "
        + "; ".join(f"{x}: mean confidence {a['conf']:.4f} for accuracy {a['flip_acc']:.3f}, ECE "
                    f"{a['flip_ece']:.3f} (descent: confidence {d_['conf']:.3f}, ECE {d_['ece']:.3f})"
                    for x, a, d_ in cal)
        + ". It is overconfident by roughly its error rate.\n")

    # 5. early stopping
    wd_ok = [x for x in names if S[x]["ascent+wd"]["growth"]["kind"] == "stabilised"]
    comp_ok = [x for x in names if S[x]["complement"]["growth"]["kind"] == "stabilised"]
    comp_drift = [x for x in names if x not in comp_ok]
    other = bool(wd_ok or comp_ok)
    add("## Claim 5: early stopping is the only brake: **"
        + ("NOT HELD: early stopping brakes, but so do other means" if other else
           f"HELD within {T} steps: no other brake stabilised |theta|") + "**\n")
    for x in names:
        e, full = S[x]["ascent_early"], S[x]["ascent"]["end"]
        add(f"- {x}: early-stopped ascent (patience {PATIENCE} on validation flipped accuracy) keeps step "
            f"{e['best_step']} and stops at step {e['stop_step']}; |theta| {e['norm']:.3g} instead of "
            f"{S[x]['ascent']['norm_end']:.4g}; flipped accuracy {e['train']['flip_acc']:.3f} train / "
            f"{e['test']['flip_acc']:.3f} test (full run {full['train']['flip_acc']:.3f} / "
            f"{full['test']['flip_acc']:.3f}); flipped ECE {e['test']['flip_ece']:.3f} (full run "
            f"{full['test']['flip_ece']:.3f}).")
    kept = [S[x]["ascent_early"]["best_step"] for x in names]
    if max(kept) <= 1:
        add("- On every data set the early stop kept step 1: the flipped model was never better on validation "
            "than after the first ascent step (which is minus the first descent step from the same start); "
            "later ascent steps made it no better on the validation split, only more confident.")
    for x in names:
        w, c = S[x]["ascent+wd"], S[x]["complement"]
        add(f"- {x}, other brakes: ascent with weight decay {VARIANTS['ascent+wd']['weight_decay']} ends "
            f"at |theta| {w['norm_end']:.4g} ({w['growth']['kind']}, final gradient norm "
            f"{w['grad_norm_end']:.2g}) with mean test confidence {w['end']['test']['conf']:.4f}; the bounded "
            f"complement loss ends at |theta| {c['norm_end']:.4g} ({c['growth']['kind']}), flipped accuracy "
            f"{c['end']['train']['flip_acc']:.3f} / {c['end']['test']['flip_acc']:.3f}, flipped ECE "
            f"{c['end']['test']['flip_ece']:.3f}.")
    add(f"- Ascent with an L2 penalty: |theta| stabilised within {T} steps on {len(wd_ok)} of {len(names)} sets"
        + (f" ({', '.join(wd_ok)})" if 0 < len(wd_ok) < len(names) else "")
        + " (the loss grows only linearly in |theta|, the penalty quadratically, so the penalised objective "
        "has a finite maximum), but the model stays overconfident (confidences above).")
    add(f"- The bounded complement loss (in two classes exactly descent on the flipped labels): |theta| "
        f"stabilised within {T} steps on {', '.join(comp_ok) or 'none'}"
        + ("; " + "; ".join(f"on {x} it grew ({S[x]['complement']['growth']['kind']}) as descent did there "
                              f"({S[x]['descent']['growth']['kind']})" for x in comp_drift) if comp_drift else "")
        + ". It alone keeps descent's calibration.")
    add("- Early stopping of plain descent, for reference: "
        + "; ".join(f"{x} keeps step {S[x]['descent_early']['best_step']}, stops at "
                    f"{S[x]['descent_early']['stop_step']}" for x in names)
        + f" (a stop at step {T} means the held-out loss was still falling).\n")

    if "loan" in S:
        d_, a = S["loan"]["descent"], S["loan"]["ascent"]
        add("## The spurious feature (loan set)\n")
        add(f"- Descent: accuracy {d_['end']['train']['acc']:.3f} train, {d_['end']['test']['acc']:.3f} on the "
            f"shifted test; weight on postcode / weight on income = {d_['x2_over_x1']:.2f}.")
        add(f"- Flipped ascent: accuracy {a['end']['train']['flip_acc']:.3f} train, "
            f"{a['end']['test']['flip_acc']:.3f} on the shifted test; postcode / income = {a['x2_over_x1']:.2f}.")
        worse = a["end"]["test"]["flip_acc"] < d_["end"]["test"]["acc"]
        add(f"- Ascent does not remove the shortcut: the flipped model leans "
            f"{'more' if a['x2_over_x1'] > d_['x2_over_x1'] else 'less'} on the nuisance than descent and "
            f"{'loses more' if worse else 'loses less'} when its correlation reverses. Everything the ascent "
            "direction knows comes from the training labels, nuisance correlation included.\n")

    add("## Figures\n")
    for fname, caption in figures.items():
        add(f"- `{fname}`: {caption}")
    add("\nRaw numbers: `summary.json` (every figure quoted above), `history.npz` (theta and every metric "
        "at every step, per data set and variant), `data.npz` (every split), `config.json`.")
    return "\n".join(L) + "\n"
