"""Statistics for the sweep: per (arm, budget) mean and 95% CI over seeds, the paired difference to the
arm's own baseline (same seeds, same splits), a paired t-test and a Wilcoxon signed-rank test, a
bootstrap CI of the mean difference, Holm's correction across the arms of a budget, and a verdict."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sst

ALPHA = 0.05
VERDICTS = ("helps", "hurts", "no significant difference")
BASELINES = {"sgd": "sgd:baseline", "adam": "adam:baseline", "cls": "cls:baseline"}


def mean_ci(values) -> tuple[float, float, float]:
    """Mean and two-sided 95% t-interval; (nan, nan, nan) for no finite values."""
    v = np.asarray([x for x in values if math.isfinite(x)], np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2 or v.std(ddof=1) == 0:
        return m, m, m
    h = float(sst.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - h, m + h


def paired_test(arm: dict, base: dict) -> dict:
    """arm, base: seed -> error. Paired over the seeds both have finite values for."""
    seeds = sorted(s for s in arm if s in base and math.isfinite(arm[s]) and math.isfinite(base[s]))
    out = {"n_pairs": len(seeds), "diff_vs_baseline": math.nan, "p_value": math.nan, "p_wilcoxon": math.nan,
           "diff_ci95_low": math.nan, "diff_ci95_high": math.nan}
    if not seeds:
        return out
    d = np.array([arm[s] - base[s] for s in seeds])
    out["diff_vs_baseline"] = float(d.mean())
    if len(d) >= 2:
        if np.all(d == d[0]):
            out["p_value"] = 1.0 if d[0] == 0 else 0.0
        else:
            out["p_value"] = float(sst.ttest_rel([arm[s] for s in seeds], [base[s] for s in seeds]).pvalue)
        if np.any(d != 0):
            out["p_wilcoxon"] = float(sst.wilcoxon(d).pvalue)
        if np.any(d != d[0]):
            bs = sst.bootstrap((d,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile",
                               random_state=0)
            out["diff_ci95_low"], out["diff_ci95_high"] = (float(bs.confidence_interval.low),
                                                           float(bs.confidence_interval.high))
        else:
            out["diff_ci95_low"] = out["diff_ci95_high"] = float(d[0])
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (nan stays nan)."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    adj = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        adj[i] = running
    return adj


def verdict(diff: float, p_adj: float, failed_runs: int) -> str:
    if failed_runs > 0:
        return "hurts"
    if math.isfinite(p_adj) and p_adj < ALPHA and math.isfinite(diff):
        return "helps" if diff < 0 else "hurts"
    return "no significant difference"


def _finite_mean(runs: list[dict], metric: str) -> float:
    """Mean error over the runs that did not diverge (a diverged run's error, 1e21 or inf, says only that
    it diverged); NaN when every run diverged."""
    v = [float(r[metric]) for r in runs if not r["diverged"] and math.isfinite(float(r[metric]))]
    return float(np.mean(v)) if v else math.nan


def summarize(rows: list[dict], arms: dict, *, metric: str = "final_test_error") -> list[dict]:
    """One entry per (arm, budget). rows: results.csv rows (values already parsed); arms: name -> Arm."""
    by = {}
    for r in rows:
        by.setdefault((r["arm"], r["budget"]), []).append(r)
    out = []
    for budget in sorted({b for _, b in by}):
        entries = []
        for name in [a for a in arms if (a, budget) in by]:
            runs = by[(name, budget)]
            arm = arms[name]
            vals = {r["seed"]: r[metric] for r in runs}
            m, lo, hi = mean_ci(vals.values())
            diverged = sum(bool(r["diverged"]) for r in runs)
            collapsed = sum(bool(r["collapsed"]) for r in runs)
            e = {"arm": name, "budget": budget, "family": arm.family, "group": arm.group, "note": arm.note,
                 "n_seeds": len(runs), "mean_error_cells": m if diverged == 0 else math.nan, "ci95_low": lo,
                 "ci95_high": hi, "finite_mean_error_cells": _finite_mean(runs, metric), "diverged_runs": diverged,
                 "collapsed_runs": collapsed,
                 "best_checkpoint_error_cells": mean_ci(r["best_test_error"] for r in runs)[0],
                 "mean_cell_accuracy": float(np.mean([r["cell_accuracy"] for r in runs])),
                 "mean_seconds": float(np.mean([r["seconds"] for r in runs]))}
            base = BASELINES[arm.family]
            if name != base and (base, budget) in by:
                e.update(paired_test(vals, {r["seed"]: r[metric] for r in by[(base, budget)]}))
            if arm.predicted_bias is not None:
                e["predicted_bias_cells"] = arm.predicted_bias
                e["measured_bias_cells"] = mean_ci(r["bias_along_direction"] for r in runs)[0]
                e["measured_bias_ci95"] = list(mean_ci(r["bias_along_direction"] for r in runs)[1:])
                band = max(0.25 * abs(arm.predicted_bias), 0.1)   # the acceptance band: 25% or 0.1 cells
                e["within_band"] = bool(abs(e["measured_bias_cells"] - arm.predicted_bias) <= band)
                # NaN when any run has none (a diverged run, or results.csv from before the column existed).
                e["train_bias_cells"] = float(np.mean([r.get("train_bias_along_direction", math.nan) for r in runs]))
                if (base, budget) in by:
                    e["baseline_bias_cells"] = mean_ci(r["bias_along_direction"] for r in by[(base, budget)])[0]
                    # The theory predicts the optimum's shift from where true labels alone put it; the
                    # baseline's own small signed error (from blinks, lapses, the model) is not part of it.
                    e["measured_shift_cells"] = e["measured_bias_cells"] - e["baseline_bias_cells"]
                    e["shift_within_band"] = bool(abs(e["measured_shift_cells"] - arm.predicted_bias) <= band)
            la = [r.get("logit_absmax") for r in runs if isinstance(r.get("logit_absmax"), float)]
            if la:
                e["final_logit_absmax"] = float(np.mean(la))
            entries.append(e)
        tested = [e for e in entries if "p_value" in e]
        for e, p in zip(tested, holm([e["p_value"] for e in tested]), strict=True):
            e["p_holm"] = p
        for e in entries:
            if e["arm"] in BASELINES.values():
                e["verdict"] = "reference"
            else:
                e["verdict"] = verdict(e.get("diff_vs_baseline", math.nan), e.get("p_holm", math.nan),
                                       e["diverged_runs"] + e["collapsed_runs"])
        out.extend(entries)
    return out


def compare(rows: list[dict], a: str, b: str, budget, metric: str = "final_test_error") -> dict:
    """Paired comparison of arm a against arm b (e.g. symmetric vs its LR-matched control)."""
    va = {r["seed"]: r[metric] for r in rows if r["arm"] == a and r["budget"] == budget}
    vb = {r["seed"]: r[metric] for r in rows if r["arm"] == b and r["budget"] == budget}
    res = paired_test(va, vb)
    res.update({"a": a, "b": b, "budget": budget, "mean_a": mean_ci(va.values())[0], "mean_b": mean_ci(vb.values())[0]})
    res["verdict"] = verdict(res["diff_vs_baseline"], res["p_value"], 0)
    return res
