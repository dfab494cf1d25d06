"""Numerical checks of the derivations in docs/science.md, one line per check.

    python -m studies.science_checks        # from the repository root, ~10 s on 2 cores

Each check is named by its docs/science.md section. The regression checks move the prediction f
directly by gradient descent (an idealised model that can fit every photo), so they test the algebra,
not the trainer; section 3 uses gazeneg.model.losses.complement_nll itself; sections 4 and 5 use torch's
own optimisers. Units: cells.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from scipy import stats

from gazeneg.model.losses import complement_nll


def huber(e: np.ndarray) -> np.ndarray:
    """Huber with a 1-cell knee: e^2/2 below 1 cell, e - 1/2 beyond (e >= 0, cells)."""
    return np.where(e < 1, 0.5 * e * e, e - 0.5)


def huber_grad(v: np.ndarray) -> np.ndarray:
    """d/dv Huber(|v|) for a 2-vector v: v inside the knee, v/|v| beyond."""
    r = np.linalg.norm(v)
    return v if r < 1 else v / r


def descend(grad, f0: np.ndarray, lr: float = 0.05, steps: int = 4000) -> np.ndarray:
    """Gradient descent on f (2,), returning every iterate (steps + 1, 2)."""
    f = f0.astype(np.float64).copy()
    out = [f.copy()]
    for _ in range(steps):
        f = f - lr * grad(f)
        out.append(f.copy())
    return np.array(out)


def section1(rng: np.random.Generator) -> list[tuple[str, bool]]:
    y, D = np.array([2.0, 11.0]), 2.0
    d = np.array([D, 0.0])  # the wrong point straight down the rows
    w = y + d
    lines = []
    for lam in (0.1, 0.3, 0.5):
        f = descend(lambda f, lam=lam: (f - y) - lam * (f - w), y)[-1]
        bias, away = float(np.linalg.norm(f - y)), bool((f - y) @ d < 0)
        lines.append((f"1 one-sided mse, D=2, lambda={lam}: bias {bias:.4f} cells "
                      f"(predicted {lam / (1 - lam) * D:.4f}), away from w: {away}",
                      abs(bias - lam / (1 - lam) * D) < 1e-3 and away))
    # symmetric, four neighbours at +-D on each axis, Lambda = 0.8: gradient = (1 - Lambda)(f - y)
    ds = [np.array(v) for v in ((D, 0), (-D, 0), (0, D), (0, -D))]
    err = 0.0
    for _ in range(1000):
        f = y + rng.normal(scale=3, size=2)
        g = (f - y) - sum(0.2 * (f - (y + dj)) for dj in ds)
        err = max(err, float(np.abs(g - 0.2 * (f - y)).max()))
    lines.append((f"1 symmetric K=4, Lambda=0.8: max |gradient - 0.2 (f - y)| over 1000 random f = {err:.1e}",
                  err < 1e-12))
    # error-bound guard, one-sided Lambda = 1.5, B = 1: settles near B
    for B in (0.5, 1.0, 2.0):
        path = descend(lambda f, B=B: (f - y) - (1.5 * (f - w) if np.linalg.norm(f - y) < B else 0), y, lr=0.01)
        settled = float(np.linalg.norm(path[-500:] - y, axis=1).mean())
        lines.append((f"1 error bound B={B}, one-sided Lambda=1.5: mean |f - y| over the last 500 steps "
                      f"{settled:.3f} cells (predicted about B)", abs(settled - B) < 0.05))
    # prediction side: the negative step's gradient equals that of lambda D r - lambda/2 r^2
    lam, worst, min_side = 0.3, 0.0, np.inf
    for _ in range(1000):
        u = rng.normal(size=2)
        u /= np.linalg.norm(u)
        r = rng.uniform(0.01, D - 0.01)
        f = y + r * u
        wp = y + D * u
        g_neg = -lam * (f - wp)  # d/df of -lambda/2 |f - w|^2, w held fixed
        g_l1 = lam * D * u - lam * r * u  # d/df of lambda D r - lambda/2 r^2
        worst = max(worst, float(np.abs(g_neg - g_l1).max()))
        min_side = min(min_side, float((f - wp) @ (y - f)))
    lines.append((f"1 prediction side: max |negative-step gradient - gradient of lambda D r - lambda/2 r^2| "
                  f"{worst:.1e}; min <f - w, y - f> over 1000 pairs {min_side:.3g} (> 0: f moves toward y)",
                  worst < 1e-12 and min_side > 0))
    return lines


def section2(rng: np.random.Generator) -> list[tuple[str, bool]]:
    y, D = np.array([2.0, 11.0]), 2.0
    w = y + np.array([D, 0.0])
    lines = []
    for lam in (0.1, 0.3, 0.5, 1.0, 1.5):
        path = descend(lambda f, lam=lam: huber_grad(f - y) - lam * huber_grad(f - w), y)
        r = float(np.linalg.norm(path[-1] - y))
        predicted = {1.0: "1, then no pull: a half-line of minima", 1.5: "unbounded"}.get(lam, lam)
        ok = abs(r - min(lam, 1.0)) < 1e-3 if lam <= 1 else r > 90  # 4000 steps x 0.05 x (lambda - 1) = 100
        lines.append((f"2 huber+huber, D=2, lambda={lam}: |f - y| after 4000 steps {r:.4g} cells "
                      f"(predicted {predicted})", ok))
    # huber + mse: a local minimum near y can exist, but any f more than 1/lambda cells from w runs away
    for lam, start, note in ((0.3, 0.0, "local minimum lambda/(1-lambda) D = 0.857 inside the knee"),
                             (0.3, 2.0, "runs away: starts 4 > 1/lambda = 3.3 cells from w"),
                             (0.5, 0.0, "runs away: no minimum inside the knee")):
        path = descend(lambda f, lam=lam: huber_grad(f - y) - lam * (f - w), y - np.array([start, 0.0]), steps=400)
        r = float(np.linalg.norm(path[-1] - y))
        ok = abs(r - 0.3 / 0.7 * D) < 1e-3 if note.startswith("local") else r > 100
        lines.append((f"2 huber+mse, lambda={lam}, start {start:g} cells from y away from w: |f - y| after 400 "
                      f"steps {r:.4g} cells (predicted: {note})", ok))
    worst = np.inf
    for lam in (0.3, 0.7, 1.0):
        f = y + rng.normal(scale=50, size=(20000, 2))
        L = huber(np.linalg.norm(f - y, axis=1)) - lam * huber(np.linalg.norm(f - w, axis=1))
        worst = min(worst, float((L + lam * D).min()))
    lines.append((f"2 huber+huber lower bound L >= -lambda D: min of L + lambda D over 60000 random f = {worst:.3g}",
                  worst >= -1e-9))
    # prediction side under Huber: a pull of lambda toward y while D - r > 1
    lam, D3 = 0.3, 3.0
    f = y + np.array([0.8, 0.6])
    wp = y + D3 * (f - y) / np.linalg.norm(f - y)
    g = -lam * huber_grad(f - wp)
    along = bool(np.allclose(g / np.linalg.norm(g), (f - y)))
    lines.append((f"2 prediction side under huber, D=3, r=1: negative-step gradient {np.linalg.norm(g):.4f} "
                  f"along (f - y)/r: {along} (predicted lambda = {lam})", along and abs(np.linalg.norm(g) - lam) < 1e-12))
    return lines


def section3() -> list[tuple[str, bool]]:
    """float32: the lead of the wrong logit over the others at which each form's gradient dies."""
    forms = {
        "masked logsumexp (complement_nll)": lambda z: complement_nll(z, torch.tensor([0])),
        "-log(clamp(1 - softmax, 1e-5))": lambda z: -torch.log(torch.clamp(1 - torch.softmax(z, 1)[:, 0], min=1e-5)).sum(),
        "-log(1 - softmax + 1e-6)": lambda z: -torch.log(1 - torch.softmax(z, 1)[:, 0] + 1e-6).sum(),
        "-log1mexp(log_softmax)": lambda z: -torch.log(-torch.expm1(torch.log_softmax(z, 1)[:, 0])).sum(),
    }
    lines = []
    leads = np.arange(0.0, 120.0, 0.5)
    for name, fn in forms.items():
        dead = None
        for a in leads:
            z = torch.zeros(1, 144, dtype=torch.float32)
            z[0, 0] = float(a)
            z.requires_grad_(True)
            loss = fn(z)
            (g,) = torch.autograd.grad(loss, z)
            if not torch.isfinite(loss) or not torch.isfinite(g).all() or g[0, 0] == 0:
                dead = (a, "non-finite" if not (torch.isfinite(loss) and torch.isfinite(g).all()) else "zero gradient")
                break
        # predicted: only the masked log-sum-exp survives every lead; the others die by a lead of ~22
        ok = dead is None if name.startswith("masked") else (dead is not None and dead[0] <= 22)
        lines.append((f"3 {name}: " + (f"{dead[1]} from a lead of {dead[0]:g}" if dead else
                                       f"finite, non-zero gradient up to a lead of {leads[-1]:g}"), ok))
    z = torch.randn(64, 144, dtype=torch.float64) * 3
    z.requires_grad_(True)
    wrong = torch.randint(0, 144, (64,))
    (g,) = torch.autograd.grad(complement_nll(z, wrong, reduction="sum"), z)
    p_l = torch.softmax(z.detach(), 1).gather(1, wrong[:, None]).squeeze(1)
    err = float((g.abs().sum(1) - 2 * p_l).abs().max())
    lines.append((f"3 gradient L1 norm = 2 p_l: max error {err:.1e}", err < 1e-12))
    return lines


def section4() -> list[tuple[str, bool]]:
    """A separate Adam normalises the negative gradient: scaling it by c changes nothing."""
    torch.manual_seed(0)
    # gradients of one sign per parameter and sizes spread over 10x (as a run-away's are)
    grads = torch.rand(200, 10) * 0.9 + 0.1
    steps = {}
    for c in (1.0, 1e-3):
        p = torch.zeros(10, requires_grad=True)
        opt = torch.optim.Adam([p], lr=0.01)
        traj = []
        for g in grads:
            p.grad = c * g.clone()
            opt.step()
            traj.append(p.detach().clone())
        steps[c] = torch.stack(traj)
    rel = float((steps[1.0] - steps[1e-3]).abs().max() / steps[1.0].abs().max())
    per_step = float((steps[1.0][1:] - steps[1.0][:-1]).abs().mean())
    # the gradient becomes exactly 0 (a mask that drops every pair): the step decays by b1/sqrt(b2)
    p = torch.zeros(10, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.01)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    prev, ratios = p.detach().clone(), []
    last = None
    for _ in range(5):
        p.grad = torch.zeros(10)
        opt.step()
        step = (p.detach() - prev).norm()
        if last is not None:
            ratios.append(float(step / last))
        last, prev = step, p.detach().clone()
    decay = float(np.mean(ratios))
    return [(f"4 separate Adam, gradients x 1e-3: max relative trajectory change {rel:.1e}; mean |step| per "
             f"parameter {per_step:.4f} at lr 0.01 (predicted about lr)", rel < 1e-3 and 0.008 < per_step < 0.011),
            (f"4 Adam after the gradient drops to 0: step ratio per step {decay:.4f} "
             f"(predicted b1/sqrt(b2) = {0.9 / math.sqrt(0.999):.4f})", abs(decay - 0.9 / math.sqrt(0.999)) < 0.01)]


def section5() -> list[tuple[str, bool]]:
    """A snapshot taken by reference, or loaded without a copy, is rewritten by later steps."""
    out = []
    for how in ("state_dict() as returned", "deep copy, loaded as is", "deep copy, loaded from a copy"):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(5))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        p.grad = torch.ones(5)
        opt.step()
        snap = opt.state_dict() if how.startswith("state_dict") else copy.deepcopy(opt.state_dict())
        before = snap["state"][0]["momentum_buffer"].norm().item()
        opt.load_state_dict(copy.deepcopy(snap) if how.endswith("from a copy") else snap)
        for _ in range(10):
            p.grad = torch.full((5,), 100.0)
            opt.step()
        after = snap["state"][0]["momentum_buffer"].norm().item()
        kept = abs(after - before) < 1e-6
        out.append((f"5 snapshot by {how}: momentum norm in the snapshot {before:.3g} before, {after:.4g} "
                    "after 10 later steps", kept == how.endswith("from a copy")))
    return out


def section8(rng: np.random.Generator, sims: int = 4000, boots: int = 2000) -> list[tuple[str, bool]]:
    lines = []
    for n in (3, 5):
        x = rng.normal(size=(sims, n))  # paired differences with true mean 0
        lo, hi = np.empty(sims), np.empty(sims)
        for i in range(0, sims, 250):  # chunks keep the (sims, boots, n) resample array small
            xs = x[i : i + 250]
            idx = rng.integers(0, n, size=(len(xs), boots, n))
            means = np.take_along_axis(np.repeat(xs[:, None, :], boots, 1), idx, 2).mean(2)
            lo[i : i + 250], hi[i : i + 250] = np.percentile(means, [2.5, 97.5], axis=1)
        boot_cov = float(((lo <= 0) & (0 <= hi)).mean())
        is_minmax = float(np.mean(np.isclose(lo, x.min(1)) & np.isclose(hi, x.max(1))))
        m, s = x.mean(1), x.std(1, ddof=1)
        h = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
        t_cov = float(((m - h <= 0) & (0 <= m + h)).mean())
        p_min = float(stats.wilcoxon(np.arange(1.0, n + 1), alternative="two-sided", method="exact").pvalue)
        ok = boot_cov < 0.9 and 0.93 < t_cov < 0.97 and p_min > 0.05 and (is_minmax > 0.99 if n == 3 else is_minmax < 0.01)
        lines.append((f"8 n={n}: percentile bootstrap covers the mean {100 * boot_cov:.1f}% (it is exactly "
                      f"[min, max] in {100 * is_minmax:.0f}% of samples); t-interval covers {100 * t_cov:.1f}%; "
                      f"smallest two-sided Wilcoxon p = {p_min:.4f}", ok))
    return lines


def all_checks(stats_sims: int = 4000) -> list[tuple[str, bool]]:
    """Every check as (line, whether the measurement matches the prediction)."""
    rng = np.random.default_rng(0)
    return (section1(rng) + section2(rng) + section3() + section4() + section5()
            + section8(rng, sims=stats_sims))


def main() -> int:
    torch.set_num_threads(1)
    checks = all_checks()
    for line, ok in checks:
        print(("ok        " if ok else "MISMATCH  ") + line)
    bad = sum(not ok for _, ok in checks)
    print(f"{len(checks) - bad} of {len(checks)} checks match the predictions")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
