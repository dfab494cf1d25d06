"""summary.json, report.md and the PNG plots of a wrong-label sweep, from its results.csv.

Every conclusion sentence here is computed from the verdicts and numbers of the sweep (stats.py); the
only fixed prose is what the theory predicts (docs/science.md), labelled as such."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402
from scipy import stats as sst  # noqa: E402

from gazeneg import grid  # noqa: E402
from gazeneg.files import atomic_write_text, save_figure  # noqa: E402
from gazeneg.study.formatting import clean_json, fmt, fmt_p, fmt_signed  # noqa: E402
from gazeneg.study.stats import (  # noqa: E402
    ALPHA,
    DEFAULT_MARGIN,
    compare,
    mean_ci,
    paired_test,
    summarize,
    units_for,
    verdict,
)
from gazeneg.study.sweep import all_arms, centre_error_reference  # noqa: E402

FLOATS = ("final_test_error", "best_test_error", "final_val_error", "best_val_error", "signed_error_row",
          "signed_error_col", "bias_along_direction", "train_bias_along_direction", "cell_accuracy", "seconds", "centre_error", "n_train_groups",
          "n_test_groups")
VERDICT_COLOURS = {"helps": "tab:green", "hurts": "tab:red", "equivalent": "tab:blue", "inconclusive": "tab:grey",
                   "reference": "black"}


def independent_seeds(rows) -> bool:
    """Whether every seed trained and tested on a data set of its own (--replicates: people drawn per seed),
    so that the seeds are independent replications rather than folds of one set of people."""
    by_seed: dict = {}
    for x in rows:
        by_seed.setdefault(x["seed"], set()).add(x.get("data") or "")
    sets = [d for ds in by_seed.values() for d in ds]   # one per seed, none empty, no two alike
    return len(by_seed) > 1 and len(sets) == len(by_seed) == len(set(sets)) and "" not in sets


def overlap_ratio(rows) -> float:
    """n_test/n_train of the seeds' folds, in held-out people (the Nadeau-Bengio correction's ratio: the
    folds' training sets overlap); 0 for independent replications (independent_seeds) and for rows from
    before the sweep recorded it."""
    if independent_seeds(rows):
        return 0.0
    r = [x["n_test_groups"] / x["n_train_groups"] for x in rows
         if math.isfinite(x.get("n_test_groups", math.nan)) and x.get("n_train_groups", 0) > 0]
    return float(np.median(r)) if r else 0.0


def read_results(out: Path) -> list[dict]:
    rows = []
    with open(out / "results.csv", newline="") as f:
        for r in csv.DictReader(f):
            for k in FLOATS:
                r[k] = float(r[k]) if r.get(k) not in ("", None) else math.nan
            r["seed"], r["budget"], r["n_train"] = int(r["seed"]), int(r["budget"]), int(r["n_train"])
            r["diverged"] = r["diverged"] == "True"
            r["collapsed"] = r["collapsed"] == "True"
            r["logit_absmax"] = float(r["logit_absmax"]) if r["logit_absmax"] not in ("", None) else None
            r["guard_counts"] = json.loads(r["guard_counts"])
            r["watchdog_events"] = json.loads(r["watchdog_events"])
            rows.append(r)
    return rows


def read_curves(out: Path) -> dict:
    curves = {}
    p = out / "curves.jsonl"
    if p.exists():
        for line in p.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                curves[d["key"]] = d
    return curves


def _list(xs) -> str:
    return ", ".join(xs) if xs else "none"


def _tiny(e: dict, margin: float) -> str:
    """' (..., too small to matter)' for a helps/hurts verdict whose mean difference is inside the margin: the sign
    is consistent, the size is not one that matters (the personal report says the same)."""
    d = e.get("diff_vs_baseline", math.nan)
    if e.get("verdict") in ("helps", "hurts") and math.isfinite(d) and abs(d) < margin:
        return f" ({fmt_signed(d, 3)} cells, inside the +-{margin:g} margin: too small to matter)"
    return ""


def build_report(out, *, elapsed: float | None = None, command: str = "", margin: float = DEFAULT_MARGIN,
                 rows: list[dict] | None = None) -> dict:
    """rows: result rows to report (default: read results.csv; a test passes fabricated ones)."""
    out = Path(out)
    arms = {a.name: a for a in all_arms()}
    rows = read_results(out) if rows is None else rows
    out.mkdir(parents=True, exist_ok=True)
    arms = {a: arms[a] for a in arms if any(r["arm"] == a for r in rows)}
    ratio = overlap_ratio(rows)
    summary = summarize(rows, arms, margin=margin, ratio=ratio)
    budgets = sorted({r["budget"] for r in rows})
    pairs = [compare(rows, a.name, a.same_as, b, margin=margin, ratio=ratio) for b in budgets for a in arms.values()
             if a.same_as and a.same_as in arms and any(r["arm"] == a.name and r["budget"] == b for r in rows)]
    more_data = _more_data(rows, budgets, arms, margin, ratio)
    steps = _step_sizes(rows, arms)
    doc = {"entries": summary, "same_as": pairs, "more_real_frames": more_data, "literal_step_sizes": steps,
           "margin_cells": margin, "overlap_ratio": ratio, "elapsed_seconds": elapsed, "command": command}
    atomic_write_text(out / "summary.json", json.dumps(clean_json(doc), indent=2))
    plots = make_plots(out, rows, summary, arms, margin)
    atomic_write_text(out / "report.md", render_markdown(summary, pairs, more_data, steps, rows, arms, plots, budgets,
                                                         elapsed, command, margin, ratio))
    return doc


def _more_data(rows, budgets, arms, margin, ratio: float = 0.0) -> list[dict]:
    """Each baseline at the largest budget against itself at the smallest, paired by seed (the same held-out
    people): what more real frames per cell do, at the same number of steps."""
    if len(budgets) < 2:
        return []
    lo, hi = budgets[0], budgets[-1]
    res = []
    for name, a in arms.items():
        if a.uses_wrong_labels or a.overrides.get("lr_scale") or not name.endswith(":baseline"):
            continue
        v = {b: {r["seed"]: (r["final_test_error"] if not (r["diverged"] or r["collapsed"]) else math.nan)
                 for r in rows if r["arm"] == name and r["budget"] == b} for b in (lo, hi)}
        t = paired_test(v[hi], v[lo], margin, ratio)
        t.update({"arm": name, "from_budget": lo, "to_budget": hi, "mean_from": mean_ci(v[lo].values())[0],
                  "mean_to": mean_ci(v[hi].values())[0]})
        t["verdict"] = verdict(t["diff_vs_baseline"], t["p_value"], t["p_tost"])
        res.append(t)
    return res


def _step_sizes(rows, arms) -> list[dict]:
    """Literal-mode arms: the measured mean |step| per parameter of the negative step, in units of lambda*lr
    (docs/science.md section 4), and how often the gradient cap fired, per optimizer."""
    res = []
    for name, a in arms.items():
        # watchdog runs mix steps taken while running away with steps after a restore: left out
        if a.overrides.get("neg_mode") != "literal" or a.overrides.get("watchdog"):
            continue
        rs = [r for r in rows if r["arm"] == name]
        ratios = [r["guard_counts"].get("guard_neg_step_ratio") for r in rs if not (r["diverged"] or r["collapsed"])]
        ratios = [x for x in ratios if x is not None and math.isfinite(x)]
        steps = sum(r["guard_counts"].get("guard_neg_steps", 0) for r in rs)
        capped = sum(r["guard_counts"].get("guard_grad_cap_fired", 0) for r in rs)
        if ratios:
            res.append({"arm": name, "optimizer": rs[0]["optimizer"], "step_ratio": float(np.median(ratios)),
                        "grad_cap": a.overrides.get("guard_grad_cap", 0.0),
                        "cap_fraction": capped / steps if steps and a.overrides.get("guard_grad_cap") else None})
    return res


# ----------------------------------------------------------------------------------------------
# Plots


def _plain_log_axis(axis) -> None:
    """A log axis labelled 1, 2, 10, 100 rather than 10^0 or 1.65x10^0."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _errbar(ax, x, e, **kw):
    m, lo, hi = e["mean_error_cells"], e["ci95_low"], e["ci95_high"]
    yerr = None
    if math.isfinite(lo) and math.isfinite(hi):
        yerr = [[max(0.0, m - lo)], [max(0.0, hi - m)]]
    return ax.errorbar([x], [m], yerr=yerr, capsize=3, **kw)


def _plot_diff_vs_baseline(out: Path, rows, summary, arms, margin: float, top, ent: dict, curves: dict) -> list[str]:
    """Paired difference to the baseline with its 95% t-interval, every arm, largest budget."""
    made = []
    es = [e for e in summary if e["budget"] == top and "diff_vs_baseline" in e]
    if es:
        fig, ax = plt.subplots(figsize=(8, 0.32 * len(es) + 1.8))
        ys = np.arange(len(es))[::-1]
        for y, e in zip(ys, es, strict=True):
            c = VERDICT_COLOURS.get(e["verdict"], "grey")
            d, lo, hi = e["diff_vs_baseline"], e["diff_ci95_low"], e["diff_ci95_high"]
            if math.isfinite(d):
                xerr = [[max(0.0, d - lo)], [max(0.0, hi - d)]] if math.isfinite(lo) and math.isfinite(hi) else None
                ax.errorbar([d], [y], xerr=xerr, fmt="o", color=c, capsize=3)
            else:
                ax.annotate(f"{e['verdict']}: {e['diverged_runs']} diverged, {e['collapsed_runs']} collapsed "
                            f"of {e['n_seeds']}", (0, y), color=c, fontsize=7, va="center", xytext=(4, 0),
                            textcoords="offset points")
        ax.axvline(0, color="black", lw=0.8)
        ax.axvspan(-margin, margin, color="tab:blue", alpha=0.12, label=f"equivalence margin +-{margin:g}")
        ax.set_yticks(ys, [f"{e['arm']} ({e['verdict']})" for e in es], fontsize=7)
        ax.set_xscale("symlog", linthresh=1.0)
        lo_x, hi_x = ax.get_xlim()
        ax.set_xticks([t for t in (-5, -2, -1, -0.5, -0.2, 0, 0.2, 0.5, 1, 2, 5, 10) if lo_x <= t <= hi_x])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("paired difference in test error to the arm's baseline, cells\n<- better    (symlog axis)    worse ->")
        ax.set_title(f"Each arm against its baseline, budget {top}\n(shape-free 95% interval of the paired difference; colour = the Holm-corrected verdict)")
        ax.set_ylim(-0.8, len(es) - 0.2)
        ax.legend(fontsize=7, loc="upper right")
        made.append(save_figure(fig, out / "diff_vs_baseline.png"))
    return made


def _plot_error_vs_lambda(out: Path, rows, summary, arms, margin: float, top, ent: dict, curves: dict) -> list[str]:
    """Error vs lambda: the naive random-placement arms and the one-sided theory arms."""
    made = []
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    plotted, xs_all, ys_all, failed = False, [0.0], [], []
    for fam, marker in (("sgd", "o"), ("adam", "s")):
        series = [(0.0, ent.get((f"{fam}:baseline", top)))] + [
            (a.total_lambda, ent.get((n, top))) for n, a in arms.items() if a.family == fam and a.series == "naive"]
        series = [(x, e) for x, e in series if e]
        pts = [(x, e) for x, e in series if math.isfinite(e["mean_error_cells"])]
        if len(series) > 1:
            ax.plot([x for x, _ in pts], [e["mean_error_cells"] for _, e in pts], marker=marker, ls="-",
                    label=f"{fam}: random wrong point, no guard")
            for x, e in pts:
                _errbar(ax, x, e, color=ax.lines[-1].get_color(), fmt="none")
                ys_all.append(e["ci95_high"] if math.isfinite(e["ci95_high"]) else e["mean_error_cells"])
            failed += [(x, fam, e) for x, e in series if not math.isfinite(e["mean_error_cells"])]
            xs_all += [x for x, _ in series]
            plotted = True
    th = [(a.total_lambda, ent.get((n, top))) for n, a in arms.items() if a.series == "one_sided"]
    th = [(x, e) for x, e in th if e and math.isfinite(e["mean_error_cells"])]
    if th:
        ax.plot([x for x, _ in th], [e["mean_error_cells"] for _, e in th], marker="^", label="sgd: one-sided (theory arms)")
        for x, e in th:
            _errbar(ax, x, e, color=ax.lines[-1].get_color(), fmt="none")
        plotted = True
    if plotted:
        ys_all += [e["mean_error_cells"] for _, e in th]
        top_y = 1.35 * max(ys_all) if ys_all else 5.0
        for x in sorted({x for x, _, _ in failed}):
            text = "\n".join(f"{fam}: {e['diverged_runs']}/{e['n_seeds']} diverged" for xx, fam, e in failed if xx == x)
            ax.annotate("no run ok\n" + text, (x, top_y * 0.95), fontsize=7, ha="center", va="top")
        ax.axvline(1.0, color="grey", ls=":", lw=1)
        ax.annotate("Lambda = 1", (1.0, 0.02 * top_y), fontsize=7, color="grey", xytext=(3, 0), textcoords="offset points")
        ax.set_ylim(0, top_y)
        ax.set_xlim(-0.1, max(xs_all + [1.0]) + 0.2)
        ax.set_xlabel("Lambda (total weight of the wrong points)")
        ax.set_ylabel("final test error, cells (lower is better)")
        ax.set_title(f"Error vs Lambda, budget {top}\n(mean over seeds, 95% t-interval; diverged runs left out)")
        ax.legend(fontsize=7)
        made.append(save_figure(fig, out / "error_vs_lambda.png"))
    else:
        plt.close(fig)
    return made


def _plot_error_vs_bound(out: Path, rows, summary, arms, margin: float, top, ent: dict, curves: dict) -> list[str]:
    """Error vs B: the error-bound arms on a diverging Lambda = 1.5."""
    made = []
    bs = sorted((a.bound, ent[(n, top)]) for n, a in arms.items() if a.series == "bound" and (n, top) in ent)
    if bs:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for b, e in bs:
            _errbar(ax, b, e, fmt="o", color="tab:blue")
        ax.plot([b for b, _ in bs], [e["mean_error_cells"] for _, e in bs], color="tab:blue", label="test error")
        ax.plot([b for b, _ in bs], [abs(e["measured_bias_cells"]) for _, e in bs], marker="x", ls="--",
                color="tab:orange", label="|measured bias| along d")
        ax.plot([b for b, _ in bs], [b for b, _ in bs], color="grey", ls=":", label="theory: bias settles near B")
        base = ent.get(("sgd:baseline", top))
        if base:
            ax.axhline(base["mean_error_cells"], color="green", lw=1, label="baseline (no wrong labels)")
        ax.set_xlabel("error bound B, cells")
        ax.set_ylabel("cells (lower is better)")
        ax.set_title(f"One-sided Lambda = 1.5 under the error bound, budget {top}\n(95% t-interval over seeds)")
        ax.legend(fontsize=7)
        made.append(save_figure(fig, out / "error_vs_bound.png"))
    return made


def _plot_learning_curves(out: Path, rows, summary, arms, margin: float, top, ent: dict, curves: dict) -> list[str]:
    """Learning curves, seed 0, largest budget: restores and divergences marked."""
    made = []
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    show = [n for n, a in arms.items() if a.group == "main" and (n.endswith(":baseline") or a.series == "naive"
            or a.overrides.get("watchdog") or a.overrides.get("neg_policy") == "prediction_side")]
    cap, finite_max = grid.DIAGONAL, 0.0
    for a in show:
        c = curves.get(f"{a}|0|{top}")
        if not c:
            continue
        v = np.array([x if x is not None and math.isfinite(x) else np.nan for x in c["val"]], float)
        (line,) = ax.plot(np.arange(len(v)), np.minimum(v, cap), label=a)
        if np.isfinite(v).any() and np.nanmax(v) < cap:
            finite_max = max(finite_max, float(np.nanmax(v)))
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.argmax(bad))
            ax.axvline(i, color=line.get_color(), ls="--", lw=1)
        r = next((r for r in rows if r["arm"] == a and r["seed"] == 0 and r["budget"] == top), None)
        for ev in (r["watchdog_events"] if r else []):
            if ev["epoch"] < len(v):
                ax.plot(ev["epoch"], min(v[ev["epoch"]], cap), "x", ms=9, color=line.get_color())
    top_y = min(cap, 1.25 * finite_max) if finite_max else cap
    ax.set_ylim(0, top_y)
    ax.annotate("curves above the top ran away (off the screen)" if top_y < cap else "top: off the screen",
                (0.01, 0.98), xycoords="axes fraction", fontsize=7, color="grey", va="top")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error, cells (lower is better)")
    ax.set_title(f"Learning curves, seed 0, budget {top}\nx = watchdog restore, dashed = non-finite")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, ncol=2)
    made.append(save_figure(fig, out / "learning_curves.png"))
    return made


def _plot_guard_firing(out: Path, rows, summary, arms, margin: float, top, ent: dict, curves: dict) -> list[str]:
    """Guard firing rates: blocked pairs, or capped steps over the steps actually taken."""
    made = []
    labels, rates = [], []
    for a in arms:
        g = [r["guard_counts"] for r in rows if r["arm"] == a and r["budget"] == top]
        seen = sum(x.get("guard_pairs_seen", 0) for x in g)
        steps = sum(x.get("guard_neg_steps", 0) for x in g)
        for key in ("error_bound", "direction", "grad_cap", "confidence", "boundary_drop"):
            fired = sum(x.get(f"guard_{key}_fired", 0) for x in g)
            present = any(f"guard_{key}_fired" in x for x in g)
            denom = steps if key == "grad_cap" else seen
            if present and denom and (fired or key != "boundary_drop"):
                labels.append(f"{a} [{key}]")
                rates.append(fired / denom)
    if labels:
        fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(labels) + 1.6))
        ax.barh(labels, rates)
        ax.set_xlabel("fraction of pairs blocked (grad_cap: fraction of negative steps capped)")
        ax.set_xlim(0, 1)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"How often each guard fired, budget {top}")
        made.append(save_figure(fig, out / "guard_firing.png"))
    return made


def _plot_bias_predicted_vs_measured(out: Path, rows, summary, arms, margin: float, top, ent: dict, curves: dict) -> list[str]:
    """Predicted vs measured bias."""
    made = []
    pts = [e for e in summary if e.get("predicted_bias_cells") is not None and e["budget"] == top
           and math.isfinite(e["measured_bias_cells"])]
    if pts:
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        for e in pts:
            lo, hi = e["measured_bias_ci95"]
            yerr = [[e["measured_bias_cells"] - lo], [hi - e["measured_bias_cells"]]] if math.isfinite(lo) else None
            ax.errorbar(e["predicted_bias_cells"], e["measured_bias_cells"], yerr=yerr, marker="o", capsize=3)
            ax.annotate(e["arm"].split(":")[1], (e["predicted_bias_cells"], e["measured_bias_cells"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        lim = np.array([min(e["predicted_bias_cells"] for e in pts) - 0.5, 0.5])
        ax.plot(lim, lim, color="grey", ls=":", label="measured = predicted")
        ax.fill_between(lim, lim - np.maximum(0.25 * np.abs(lim), 0.1), lim + np.maximum(0.25 * np.abs(lim), 0.1),
                        color="grey", alpha=0.15, label="band: 25% or 0.1 cells")
        ax.set_xlabel("predicted signed error along d, cells")
        ax.set_ylabel("measured mean signed test error along d, cells")
        ax.set_title(f"Theory vs measurement, budget {top}\n(on the diagonal = theory holds)")
        ax.legend(fontsize=7)
        made.append(save_figure(fig, out / "bias_predicted_vs_measured.png"))
    return made


def _plot_cls_logits(out: Path, rows, summary, arms, margin: float, top, ent: dict, curves: dict) -> list[str]:
    """Classification: logits over epochs."""
    made = []
    cls = [a for a in arms if arms[a].family == "cls"]
    if cls:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for a in cls:
            c = curves.get(f"{a}|0|{top}")
            if c and any(x is not None for x in c.get("logit") or []):
                ax.plot([x if x is not None else np.nan for x in c["logit"]], label=a)
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean largest |logit| on validation (log axis)")
        ax.set_title(f"Classification, seed 0, budget {top}: do the logits run off?\n(a bounded loss keeps them small)")
        ax.legend(fontsize=7)
        made.append(save_figure(fig, out / "cls_logits.png"))
    return made


def make_plots(out: Path, rows, summary, arms, margin: float = DEFAULT_MARGIN) -> list[str]:
    """Every figure of the sweep's report, each written atomically; returns the file names written."""
    budgets = sorted({r["budget"] for r in rows})
    top = budgets[-1]
    ent = {(e["arm"], e["budget"]): e for e in summary}
    curves = read_curves(out)
    made = []
    for plot in (_plot_diff_vs_baseline, _plot_error_vs_lambda, _plot_error_vs_bound, _plot_learning_curves,
                 _plot_guard_firing, _plot_bias_predicted_vs_measured, _plot_cls_logits):
        made += plot(out, rows, summary, arms, margin, top, ent, curves)
    return made


# ----------------------------------------------------------------------------------------------
# Markdown


def render_markdown(summary, pairs, more_data, steps, rows, arms, plots, budgets, elapsed, command,
                    margin, ratio: float = 0.0) -> str:
    L = ["# Does training on deliberately wrong labels with a negative learning rate help?", ""]
    if command:
        L += [f"Command: `{command}`" + (f" ({elapsed:.0f} s)" if elapsed else ""), ""]
    n_seeds = max(e["n_seeds"] for e in summary)
    seeds = ("seed s renders its own people and holds out a group of them, the same for every arm, so each comparison "
             "is paired and the seeds are independent)" if independent_seeds(rows) else
             "seed s holds out the s-th group of subjects, the same group for every arm, so each comparison is paired)")
    L += [f"Runs: {len(rows)} ({n_seeds} seeds per arm, budgets {budgets} frames per cell per training subject; "
          f"{seeds}. Error = final mean Euclidean test error in grid cells on held-out subjects. "
          + method_text(f"{margin:g}", ratio) + " Statistics: docs/science.md section 8.", ""]
    L += _answer(summary, more_data, budgets, arms, margin, ratio)
    for b in budgets:
        L += [f"## Budget: {b} frame(s) per cell per subject", "",
              "| arm | what it is | error (mean, 95% t-CI) | diff vs baseline (shape-free 95% CI; median; share "
              "harmed; detectable at 80% power) | p (Holm) | p (equivalence, Holm) | verdict | failures | "
              "best-checkpoint error |",
              "|---|---|---|---|---|---|---|---|---|"]
        L += [entry_row(e, fmt(e["best_checkpoint_error_cells"])) for e in summary if e["budget"] == b]
        L.append("")
    L += _theory_section(summary, pairs, steps, margin, arms)
    L += _guard_section(rows, arms, budgets)
    L += _cls_section(summary, rows, budgets)
    L += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    L += _notes(arms)
    return "\n".join(L) + "\n"


METHOD_TEXT = (
    "A run that diverged (non-finite, or predictions off the screen) or collapsed (worse than always guessing the "
    "screen centre), both judged on VALIDATION data, is a failure: each arm's failures have their own verdict, "
    "'fails k of n' with an exact (Clopper-Pearson) 95% interval, and in every mean, interval and test a diverged "
    "run counts at the screen's diagonal and a collapsed one at the error of always guessing the centre on its "
    "held-out photos (or its own error when that is worse). Each arm is compared with its own baseline over the same units: the paired difference with a "
    "shape-free 95% interval (Cantelli's inequality: it holds for skewed and heavy-tailed differences, where a "
    "t-interval or a sign-flip test does not; {dependence}), its median and the share "
    "of units the arm harmed. helps / hurts: the interval, Holm-corrected within the family (the arms sharing a "
    "baseline at one budget; the no-fine-tune control in a family of its own), excludes 0, with the sign of the "
    "mean; equivalent: the same 95% interval, Holm-corrected, lies inside +-{margin} cells (the printed interval is "
    "the one the equivalence test uses); alpha {alpha}; neither = inconclusive. 'detectable' is the smallest true "
    "difference the comparison would find with 80% power at its family's size: a verdict of inconclusive on an "
    "effect smaller than that says the run could not tell, not that there is no effect.")


def method_text(margin: str, ratio: float) -> str:
    """METHOD_TEXT for a report whose units overlap by n_test/n_train = ratio (0: independent units)."""
    dependence = ("the units are cross-validation folds whose training sets overlap, so its standard error carries "
                  f"the Nadeau-Bengio correction, n_test/n_train = {ratio:.2g}") if ratio > 0 else \
        "the units are independent replications (each its own people), so no overlap correction"
    return METHOD_TEXT.format(margin=margin, alpha=f"{ALPHA:g}", dependence=dependence)


def entry_row(e: dict, *extra: str) -> str:
    """One Markdown row of a verdict table for a stats.summarize entry (the sweep's and the personal regime's
    reports share it): arm, what it is, error, difference, p (t, Holm), p (TOST, Holm), verdict, diverged /
    collapsed, then the report's own extra cells."""
    bad = e["diverged_runs"] + e["collapsed_runs"]
    err = f"{fmt(e['mean_error_cells'])} [{fmt(e['ci95_low'])}, {fmt(e['ci95_high'])}]"
    if bad:
        err += f" (failed runs imputed; {fmt(e['finite_mean_error_cells'])} over the {e['n_ok']} ok)"
    diff = ""
    if math.isfinite(e.get("diff_vs_baseline", math.nan)):
        diff = (f"{fmt_signed(e['diff_vs_baseline'], 3)} [{fmt_signed(e['diff_ci95_low'], 3)}, "
                f"{fmt_signed(e['diff_ci95_high'], 3)}]; median {fmt_signed(e['diff_median'], 3)}, "
                f"{100 * e['share_harmed']:.0f}% harmed; detectable {fmt(e.get('detectable_cells'))}")
    v = f"**{e['verdict']}**" + (f" ({e['verdict_reason']})" if e.get("verdict_reason") else "")
    note = e["note"] + (f" [measures: {e['implementation']}]" if e.get("implementation") else "")
    cells = [e["arm"], note, err, diff, fmt_p(e.get("p_holm")), fmt_p(e.get("p_tost_holm")), v,
             f"{e['failure_verdict']} ({e['diverged_runs']} diverged, {e['collapsed_runs']} collapsed)", *extra]
    return "| " + " | ".join(cells) + " |"


def _seeds_needed(entries, more_data, ratio: float) -> str:
    """' To detect ... : about N seeds.' for an effect the size of what more real frames did (the effect the
    wrong-label arms are compared with), from each comparison's own spread and family size; '' without a
    more-frames comparison. With overlapping folds (ratio > 0) more seeds may never be enough."""
    gains = [abs(t["diff_vs_baseline"]) for t in more_data if math.isfinite(t.get("diff_vs_baseline", math.nan))]
    if not gains:
        return ""
    effect = float(np.median(gains))
    if effect <= 0:
        return ""

    def median_need(r: float) -> float:
        need = [units_for(effect, e["diff_sd"], e.get("family_size", 1), r) for e in entries
                if math.isfinite(e.get("diff_sd", math.nan))]
        need = [n for n in need if not math.isnan(n)]
        return float(np.median(need)) if need else math.nan

    med = median_need(ratio)
    if math.isnan(med):
        return ""
    n_now = max(e["n_pairs"] for e in entries if "n_pairs" in e)
    head = (f" To detect a difference the size of what more real frames did ({fmt(effect, 3)} cells, the median over "
            f"the baselines) in half of these comparisons, ")
    if math.isinf(med):
        return head + ("no number of seeds would do: the seeds are folds of one set of people (overlap "
                       f"n_test/n_train {ratio:.2g}); independent replications (--replicates) with the same spread "
                       f"would need about {math.ceil(median_need(0.0))}.")
    return head + f"about {math.ceil(med)} seeds (this run: {n_now})."


def _answer(summary, more_data, budgets, arms, margin, ratio: float = 0.0) -> list[str]:
    """The plain-words answer, computed from the verdicts."""
    L = ["## The answer, in plain words", ""]
    wl = {n for n, a in arms.items() if a.uses_wrong_labels and a.group != "complement_only"}
    by_verdict: dict = {}
    for e in summary:
        if e["arm"] in wl:
            by_verdict.setdefault(e["verdict"], []).append(e)
    for b in budgets:
        ent = [e for e in summary if e["budget"] == b and e["arm"] in wl]
        names = {v: [e["arm"] + _tiny(e, margin) for e in ent if e["verdict"] == v]
                 for v in ("helps", "hurts", "equivalent", "inconclusive")}
        L.append(f"- Budget {b} frame(s)/cell: **helped**: {_list(names['helps'])}; **hurt**: {_list(names['hurts'])}; "
                 f"**equivalent** to the baseline within +-{margin:g} cells: {_list(names['equivalent'])}; "
                 f"**inconclusive**: {_list(names['inconclusive'])}.")
        det = [e["detectable_cells"] for e in ent if math.isfinite(e.get("detectable_cells", math.nan))]
        if det:
            L.append(f"  The smallest difference these comparisons could detect (80% power, Holm family size): "
                     f"{fmt(min(det))} to {fmt(max(det))} cells (median {fmt(float(np.median(det)))})."
                     + _seeds_needed(ent, more_data, ratio))
        failing = [f"{e['arm']} ({e['failure_verdict']})" for e in summary if e["budget"] == b and e["failed_runs"]]
        if failing:
            L.append(f"  Failed runs (diverged or collapsed on validation): {_list(failing)}.")
    L.append("")
    helped = by_verdict.get("helps", [])
    n_arms = len({e["arm"] for e in summary if e["arm"] in wl})
    if helped:
        best = min(helped, key=lambda e: e["diff_vs_baseline"])
        each = [f"{e['arm']} at budget {e['budget']} ({fmt_signed(e['diff_vs_baseline'])} cells)" for e in helped]
        L.append(f"Wrong labels helped in {len(helped)} of {sum(len(v) for v in by_verdict.values())} arm x budget "
                 f"comparisons: {_list(each)}. "
                 f"The largest gain: {best['arm']} at budget {best['budget']}, {fmt_signed(best['diff_vs_baseline'])} cells "
                 f"[{fmt_signed(best['diff_ci95_low'])}, {fmt_signed(best['diff_ci95_high'])}].")
    else:
        hurt = {e["arm"] for e in by_verdict.get("hurts", [])}
        eq_all = [n for n in sorted(wl) if all(e["verdict"] == "equivalent" for e in summary if e["arm"] == n)
                  and any(e["arm"] == n for e in summary)]
        L.append(f"No wrong-label arm helped at any budget ({n_arms} arms). {len(hurt)} hurt at one budget or more; "
                 f"{len(eq_all)} were equivalent to their baseline (within +-{margin:g} cells) at every budget"
                 + (f" ({_list(eq_all)})" if eq_all else "") + "; the rest were inconclusive at some budget.")
    L.append("")
    for t in more_data:
        L.append(f"More real frames ({t['arm']}, {t['from_budget']} -> {t['to_budget']} frames per cell, the same "
                 f"number of steps): {fmt(t['mean_from'])} -> {fmt(t['mean_to'])} cells, paired difference "
                 f"{fmt_signed(t['diff_vs_baseline'], 3)} [{fmt_signed(t['diff_ci95_low'], 3)}, {fmt_signed(t['diff_ci95_high'], 3)}] "
                 f"(detectable {fmt(t.get('detectable_cells'))}): **{t['verdict']}** (unadjusted, margin +-{margin:g}).")
    if more_data:
        L.append("")
    co = [e for e in summary if e.get("group") == "complement_only"]
    if co:
        L.append("Without any true label (complementary labels only): "
                 + "; ".join(f"budget {e['budget']}: {fmt(e['mean_error_cells'])} cells" for e in co)
                 + "; see 'Classification' below for chance and full supervision.")
        L.append("")
    L += ["What the theory predicts (docs/science.md section 1), for comparison with the verdicts above: a wrong "
          "point w is computed from the true point y, so (photo, w) carries no information that (photo, y) did not. "
          "Per photo, 1/2|f - y|^2 - lambda/2 |f - w|^2 = (1 - lambda)/2 |f - f*|^2 + const with "
          "f* = y - lambda/(1 - lambda) d: a one-sided wrong point moves the optimum away from the truth; symmetric "
          "wrong points rescale the gradient by (1 - Lambda) (a lower learning rate under SGD, nearly nothing under "
          "Adam); at Lambda >= 1 the loss is linear or concave in f and training runs away. A wrong point on the "
          "prediction's side of the truth turns the negative step into a pull toward y: a change of loss shape on "
          "the true label, not new data.", ""]
    return L


def _in_band(x, pred: float, band: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else "yes" if abs(x - pred) <= band else "NO"


def _theory_section(summary, pairs, steps, margin, arms) -> list[str]:
    th = [e for e in summary if e.get("predicted_bias_cells") is not None]
    L = ["## Theory beside measurement", ""]
    if th:
        n_in = sum(all(_in_band(e.get(k), e["predicted_bias_cells"], e["band_cells"]) == "yes"
                       for k in ("measured_bias_cells", "measured_shift_cells", "train_bias_cells")) for e in th)
        L += ["One-sided arms: SGD, combined loss, `keep` boundary, D = 2, the wrong point straight down the rows. "
              "Predicted mean signed error along d: -lambda/(1 - lambda) D. Bound arms: one-sided Lambda = 1.5 under "
              "the error bound B, predicted to settle near -B. Band: 25% or 0.1 cells, whichever is larger. Measured "
              "three ways, over the runs that finished ok: on the held-out people, as the shift from the baseline of "
              "the same seeds, and on the training photos, where the fixed point is defined exactly.", "",
              "| arm | budget | predicted | measured on held-out people (95% CI) | baseline's own | measured - baseline "
              "| on training photos | within band (measured / shift / training) |",
              "|---|---|---|---|---|---|---|---|"]
        for e in th:
            pred, band = e["predicted_bias_cells"], e["band_cells"]
            inband = [_in_band(e.get(k), pred, band) for k in ("measured_bias_cells", "measured_shift_cells",
                                                                "train_bias_cells")]
            lo, hi = e["measured_bias_ci95"]
            L.append(f"| {e['arm']} | {e['budget']} | {fmt(pred)} | {fmt(e['measured_bias_cells'])} [{fmt(lo)}, {fmt(hi)}] "
                     f"| {fmt(e.get('baseline_bias_cells'))} | {fmt(e.get('measured_shift_cells'))} | "
                     f"{fmt(e.get('train_bias_cells'))} | {' / '.join(inband)} |")
        L += ["", f"{n_in} of {len(th)} arm x budget pairs fall within the band all three ways.", ""]
    if pairs:
        # Symmetric wrong points are predicted to equal their LR-matched control; a literal arm's control (the
        # baseline at (1 + lambda) x lr) only matches its step size: what is left is the wrong point's own effect.
        sym = [t for t in pairs if arms[t["a"]].overrides.get("neg_policy") == "symmetric"]
        intro = []
        if sym:
            intro.append("Predicted to be the same: symmetric K = 4, Lambda = 0.8 against, under SGD, the baseline at "
                         "lr x 0.2 (the gradient is exactly (1 - Lambda)(f - y)) and, under Adam, the full-LR baseline "
                         "(Adam divides out the gradient's scale).")
        if len(sym) < len(pairs):
            intro.append("Step-size controls: the literal original scheme (a second, negative step of lambda x lr) "
                         "against the baseline at lr x (1 + lambda), the same total step; the difference is what the "
                         "wrong point adds beyond a larger step (no prediction of equality).")
        L += [" ".join(intro) + f" Paired by seed, one planned comparison each (no Holm family); equivalence margin "
              f"+-{margin:g} cells.", "",
              "| pair | budget | mean a | mean b | diff (shape-free 95% CI) | p | p (TOST) | verdict |",
              "|---|---|---|---|---|---|---|---|"]
        for t in pairs:
            L.append(f"| {t['a']} vs {t['b']} | {t['budget']} | {fmt(t['mean_a'])} | {fmt(t['mean_b'])} | "
                     f"{fmt_signed(t['diff_vs_baseline'], 4)} [{fmt_signed(t['diff_ci95_low'], 4)}, {fmt_signed(t['diff_ci95_high'], 4)}] | "
                     f"{fmt_p(t['p_value'])} | {fmt_p(t['p_tost'])} | {t['verdict']} |")
        if sym:
            held = sum(t["verdict"] == "equivalent" for t in sym)
            L += ["", f"The prediction holds (equivalent) in {held} of {len(sym)} symmetric comparisons.", ""]
        else:
            L.append("")
    if steps:
        L += ["The literal negative step (a separate optimizer at learning rate -lambda*lr): its measured mean step per "
              "parameter, in units of lambda*lr (median over the runs that finished ok), and how often the gradient cap "
              "fired. Predicted (docs/science.md section 4): under SGD the step is lambda*lr times the gradient, so a "
              "cap that shrinks the gradient shrinks it; under Adam the update m/sqrt(v) is scale-free, so it does not.",
              "", "| arm | optimizer | mean step / (lambda lr) | gradient cap | fraction of negative steps capped |",
              "|---|---|---|---|---|"]
        for s in steps:
            L.append(f"| {s['arm']} | {s['optimizer']} | {fmt(s['step_ratio'], 4)} | {s['grad_cap'] or 'none'} | "
                     f"{fmt(s['cap_fraction'], 3) if s['cap_fraction'] is not None else 'n/a'} |")
        effect = {}
        for opt in sorted({s["optimizer"] for s in steps}):
            capped = [s for s in steps if s["optimizer"] == opt and s["cap_fraction"]]
            free = [s["step_ratio"] for s in steps if s["optimizer"] == opt and not s["grad_cap"]]
            if capped and free:
                effect[opt] = (capped[0]["step_ratio"], float(np.median(free)), capped[0]["cap_fraction"])
        if effect:
            L += ["", "With the cap: " + "; ".join(
                f"under {o} the step measured {c:.3g} x lambda*lr with the cap firing on {fr:.0%} of negative steps, "
                f"against a median {f:.3g} for the family's uncapped literal arms ({c / f:.2g} times)"
                for o, (c, f, fr) in effect.items()) + "."]
            shrank = {o: c / f < 0.5 for o, (c, f, _) in effect.items()}
            if "sgd" in shrank and any(o != "sgd" for o in shrank):
                adam = next(o for o in shrank if o != "sgd")
                L.append(f"The cap {'shrank' if shrank['sgd'] else 'did not shrink'} the negative step under SGD and "
                         f"{'shrank' if shrank[adam] else 'did not shrink'} it under {adam} (shrinking = below half "
                         "the uncapped median).")
        L.append("")
    return L


def _guard_section(rows, arms, budgets) -> list[str]:
    L = []
    wd = [r for r in rows if arms.get(r["arm"]) and arms[r["arm"]].overrides.get("watchdog")]
    if wd:
        worse = sum(1 for r in wd if r["final_val_error"] > r["best_val_error"] + 1e-9)
        n_rest = [len(r["watchdog_events"]) for r in wd]
        L += ["## The watchdog", "",
              f"{len(wd)} watchdog runs: restores per run median {np.median(n_rest):g} (max {max(n_rest)}); "
              f"{worse} report a model whose validation error is above their own best-validation epoch's (a run "
              "that ends training worse than its best reports its best-validation weights). A restore loads the "
              "best weights with fresh optimizer moments (docs/science.md section 5).", ""]
    return L


def _cls_section(summary, rows, budgets) -> list[str]:
    ent = [e for e in summary if e["family"] == "cls"]
    if not ent:
        return []
    ref = centre_error_reference()
    L = ["## Classification: 144-way softmax with known-wrong cells (docs/science.md section 3)", "",
         "| arm | budget | cell accuracy (chance 0.7%) | error (cells) | final mean max abs logit | diverged / collapsed | verdict |",
         "|---|---|---|---|---|---|---|"]
    for e in ent:
        L.append(f"| {e['arm']} | {e['budget']} | {e['mean_cell_accuracy']:.1%} | {fmt(e['mean_error_cells'])} | "
                 f"{fmt(e.get('final_logit_absmax'), 1)} | {e['diverged_runs']} / {e['collapsed_runs']} | {e['verdict']} |")
    L.append("")
    for b in budgets:
        base = next((e for e in ent if e["arm"] == "cls:baseline" and e["budget"] == b), None)
        co = next((e for e in ent if e["group"] == "complement_only" and e["budget"] == b), None)
        if not (base and co):
            continue
        errs = [r["final_test_error"] for r in rows if r["arm"] == co["arm"] and r["budget"] == b
                and not r["diverged"]]
        p = float(sst.ttest_1samp(errs, ref, alternative="less").pvalue) if len(errs) >= 2 and np.std(errs) > 0 else math.nan
        above = math.isfinite(p) and p < ALPHA
        frac = (ref - co["mean_error_cells"]) / (ref - base["mean_error_cells"]) if base["mean_error_cells"] < ref else math.nan
        L.append(f"Complementary-only (budget {b}): trained with no true label, only wrong cells, it reaches "
                 f"{co['mean_cell_accuracy']:.1%} cell accuracy and {fmt(co['mean_error_cells'])} cells, against chance "
                 f"(0.7%, {fmt(ref, 2)} cells for always guessing the centre) and full supervision "
                 f"({base['mean_cell_accuracy']:.1%}, {fmt(base['mean_error_cells'])} cells): "
                 + (f"better than chance (one-sided t-test p = {fmt_p(p)}), {frac:.0%} of the way from chance to full "
                    "supervision: here, with no true label, the wrong labels carry information."
                    if above else f"not shown better than chance (p = {fmt_p(p)})."))
    L.append("")
    return L


def _notes(arms) -> list[str]:
    by_boundary: dict = {}
    for n, a in arms.items():
        if a.overrides.get("neg_mode", "off") != "off":
            by_boundary.setdefault(a.overrides.get("neg_boundary", "keep"), []).append(n)
    L = ["## Notes", ""]
    for b, names in sorted(by_boundary.items()):
        L.append(f"- Boundary `{b}` (what happens to a wrong point off the grid): {', '.join(names)}.")
    L += ["- The sweep trains a small MLP on pooled pixels plus the face box so that hundreds of runs fit in minutes; "
          "the algebra of docs/science.md holds for any model.",
          "- Raw numbers: results.csv (one row per run), curves.jsonl (validation error per epoch), summary.json.", ""]
    return L


def verdict_lines(out) -> list[str]:
    doc = json.loads((Path(out) / "summary.json").read_text())
    lines = []
    for e in doc["entries"]:
        d = e.get("diff_vs_baseline")
        lines.append(f"  budget {e['budget']:>2}  {e['arm']:<26} {e['verdict']:<12} error "
                     + (fmt(e["mean_error_cells"]) if e.get("mean_error_cells") is not None else "n/a")
                     + (f"  diff {d:+.3f} [{e['diff_ci95_low']:+.3f}, {e['diff_ci95_high']:+.3f}]"
                        if d is not None and e.get("diff_ci95_low") is not None else "")
                     + (f"  ({e['diverged_runs']} diverged, {e['collapsed_runs']} collapsed)"
                        if e["diverged_runs"] or e["collapsed_runs"] else ""))
    return lines
