"""Statistics for the sweeps (docs/science.md section 8).

Per (arm, budget): the mean error over the runs that neither diverged nor collapsed, with a 95%
t-interval; the paired difference to the arm's own baseline (same seeds, same held-out people) with its
95% t-interval, a paired t-test and a TOST equivalence test within +-margin cells; Holm's correction
within a family (the arms that share a baseline at one budget); and a verdict:

  helps / hurts   the Holm-corrected paired t-test rejects "no difference" (sign of the mean difference)
  equivalent      the Holm-corrected TOST shows the difference lies within +-margin
  inconclusive    neither
  hurts           also when some of the arm's runs diverged or collapsed and none of the baseline's did
  invalid         every verdict of a family whose baseline itself diverged or collapsed in some run

Why not the percentile bootstrap or Wilcoxon: with 3 to 5 paired differences the percentile bootstrap
interval is about [min, max] and covers ~76% (n = 3) / ~84% (n = 5) instead of 95%, and Wilcoxon's
smallest two-sided p at n = 5 is 0.0625, so it can never reject. The t-interval's coverage is checked by
simulation in tests/test_stats.py.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sst

ALPHA = 0.05
DEFAULT_MARGIN = 0.05   # cells: differences within +-margin count as "no difference that matters"
VERDICTS = ("helps", "hurts", "equivalent", "inconclusive", "invalid")


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of the finite values; (nan, nan, nan) for none; (m, nan, nan) for one."""
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


def tost_p(d: np.ndarray, margin: float) -> float:
    """p-value of the two one-sided t-tests (TOST) that the mean of d lies within (-margin, +margin):
    the larger of the p-values of H0: mean <= -margin and H0: mean >= +margin."""
    n = len(d)
    if n < 2:
        return math.nan
    m, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if abs(m) < margin else 1.0
    se = sd / math.sqrt(n)
    p_low = float(sst.t.sf((m + margin) / se, n - 1))     # H0: mean <= -margin
    p_high = float(sst.t.cdf((m - margin) / se, n - 1))   # H0: mean >= +margin
    return max(p_low, p_high)


def paired_test(arm: dict, base: dict, margin: float = DEFAULT_MARGIN) -> dict:
    """arm, base: seed (or person) -> error, for the runs to compare (the caller leaves out diverged and
    collapsed runs). Paired over the keys both have finite values for."""
    keys = sorted(k for k in arm if k in base and math.isfinite(arm[k]) and math.isfinite(base[k]))
    out = {"n_pairs": len(keys), "diff_vs_baseline": math.nan, "p_value": math.nan, "p_tost": math.nan,
           "diff_ci95_low": math.nan, "diff_ci95_high": math.nan, "margin": margin}
    if not keys:
        return out
    d = np.array([arm[k] - base[k] for k in keys], np.float64)
    out["diff_vs_baseline"], out["diff_ci95_low"], out["diff_ci95_high"] = mean_ci(d)
    if len(d) >= 2:
        if np.all(d == d[0]):
            out["p_value"] = 1.0 if d[0] == 0 else 0.0
        else:
            out["p_value"] = float(sst.ttest_1samp(d, 0.0).pvalue)
        out["p_tost"] = tost_p(d, margin)
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
    if math.isfinite(p_adj) and p_adj < ALPHA and math.isfinite(diff):
        return "helps" if diff < 0 else "hurts"
    if math.isfinite(p_tost_adj) and p_tost_adj < ALPHA:
        return "equivalent"
    return "inconclusive"


def _ok(r: dict) -> bool:
    return not r["diverged"] and not r["collapsed"]


def _value(r: dict, metric: str) -> float:
    return float(r[metric]) if _ok(r) else math.nan


def summarize(rows: list[dict], arms: dict, *, metric: str = "final_test_error", margin: float = DEFAULT_MARGIN,
              baselines: dict | None = None, unit: str = "seed") -> list[dict]:
    """One entry per (arm, budget). rows: result rows (values parsed; "diverged"/"collapsed" booleans, the
    metric, and `unit` naming the pairing key); arms: name -> Arm (family, group, note, predicted_bias);
    baselines: family -> baseline arm name (default: "<family>:baseline")."""
    baselines = baselines or {a.family: f"{a.family}:baseline" for a in arms.values()}
    by: dict = {}
    for r in rows:
        by.setdefault((r["arm"], r["budget"]), []).append(r)
    out = []
    for budget in sorted({b for _, b in by}):
        entries = []
        for name in [a for a in arms if (a, budget) in by]:
            runs = by[(name, budget)]
            arm = arms[name]
            vals = {r[unit]: _value(r, metric) for r in runs}
            m, lo, hi = mean_ci(vals.values())
            diverged = sum(bool(r["diverged"]) for r in runs)
            collapsed = sum(bool(r["collapsed"]) for r in runs)
            e = {"arm": name, "budget": budget, "family": arm.family, "group": arm.group, "note": arm.note,
                 "n_seeds": len(runs), "n_ok": len(runs) - diverged - collapsed, "mean_error_cells": m,
                 "ci95_low": lo, "ci95_high": hi, "finite_mean_error_cells": m,
                 "diverged_runs": diverged, "collapsed_runs": collapsed,
                 "best_checkpoint_error_cells": mean_ci(r.get("best_test_error", math.nan) for r in runs if _ok(r))[0],
                 "mean_cell_accuracy": float(np.mean([r["cell_accuracy"] for r in runs])),
                 "mean_seconds": float(np.mean([r["seconds"] for r in runs]))}
            base = baselines.get(arm.family)
            if name != base and (base, budget) in by:
                base_runs = by[(base, budget)]
                e["baseline_failed_runs"] = sum(not _ok(r) for r in base_runs)
                e.update(paired_test(vals, {r[unit]: _value(r, metric) for r in base_runs}, margin))
            if arm.predicted_bias is not None:
                _theory(e, arm, runs, by.get((base, budget), []))
            la = [r.get("logit_absmax") for r in runs if isinstance(r.get("logit_absmax"), float)]
            if la:
                e["final_logit_absmax"] = float(np.mean(la))
            entries.append(e)
        _verdicts(entries, baselines)
        out.extend(entries)
    return out


def _verdicts(entries: list[dict], baselines: dict) -> None:
    """Verdicts for the entries of one budget, Holm-corrected within each family."""
    for fam in sorted({e["family"] for e in entries}):
        fam_entries = [e for e in entries if e["family"] == fam]
        tested = []
        for e in fam_entries:
            if e["arm"] == baselines.get(fam):
                e["verdict"] = "reference"
                bad = e["diverged_runs"] + e["collapsed_runs"]
                if bad:
                    e["verdict"] = "invalid"
                    e["verdict_reason"] = (f"the baseline itself diverged in {e['diverged_runs']} and collapsed in "
                                           f"{e['collapsed_runs']} of {e['n_seeds']} runs")
            elif "n_pairs" not in e:
                e["verdict"], e["verdict_reason"] = "inconclusive", "no baseline runs to compare with"
            elif e["baseline_failed_runs"]:
                e["verdict"] = "invalid"
                e["verdict_reason"] = (f"the family's baseline diverged or collapsed in {e['baseline_failed_runs']} "
                                       "run(s): its own configuration fails on this data, so no comparison with it "
                                       "means anything")
            elif e["diverged_runs"] + e["collapsed_runs"]:
                e["verdict"] = "hurts"
                e["verdict_reason"] = (f"diverged in {e['diverged_runs']} and collapsed in {e['collapsed_runs']} of "
                                       f"{e['n_seeds']} runs; the baseline in none")
            else:
                tested.append(e)
        for e, p, pt in zip(tested, holm([e["p_value"] for e in tested]), holm([e["p_tost"] for e in tested]),
                            strict=True):
            e["p_holm"], e["p_tost_holm"] = p, pt
            e["verdict"] = verdict(e["diff_vs_baseline"], p, pt)


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
            margin: float = DEFAULT_MARGIN, unit: str = "seed") -> dict:
    """Paired comparison of arm a against arm b (e.g. symmetric against its LR-matched control), over the
    runs of both that neither diverged nor collapsed. Not part of a Holm family: one planned comparison."""
    va = {r[unit]: _value(r, metric) for r in rows if r["arm"] == a and r["budget"] == budget}
    vb = {r[unit]: _value(r, metric) for r in rows if r["arm"] == b and r["budget"] == budget}
    res = paired_test(va, vb, margin)
    res.update({"a": a, "b": b, "budget": budget, "mean_a": mean_ci(va.values())[0], "mean_b": mean_ci(vb.values())[0]})
    res["verdict"] = verdict(res["diff_vs_baseline"], res["p_value"], res["p_tost"])
    return res
