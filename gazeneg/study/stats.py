"""Statistics for the sweeps (docs/science.md section 8).

Per (arm, budget): each run's error, with a failed run (diverged or collapsed, decided on VALIDATION
data) counted at a stated imputed error (diverged: the screen's diagonal; collapsed: the error of always
guessing the screen centre on its held-out photos, or its own when worse); the paired difference to the arm's own baseline
(same seeds / folds, same held-out people) with a shape-free interval; a test of "no difference" and an
equivalence test within +-margin cells, both read off that one interval; Holm's correction within a
family (the arms that share a baseline at one budget; the no-fine-tune control in a family of its own);
and a verdict:

  helps / hurts   the (Holm-corrected) interval excludes 0: the sign is the sign of the mean difference,
                  so a "hurts" with a better mean, or a "helps" with a worse one, cannot happen
  equivalent      the (Holm-corrected) 95% interval lies inside +-margin: the interval printed is the one
                  the equivalence test used
  inconclusive    neither
Beside it, failures have their own verdict, "fails k of n" with an exact (Clopper-Pearson) interval.

The interval. The paired differences of the harmful arms are right-skewed (the harm falls on a few people).
On such differences the t-interval covers 82% (n = 5) / 87% (n = 24) instead of 95%, and a sign-flip
permutation test or a bootstrap-t interval do no better on log-normal differences (measured: the sign-flip
TOST calls a difference at the margin "equivalent" 15-21% of the time at n = 5..24, the bootstrap-t 10-13%).
What holds whatever the shape is Cantelli's one-sided Chebyshev inequality, P(mean - mu >= k se) <=
1/(1 + k^2): the interval mean +- k se with k = sqrt(1/a - 1), a = 0.025 per side (k = 6.24). Its cost is
width (about 2.2x the t-interval at n = 5), which the detectable effect printed beside each verdict shows.
The standard error carries the Nadeau-Bengio correction se = sd sqrt(1/n + n_test/n_train) when the units
are cross-validation folds whose training sets overlap (ratio = n_test/n_train; 0 for independent units).
Coverage and the equivalence error are checked by simulation in tests/test_stats.py (log-normal at n = 5,
the hardest case: 95.1% coverage, 5.2% false "equivalent").
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sst

from gazeneg import grid
from gazeneg.study.options import DEFAULT_MARGIN

ALPHA = 0.05
POWER = 0.80            # the power at which the detectable effect is stated
VERDICTS = ("helps", "hurts", "equivalent", "inconclusive")


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of the finite values; (nan, nan, nan) for none; (m, nan, nan) for one.
    Descriptive (an arm's own mean error); the comparisons use shape_free_ci."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    sd = v.std(ddof=1)
    if sd == 0:
        return m, m, m
    h = float(sst.t.ppf(0.5 + level / 2, len(v) - 1) * sd / math.sqrt(len(v)))
    return m, m - h, m + h


def cantelli_k(a: float) -> float:
    """The multiplier k with 1/(1 + k^2) = a: P(mean - mu >= k se) <= a for any shape."""
    return math.sqrt(1.0 / a - 1.0)


def corrected_se(d: np.ndarray, ratio: float = 0.0) -> float:
    """Standard error of the mean of d; with ratio = n_test/n_train > 0, the Nadeau-Bengio corrected one
    for folds whose training sets overlap (the folds' errors are positively correlated, so sd/sqrt(n)
    understates the spread of their mean)."""
    n = len(d)
    return float(d.std(ddof=1) * math.sqrt(1.0 / n + ratio))


def shape_free_ci(d, level: float = 0.95, ratio: float = 0.0) -> tuple[float, float, float]:
    """Mean and the Cantelli interval mean +- k se (k for (1 - level)/2 per side); (m, nan, nan) for n < 2."""
    d = np.asarray(d, np.float64)
    if len(d) == 0:
        return math.nan, math.nan, math.nan
    m = float(d.mean())
    if len(d) < 2:
        return m, math.nan, math.nan
    h = cantelli_k((1 - level) / 2) * corrected_se(d, ratio)
    return m, m - h, m + h


def _cantelli_p(t: float) -> float:
    """One-sided p-value of a standardised distance t = (estimate - null)/se in the tested direction."""
    return 1.0 if t <= 0 else min(1.0, 1.0 / (1.0 + t * t))


def diff_p(d: np.ndarray, ratio: float = 0.0) -> float:
    """Two-sided p-value of "mean difference = 0": the smallest alpha at which the shape-free interval
    at level 1 - alpha excludes 0."""
    m, se = float(d.mean()), corrected_se(d, ratio)
    if se == 0:
        return 1.0 if m == 0 else 0.0
    return min(1.0, 2 * _cantelli_p(abs(m) / se))


def tost_p(d: np.ndarray, margin: float, ratio: float = 0.0) -> float:
    """p-value of equivalence within (-margin, +margin): twice the larger of the one-sided p-values of
    H0: mean <= -margin and H0: mean >= +margin, so that p < alpha exactly when the shape-free interval
    at level 1 - alpha (the one printed, 95%) lies inside the margin."""
    n = len(d)
    if n < 2:
        return math.nan
    m, se = float(d.mean()), corrected_se(d, ratio)
    if se == 0:
        return 0.0 if abs(m) < margin else 1.0
    return min(1.0, 2 * max(_cantelli_p((m + margin) / se), _cantelli_p((margin - m) / se)))


def detectable_effect(se: float, family_size: int = 1, power: float = POWER) -> float:
    """The smallest true difference the comparison finds (interval excludes 0 after Holm's first,
    strictest step) with probability `power`: (k + z_power) se, the mean taken as normal beyond the
    critical value. nan when se is."""
    if not math.isfinite(se):
        return math.nan
    return (cantelli_k(ALPHA / 2 / max(1, family_size)) + float(sst.norm.ppf(power))) * se


def units_for(effect: float, sd: float, family_size: int = 1, ratio: float = 0.0, power: float = POWER) -> float:
    """How many paired units (folds, seeds, people) would make `effect` detectable, for a spread sd of
    the differences: solve (k + z) sd sqrt(1/n + ratio) = effect for n (inf when the overlap correction
    alone exceeds it)."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or effect <= 0 or sd <= 0:
        return math.nan
    c = (cantelli_k(ALPHA / 2 / max(1, family_size)) + float(sst.norm.ppf(power))) * sd
    rest = (effect / c) ** 2 - ratio
    return math.inf if rest <= 0 else 1.0 / rest


def failure_interval(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a failure rate of k in n."""
    if n == 0:
        return math.nan, math.nan
    ci = sst.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def failure_verdict(k: int, n: int) -> str:
    lo, hi = failure_interval(k, n)
    return f"fails {k} of {n} [{100 * lo:.0f}%, {100 * hi:.0f}%]"


def paired_test(arm: dict, base: dict, margin: float = DEFAULT_MARGIN, ratio: float = 0.0) -> dict:
    """arm, base: seed (or person, or fold) -> error. Paired over the keys both have finite values for
    (the caller imputes failed runs, see summarize). ratio: n_test/n_train of overlapping folds (the
    Nadeau-Bengio correction), 0 for independent units. The interval is the shape-free 95% one the
    verdicts read; median and share of units harmed (arm worse) stand beside the mean."""
    keys = sorted(k for k in arm if k in base and math.isfinite(arm[k]) and math.isfinite(base[k]))
    out = {"n_pairs": len(keys), "diff_vs_baseline": math.nan, "p_value": math.nan, "p_tost": math.nan,
           "diff_ci95_low": math.nan, "diff_ci95_high": math.nan, "margin": margin, "overlap_ratio": ratio,
           "diff_median": math.nan, "share_harmed": math.nan, "diff_se": math.nan, "diff_sd": math.nan,
           "interval": "shape-free (Cantelli) 95%" + (f", Nadeau-Bengio corrected (n_test/n_train {ratio:.2g})"
                                                      if ratio > 0 else "")}
    if not keys:
        return out
    d = np.array([arm[k] - base[k] for k in keys], np.float64)
    out["diff_vs_baseline"], out["diff_ci95_low"], out["diff_ci95_high"] = shape_free_ci(d, 0.95, ratio)
    out["diff_median"] = float(np.median(d))
    out["share_harmed"] = float(np.mean(d > 0))
    if len(d) >= 2:
        out["diff_sd"], out["diff_se"] = float(d.std(ddof=1)), corrected_se(d, ratio)
        out["p_value"] = diff_p(d, ratio)
        out["p_tost"] = tost_p(d, margin, ratio)
        out["detectable_cells"] = detectable_effect(out["diff_se"])
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (nan stays nan and does not count in the family)."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    adj = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        adj[i] = running
    return adj


def verdict(diff: float, p_adj: float, p_tost_adj: float) -> str:
    """helps / hurts take their sign from the mean difference the interval is centred on, so they can
    never contradict it."""
    if math.isfinite(p_adj) and p_adj < ALPHA and math.isfinite(diff) and diff != 0:
        return "helps" if diff < 0 else "hurts"
    if math.isfinite(p_tost_adj) and p_tost_adj < ALPHA:
        return "equivalent"
    return "inconclusive"


def failed(r: dict) -> bool:
    return bool(r["diverged"]) or bool(r["collapsed"])


def _ok(r: dict) -> bool:
    return not failed(r)


def _value(r: dict, metric: str) -> float:
    return float(r[metric]) if _ok(r) else math.nan


def imputed_value(r: dict, metric: str, fallback: float) -> float:
    """The error a run counts with in the comparisons: its own when it did not fail. A diverged run (its
    predictions left the screen, or went non-finite) counts at the screen's diagonal, the largest error
    on the screen; a collapsed run at the error of always guessing the screen centre on its held-out photos
    (its row's centre_error, else `fallback`), or its own error when that is worse."""
    if _ok(r):
        return float(r[metric])
    if r["diverged"]:
        return float(grid.DIAGONAL)
    c = r.get("centre_error")
    c = float(c) if isinstance(c, (int, float)) and math.isfinite(c) else fallback
    own = r.get(metric)
    own = float(own) if isinstance(own, (int, float)) and math.isfinite(own) else -math.inf
    return min(float(grid.DIAGONAL), max(c, own))


def holm_family(arm) -> str:
    """The Holm family of an arm: its baseline's family, except the no-fine-tune control (group
    "reference"), the calibration's positive control, which is a family of its own: mixed into the
    wrong-label arms it would be corrected for tests it has nothing to do with."""
    return f"{arm.family}/{arm.group}" if arm.group == "reference" else arm.family


def summarize(rows: list[dict], arms: dict, *, metric: str = "final_test_error", margin: float = DEFAULT_MARGIN,
              baselines: dict | None = None, unit: str = "seed", ratio: float = 0.0) -> list[dict]:
    """One entry per (arm, budget). rows: result rows (values parsed; "diverged"/"collapsed" booleans
    decided on validation data, the metric, optionally centre_error, and `unit` naming the pairing key);
    arms: name -> Arm (family, group, note, predicted_bias); baselines: family -> baseline arm name
    (default: "<family>:baseline"); ratio: n_test/n_train when the units are overlapping folds."""
    baselines = baselines or {a.family: f"{a.family}:baseline" for a in arms.values()}
    by: dict = {}
    for r in rows:
        by.setdefault((r["arm"], r["budget"]), []).append(r)
    out = []
    for budget in sorted({b for _, b in by}):
        at_budget = [r for (a, b), rs in by.items() if b == budget for r in rs]
        finite = [float(r[metric]) for r in at_budget if _ok(r) and math.isfinite(float(r[metric]))]
        fallback = max(finite) if finite else grid_diagonal()
        entries = []
        for name in [a for a in arms if (a, budget) in by]:
            runs = by[(name, budget)]
            arm = arms[name]
            vals = {r[unit]: imputed_value(r, metric, fallback) for r in runs}
            ok_vals = [_value(r, metric) for r in runs]
            m, lo, hi = mean_ci(vals.values())
            diverged = sum(bool(r["diverged"]) for r in runs)
            collapsed = sum(bool(r["collapsed"]) for r in runs)
            n_fail = sum(failed(r) for r in runs)
            ok_runs = [r for r in runs if _ok(r)]
            e = {"arm": name, "budget": budget, "family": arm.family, "holm_family": holm_family(arm),
                 "group": arm.group, "note": arm.note, "implementation": getattr(arm, "implementation", ""),
                 "n_seeds": len(runs), "n_ok": len(runs) - n_fail, "mean_error_cells": m,
                 "ci95_low": lo, "ci95_high": hi, "finite_mean_error_cells": mean_ci(ok_vals)[0],
                 "diverged_runs": diverged, "collapsed_runs": collapsed, "failed_runs": n_fail,
                 "failure_verdict": failure_verdict(n_fail, len(runs)),
                 "failure_ci95": list(failure_interval(n_fail, len(runs))),
                 "imputed": "a diverged run counts at the screen's diagonal, a collapsed one at the centre "
                            "guess's error on its held-out photos (or its own, when worse)" if n_fail else "",
                 "best_checkpoint_error_cells": mean_ci(r.get("best_test_error", math.nan) for r in ok_runs)[0],
                 # over the runs that did not fail: a failed run's accuracy is not averaged in
                 "mean_cell_accuracy": float(np.mean([r["cell_accuracy"] for r in ok_runs])) if ok_runs else math.nan,
                 "mean_seconds": float(np.mean([r["seconds"] for r in runs]))}
            base = baselines.get(arm.family)
            if name != base and (base, budget) in by:
                base_runs = by[(base, budget)]
                e["baseline_failed_runs"] = sum(failed(r) for r in base_runs)
                e.update(paired_test(vals, {r[unit]: imputed_value(r, metric, fallback) for r in base_runs},
                                     margin, ratio))
            if arm.predicted_bias is not None:
                _theory(e, arm, runs, by.get((base, budget), []))
            la = [r.get("logit_absmax") for r in runs if isinstance(r.get("logit_absmax"), float)]
            if la:
                e["final_logit_absmax"] = float(np.mean(la))
            entries.append(e)
        _verdicts(entries, baselines)
        out.extend(entries)
    return out


def grid_diagonal() -> float:
    return float(grid.DIAGONAL)


def _verdicts(entries: list[dict], baselines: dict) -> None:
    """Verdicts for the entries of one budget, Holm-corrected within each Holm family; beside each, the
    smallest effect the comparison could detect at that family's size."""
    for fam in sorted({e["holm_family"] for e in entries}):
        fam_entries = [e for e in entries if e["holm_family"] == fam]
        tested = []
        for e in fam_entries:
            if e["arm"] == baselines.get(e["family"]):
                e["verdict"] = "reference"
            elif "n_pairs" not in e:
                e["verdict"], e["verdict_reason"] = "inconclusive", "no baseline runs to compare with"
            else:
                tested.append(e)
        for e, p, pt in zip(tested, holm([e["p_value"] for e in tested]), holm([e["p_tost"] for e in tested]),
                            strict=True):
            e["p_holm"], e["p_tost_holm"] = p, pt
            e["family_size"] = len(tested)
            e["detectable_cells"] = detectable_effect(e.get("diff_se", math.nan), len(tested))
            e["verdict"] = verdict(e["diff_vs_baseline"], p, pt)
            if e["failed_runs"] or e.get("baseline_failed_runs"):
                e["verdict_reason"] = (f"over all runs, failed ones imputed; arm {e['failure_verdict']}, baseline "
                                       f"fails {e.get('baseline_failed_runs', 0)} of {e['n_pairs']}")


def _theory(e: dict, arm, runs: list[dict], base_runs: list[dict]) -> None:
    """Predicted vs measured mean signed error along d (docs/science.md section 1), over the ok runs."""
    ok = [r for r in runs if _ok(r)]
    e["predicted_bias_cells"] = arm.predicted_bias
    m, lo, hi = mean_ci(r["bias_along_direction"] for r in ok)
    e["measured_bias_cells"], e["measured_bias_ci95"] = m, [lo, hi]
    band = max(0.25 * abs(arm.predicted_bias), 0.1)   # the acceptance band: 25% or 0.1 cells
    e["band_cells"] = band
    e["within_band"] = bool(math.isfinite(m) and abs(m - arm.predicted_bias) <= band)
    tb = [r.get("train_bias_along_direction", math.nan) for r in ok]
    e["train_bias_cells"] = float(np.mean(tb)) if tb else math.nan
    if base_runs:
        e["baseline_bias_cells"] = mean_ci(r["bias_along_direction"] for r in base_runs if _ok(r))[0]
        # The theory predicts the optimum's shift from where true labels alone put it; the baseline's own
        # small signed error (blinks, lapses, the model) is not part of it.
        e["measured_shift_cells"] = m - e["baseline_bias_cells"]
        e["shift_within_band"] = bool(math.isfinite(e["measured_shift_cells"])
                                      and abs(e["measured_shift_cells"] - arm.predicted_bias) <= band)


def compare(rows: list[dict], a: str, b: str, budget, metric: str = "final_test_error",
            margin: float = DEFAULT_MARGIN, unit: str = "seed", ratio: float = 0.0) -> dict:
    """Paired comparison of arm a against arm b (e.g. symmetric against its LR-matched control), over all
    runs of both, failed ones imputed as in summarize. Not part of a Holm family: one planned comparison."""
    at = [r for r in rows if r["budget"] == budget]
    finite = [float(r[metric]) for r in at if _ok(r) and math.isfinite(float(r[metric]))]
    fallback = max(finite) if finite else grid_diagonal()
    va = {r[unit]: imputed_value(r, metric, fallback) for r in at if r["arm"] == a}
    vb = {r[unit]: imputed_value(r, metric, fallback) for r in at if r["arm"] == b}
    res = paired_test(va, vb, margin, ratio)
    res.update({"a": a, "b": b, "budget": budget, "mean_a": mean_ci(va.values())[0], "mean_b": mean_ci(vb.values())[0]})
    res["verdict"] = verdict(res["diff_vs_baseline"], res["p_value"], res["p_tost"])
    return res
