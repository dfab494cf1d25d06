"""summary.json, report.md and plots of the personal regime (gazeneg/study/personal.py), from finetunes.csv.

Per k (the calibration photos): each arm's test error over the held-out people (or sessions) with its
95% t-interval, the paired difference to the fine-tuned baseline, and the verdicts of stats.summarize
(helps / hurts / equivalent / inconclusive, Holm within a family; failures their own verdict), paired by
person; the margin set from the measured calibration gain; each arm
against the baseline at the very LR it chose; what more real photos do; which LRs were chosen. Every
conclusion sentence is computed from those verdicts."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from gazeneg.files import atomic_write_text, save_figure  # noqa: E402
from gazeneg.study.formatting import clean_json, fmt, fmt_signed  # noqa: E402
from gazeneg.study.personal import BASELINES, personal_arms, read_finetunes, select_lr  # noqa: E402
from gazeneg.study.stats import (  # noqa: E402
    DEFAULT_MARGIN,
    holm,
    imputed_value,
    mean_ci,
    paired_test,
    summarize,
    verdict,
)
from gazeneg.study.sweep import Arm  # noqa: E402
from gazeneg.study.sweep_report import VERDICT_COLOURS, entry_row, method_text  # noqa: E402

# The smallest effect of interest: this fraction of the calibration's own measured gain (the no-fine-tune
# control against the fine-tuned baseline). A wrong-label effect smaller than half of what calibration
# itself does is not worth a user's trouble; a fixed margin larger than the whole gain made every arm
# "equivalent" by construction.
MARGIN_FRACTION = 0.5
MIN_MARGIN = 0.005

UNIT_WORDS = {"person": ("person", "people"), "session": ("session", "sessions"),
              "cells": ("third of the cells", "thirds of the cells")}
MODE_WORDS = {"last": "the last layer of the head (fc's final Linear layer) on features computed once per held-out "
                      "unit (FAZE-style calibration)",
              "head": "the whole fc head (an MLP) on backbone features computed once per held-out unit",
              "full": "the whole network (train.fit from the base weights, the model's recipe with augmentation "
                      "and EMA)"}


def _ok(r) -> bool:
    return not r["diverged"] and not r["collapsed"]


def overlap_ratio(meta: dict) -> float:
    """n_test/n_train of the folds, in units (the Nadeau-Bengio correction): the units of a fold are tested
    against a base pretrained on the other units, so the folds' training sets overlap. 0 with --init (one
    base for all) or unknown folds."""
    folds = meta.get("folds") or []
    n = sum(len(f) for f in folds)
    if meta.get("config", {}).get("init") or not folds or n == 0:
        return 0.0
    r = [len(f) / (n - len(f)) for f in folds if n - len(f) > 0]
    return float(np.mean(r)) if r else 0.0


def margin_from_gain(chosen, arms, ratio: float) -> tuple[float, float]:
    """(margin, measured calibration gain): MARGIN_FRACTION of the mean gain of fine-tuning over the
    no-fine-tune control (over units and k), DEFAULT_MARGIN when there is no control or no gain."""
    if "ft:no_finetune" not in arms or BASELINES["ft"] not in arms:
        return DEFAULT_MARGIN, math.nan
    fin = [float(r["final_test_error"]) for r in chosen if _ok(r)]
    fb = max(fin) if fin else 0.0
    gains = []
    for k in sorted({r["budget"] for r in chosen}):
        nf = {r["person"]: imputed_value(r, "final_test_error", fb) for r in chosen
              if r["arm"] == "ft:no_finetune" and r["budget"] == k}
        ba = {r["person"]: imputed_value(r, "final_test_error", fb) for r in chosen
              if r["arm"] == BASELINES["ft"] and r["budget"] == k}
        gains += [nf[u] - ba[u] for u in nf if u in ba]
    gain = float(np.mean(gains)) if gains else math.nan
    if not math.isfinite(gain) or gain <= 0:
        return DEFAULT_MARGIN, gain
    return max(MIN_MARGIN, MARGIN_FRACTION * gain), gain


def edge_choices(lrs: dict, grid_: list, share: float = 0.5) -> dict:
    """arm -> "bottom" / "top" when more than `share` of its LR choices sit at that end of the grid: at the
    bottom the arm's effect was in effect switched off (the smallest step the grid allows), which is not
    "no effect"; at the top it might want more."""
    if not grid_:
        return {}
    lo, hi = f"{min(grid_):g}", f"{max(grid_):g}"
    out = {}
    for a, c in lrs.items():
        n = sum(c.values())
        if n and c.get(lo, 0) / n > share:
            out[a] = "bottom"
        elif n and c.get(hi, 0) / n > share:
            out[a] = "top"
    return out


TUNED = "ft:original_tuned"


def with_tuned_arm(rows: list[dict], arms: dict) -> tuple[list[dict], dict]:
    """Add the arm that tunes the original scheme's (lambda, B, LR) on validation: per (unit, k), of every
    original-scheme run (all lambda, B and LR), the one with the lowest validation error among those whose
    validation outcome is ok. Its rows are copies of the chosen runs (selected), so it is paired with the
    baseline like any arm; it needs no runs of its own."""
    orig = [n for n, a in arms.items() if a.series == "original" and a.family == "ft"]
    if len(orig) < 2:
        return rows, arms
    by: dict = {}
    for r in rows:
        if r["arm"] in orig:
            by.setdefault((r["person"], r["budget"]), []).append(r)
    extra = []
    for rs in by.values():
        pick = select_lr([{**r, "val_outcome": r.get("val_outcome", "ok")} for r in rs])
        extra.append({**pick, "arm": TUNED, "selected": True, "tuned_from": pick["arm"]})
    arm = Arm(TUNED, "ft", {}, group="original",
              note=f"the original scheme with lambda, B and LR chosen on validation (of {len(orig)} lambda x B arms)")
    return rows + extra, {**arms, TUNED: arm}


def build_report(out, *, elapsed: float | None = None, command: str = "", margin: float | None = None,
                 rows: list[dict] | None = None, meta: dict | None = None) -> dict:
    """rows: finetunes.csv rows (default: read it; a test passes fabricated ones, which need only the
    chosen rows: arm, person, budget, lr, selected, final_test_error, diverged, collapsed, cell_accuracy,
    seconds); meta: personal.json (default: read it if present)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_finetunes(out) if rows is None else rows
    if meta is None:
        p = out / "personal.json"
        meta = json.loads(p.read_text()) if p.exists() else {}
    all_arms = {a.name: a for a in personal_arms()}
    arms = {n: a for n, a in all_arms.items() if any(r["arm"] == n for r in rows)}
    rows, arms = with_tuned_arm(rows, arms)
    chosen = [r for r in rows if r["selected"]]
    ratio = overlap_ratio(meta)
    gain = math.nan
    if margin is None:
        margin, gain = margin_from_gain(chosen, arms, ratio)
    summary = summarize(chosen, arms, margin=margin, baselines=BASELINES, unit="person", ratio=ratio)
    ks = sorted({r["budget"] for r in chosen})
    same_lr = _same_lr(rows, chosen, arms, ks, margin, ratio)
    more = _more_photos(chosen, ks, margin, ratio)
    lrs = _lr_choices(chosen, arms)
    edges = edge_choices(lrs, list(meta.get("config", {}).get("lr_grid") or sorted({r["lr"] for r in rows if r["lr"] > 0})))
    for e in summary:
        if edges.get(e["arm"]) == "bottom":
            e["lr_edge"] = "switched off (chose the grid's bottom LR)"
        elif edges.get(e["arm"]) == "top":
            e["lr_edge"] = "at the grid's top LR"
    timing = _timing(rows, meta)
    # k larger than a unit's calibration cells hold (a small capture): the photos actually used
    clipped = {k: min(r["k_used"] for r in chosen if r["budget"] == k) for k in ks
               if any("k_used" in r and r["k_used"] < k for r in chosen if r["budget"] == k)}
    doc = {"k_used_min": clipped, "entries": summary, "same_lr": same_lr, "more_real_photos": more, "lr_choices": lrs, "timing": timing,
           "margin_cells": margin, "calibration_gain_cells": gain, "overlap_ratio": ratio,
           "elapsed_seconds": elapsed, "command": command, "unit_kind": meta.get("unit_kind"),
           "answer": _answer(summary, more, ks, margin, meta)}
    atomic_write_text(out / "summary.json", json.dumps(clean_json(doc), indent=2))
    plots = make_plots(out, summary, ks, margin, meta)
    atomic_write_text(out / "report.md", render_markdown(doc, summary, same_lr, more, lrs, timing, plots, ks, meta,
                                                         arms, margin))
    return doc


# ----------------------------------------------------------------------------------------------
# Analyses


def _same_lr(rows, chosen, arms, ks, margin, ratio: float = 0.0) -> list[dict]:
    """Each arm against the fine-tuned baseline at the very LR the arm chose for that person and k (the
    baseline was run at every grid LR): what the arm adds at an equal step size. Holm within a family and k."""
    base_at = {(r["arm"], r["person"], r["budget"], round(r["lr"], 12)): r for r in rows}
    res = []
    for k in ks:
        fam_res = []
        for name, a in arms.items():
            base = BASELINES.get(a.family)
            if name == base or a.overrides.get("no_finetune") or base not in arms:
                continue
            va, vb = {}, {}
            for r in chosen:
                if r["arm"] != name or r["budget"] != k:
                    continue
                b = base_at.get((base, r["person"], k, round(r["lr"], 12)))
                if b is None:
                    continue
                va[r["person"]] = r["final_test_error"] if _ok(r) else math.nan
                vb[r["person"]] = b["final_test_error"] if _ok(b) else math.nan
            if not va:
                continue
            t = paired_test(va, vb, margin, ratio)
            t.update({"arm": name, "family": a.family, "budget": k})
            fam_res.append(t)
        for fam in {t["family"] for t in fam_res}:
            f = [t for t in fam_res if t["family"] == fam]
            for t, p, pt in zip(f, holm([t["p_value"] for t in f]), holm([t["p_tost"] for t in f]), strict=True):
                t["p_holm"], t["p_tost_holm"] = p, pt
                t["verdict"] = verdict(t["diff_vs_baseline"], p, pt)
        res += fam_res
    return res


def _more_photos(chosen, ks, margin, ratio: float = 0.0) -> list[dict]:
    """The fine-tuned baseline with more real photos: each k against the next smaller one, paired by
    person; Holm over these comparisons."""
    vals = {k: {r["person"]: (r["final_test_error"] if _ok(r) else math.nan) for r in chosen
                if r["arm"] == BASELINES["ft"] and r["budget"] == k} for k in ks}
    res = []
    for lo, hi in zip(ks, ks[1:], strict=False):
        t = paired_test(vals[hi], vals[lo], margin, ratio)
        t.update({"from_k": lo, "to_k": hi, "mean_from": mean_ci(vals[lo].values())[0],
                  "mean_to": mean_ci(vals[hi].values())[0]})
        res.append(t)
    for t, p, pt in zip(res, holm([t["p_value"] for t in res]), holm([t["p_tost"] for t in res]), strict=True):
        t["p_holm"], t["p_tost_holm"] = p, pt
        t["verdict"] = verdict(t["diff_vs_baseline"], p, pt)
    return res


def _lr_choices(chosen, arms) -> dict:
    """arm -> {lr: how many (person, k) chose it}."""
    out = {}
    for name, a in arms.items():
        if a.overrides.get("no_finetune"):
            continue
        c = Counter(f"{r['lr']:g}" for r in chosen if r["arm"] == name)
        out[name] = dict(sorted(c.items(), key=lambda kv: float(kv[0])))
    return out


def _timing(rows, meta) -> dict:
    ft = [r["seconds"] for r in rows if r["arm"] != "ft:no_finetune" and math.isfinite(r.get("seconds", math.nan))]
    feats = {r["person"]: r.get("feature_seconds", math.nan) for r in rows}
    fv = [v for v in feats.values() if isinstance(v, float) and math.isfinite(v)]
    return {"finetunes": len(ft), "seconds_per_finetune": float(np.mean(ft)) if ft else math.nan,
            "median_seconds_per_finetune": float(np.median(ft)) if ft else math.nan,
            "feature_seconds_per_unit": float(np.mean(fv)) if fv else math.nan,
            "base_seconds": meta.get("base_seconds"), "finetune_wall_seconds": meta.get("finetune_seconds"),
            "mode": meta.get("config", {}).get("finetune")}


# ----------------------------------------------------------------------------------------------
# The answer in words, computed from the verdicts


def _answer(summary, more, ks, margin, meta) -> dict:
    """k -> list of sentences."""
    one, many = UNIT_WORDS.get(meta.get("unit_kind"), ("person", "people"))
    ans = {}
    for k in ks:
        es = {e["arm"]: e for e in summary if e["budget"] == k}
        base = es.get(BASELINES["ft"])
        if base is None:
            continue
        n = base["n_seeds"]
        S = []
        if base["failed_runs"]:
            S.append(f"With {k} photos the fine-tuned baseline itself {base['failure_verdict']} {many} (judged on "
                     "validation); its failed runs count at the centre guess's error in the comparisons.")
        nf = es.get("ft:no_finetune")
        if nf is not None and math.isfinite(nf.get("diff_vs_baseline", math.nan)):
            flip = {"hurts": "lowers", "helps": "raises", "equivalent": f"does not change (within +-{margin:g} cells)",
                    "inconclusive": "may or may not change (the data cannot tell)"}[nf["verdict"]] \
                if nf["verdict"] in ("hurts", "helps", "equivalent", "inconclusive") else "cannot be judged"
            S.append(f"Fine-tuning the base model on {k} photos of a new {one} {flip} its error: "
                     f"{fmt(nf['mean_error_cells'], 2)} cells without fine-tuning, {fmt(base['mean_error_cells'], 2)} "
                     f"with (paired over {n} {many}).")
        wl = [e for e in es.values() if e["arm"] not in (BASELINES["ft"], BASELINES["cls"], "ft:no_finetune",
                                                         "ft:lr_control_0.2")]
        by = {v: sorted(e["arm"] for e in wl if e["verdict"] == v) for v in ("helps", "hurts", "equivalent",
                                                                            "inconclusive")}
        if by["helps"]:
            S.append(f"Adding wrong labels to the same {k} photos **helps** in {len(by['helps'])} of {len(wl)} arms: "
                     + ", ".join(f"{a} ({fmt_signed(es[a]['diff_vs_baseline'], 3)} cells)" for a in by["helps"]) + ".")
        else:
            S.append(f"Adding wrong labels to the same {k} photos helps in **none** of the {len(wl)} arms.")
        if by["hurts"]:
            S.append(f"It **hurts** in {len(by['hurts'])}: "
                     + ", ".join(f"{a} ({fmt_signed(es[a].get('diff_vs_baseline', math.nan), 3)} cells)" for a in by["hurts"])
                     + ".")
        tiny = [a for a in by["helps"] + by["hurts"] if abs(es[a].get("diff_vs_baseline", math.nan)) < margin]
        if tiny:
            S.append(f"Of these, {', '.join(tiny)} {'differs' if len(tiny) == 1 else 'differ'} by less than the "
                     f"+-{margin:g}-cell margin: consistent across {many}, but too small to matter.")
        rest = [f"{len(by[v])} {v}" for v in ("equivalent", "inconclusive") if by[v]]
        if rest:
            S.append(f"The others: {', '.join(rest)} (equivalent = within +-{margin:g} cells of the baseline).")
        det = [e["detectable_cells"] for e in wl if math.isfinite(e.get("detectable_cells", math.nan))]
        if det:
            S.append(f"With these {n} {many} the smallest difference a comparison could detect (80% power, Holm) is "
                     f"{fmt(min(det), 3)} to {fmt(max(det), 3)} cells: an inconclusive arm may still change the error "
                     "by less than that.")
        off = sorted(e["arm"] for e in wl if e.get("lr_edge", "").startswith("switched off"))
        if off:
            S.append(f"{len(off)} arm(s) mostly chose the grid's bottom LR, i.e. were in effect switched off: "
                     f"{', '.join(off)}; their verdicts say little about the method.")
        failing = [f"{e['arm']} ({e['failure_verdict']})" for e in wl if e["failed_runs"]]
        if failing:
            S.append("Failed runs (diverged or collapsed on validation), a verdict of their own: "
                     + ", ".join(failing) + ".")
        finite = [e for e in wl if math.isfinite(e.get("diff_vs_baseline", math.nan))]
        if finite:
            best = min(finite, key=lambda e: e["diff_vs_baseline"])
            S.append(f"The best wrong-label arm, {best['arm']}, is {fmt_signed(best['diff_vs_baseline'], 3)} cells "
                     f"[{fmt_signed(best['diff_ci95_low'], 3)}, {fmt_signed(best['diff_ci95_high'], 3)}] from the baseline "
                     f"({best['verdict']}).")
        m = next((t for t in more if t["to_k"] == k), None)
        if m is not None and math.isfinite(m["diff_vs_baseline"]):
            word = {"helps": "lowers", "hurts": "raises", "equivalent": "does not change",
                    "inconclusive": "does not measurably change"}[m["verdict"]]
            S.append(f"More real photos instead: going from {m['from_k']} to {k} photos {word} the fine-tuned error "
                     f"({fmt(m['mean_from'], 2)} -> {fmt(m['mean_to'], 2)} cells, {fmt_signed(m['diff_vs_baseline'], 3)} "
                     f"[{fmt_signed(m['diff_ci95_low'], 3)}, {fmt_signed(m['diff_ci95_high'], 3)}], {m['verdict']}).")
        ans[k] = S
    return ans


# ----------------------------------------------------------------------------------------------
# Plots


def _k_axis(ax, ks):
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlim(ks[0] / 1.5, ks[-1] * 1.5)
    ax.set_xlabel("k, calibration photos of the held-out person (log axis)")


def _line(ax, es, ks, dx=1.0, **kw):
    xs, ms, lo, hi = [], [], [], []
    for k in ks:
        e = es.get(k)
        if e is None or not math.isfinite(e["mean_error_cells"]):
            continue
        xs.append(k * dx)
        ms.append(e["mean_error_cells"])
        lo.append(max(0.0, e["mean_error_cells"] - e["ci95_low"]) if math.isfinite(e["ci95_low"]) else 0.0)
        hi.append(max(0.0, e["ci95_high"] - e["mean_error_cells"]) if math.isfinite(e["ci95_high"]) else 0.0)
    if xs:
        ax.errorbar(xs, ms, yerr=[lo, hi], capsize=3, **kw)


def make_plots(out: Path, summary, ks, margin, meta) -> list[str]:
    if not ks:
        return []
    made = []
    by = {}
    for e in summary:
        by.setdefault(e["arm"], {})[e["budget"]] = e
    model = meta.get("config", {}).get("model", "")
    many = UNIT_WORDS.get(meta.get("unit_kind"), ("person", "people"))[1]
    # 1. Error vs k: more real photos (left) beside the same photos plus wrong labels (right).
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5.6), sharey=True)
    if "ft:no_finetune" in by:
        _line(a1, by["ft:no_finetune"], ks, fmt="s--", color="tab:grey", label="no fine-tuning (the base model)")
    if "ft:lr_control_0.2" in by:
        _line(a1, by["ft:lr_control_0.2"], ks, dx=1.04, fmt="^:", color="tab:purple", label="fine-tuned at 0.2 x LR")
    if BASELINES["cls"] in by:
        _line(a1, by[BASELINES["cls"]], ks, dx=0.96, fmt="d-.", color="tab:brown", label="fine-tuned 144-way head")
    _line(a1, by.get(BASELINES["ft"], {}), ks, fmt="o-", color="black", lw=2, label="fine-tuned baseline")
    a1.set_title(f"More real photos\n(fine-tuned on k photos; mean over {many}, 95% CI)")
    wl = [a for a in by if a not in (BASELINES["ft"], BASELINES["cls"], "ft:no_finetune", "ft:lr_control_0.2")]
    _line(a2, by.get(BASELINES["ft"], {}), ks, fmt="o-", color="black", lw=2, label="fine-tuned baseline (reference)")
    offs = np.linspace(0.9, 1.1, max(len(wl), 1))
    seen = set()
    for dx, a in zip(offs, wl, strict=False):
        es = by[a]
        xs = [k * dx for k in ks if k in es and math.isfinite(es[k]["mean_error_cells"])]
        ys = [es[k]["mean_error_cells"] for k in ks if k in es and math.isfinite(es[k]["mean_error_cells"])]
        a2.plot(xs, ys, "-", color="tab:grey", lw=0.6, alpha=0.6)
        for k in ks:
            e = es.get(k)
            if e is None or not math.isfinite(e["mean_error_cells"]):
                continue
            v = e["verdict"]
            lab = v if v not in seen else None
            seen.add(v)
            _line(a2, {k: e}, [k], dx=dx, fmt="o", ms=4, color=VERDICT_COLOURS.get(v, "grey"), label=lab)
    a2.set_title("The same k photos plus wrong labels\n(each dot one arm; colour = verdict against the baseline)")
    for ax in (a1, a2):
        _k_axis(ax, ks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    a1.set_ylabel("mean test error on the person's other cells, cells\n(lower is better)")
    fig.suptitle(f"One person, k calibration photos ({model}): more real photos vs wrong labels", fontsize=11)
    made.append(save_figure(fig, out / "error_vs_k.png"))

    # 2. Paired difference to the fine-tuned baseline per arm, one panel per k.
    arms = [a for a in by if a not in BASELINES.values()]
    if arms:
        fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks) + 2.2, 0.3 * len(arms) + 2), sharey=True)
        axes = np.atleast_1d(axes)
        ys = np.arange(len(arms))[::-1]
        for ax, k in zip(axes, ks, strict=True):
            for y, a in zip(ys, arms, strict=True):
                e = by[a].get(k)
                if e is None:
                    continue
                c = VERDICT_COLOURS.get(e["verdict"], "grey")
                d, lo, hi = e.get("diff_vs_baseline", math.nan), e.get("diff_ci95_low"), e.get("diff_ci95_high")
                if math.isfinite(d):
                    xerr = ([[max(0.0, d - lo)], [max(0.0, hi - d)]]
                            if lo is not None and math.isfinite(lo) and math.isfinite(hi) else None)
                    ax.errorbar([d], [y], xerr=xerr, fmt="o", color=c, capsize=2, ms=4)
                else:
                    ax.annotate(e["verdict"], (0, y), fontsize=7, color=c, va="center")
            ax.axvline(0, color="black", lw=0.8)
            ax.axvspan(-margin, margin, color="tab:blue", alpha=0.12)
            ax.set_title(f"k = {k} photos")
            ax.set_xlabel("difference to the fine-tuned baseline, cells\n<- better    worse ->")
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(ys, arms, fontsize=7)
        fig.suptitle(f"Each arm minus the fine-tuned baseline, paired over {many} (95% t-interval; colour = verdict; "
                     f"band = +-{margin:g} cells)", fontsize=10)
        made.append(save_figure(fig, out / "diff_vs_baseline_per_k.png"))
    return made


# ----------------------------------------------------------------------------------------------
# Markdown


def render_markdown(doc, summary, same_lr, more, lrs, timing, plots, ks, meta, arms, margin) -> str:
    cfg = meta.get("config", {})
    one, many = UNIT_WORDS.get(meta.get("unit_kind"), ("person", "people"))
    n_units = max((e["n_seeds"] for e in summary), default=0)      # held-out units actually tested
    n_all = len(meta.get("units", [])) or n_units
    n_folds = len(meta.get("folds", []))
    L = ["# One person, k calibration photos: do wrong labels with a negative learning rate help?", ""]
    if doc.get("command"):
        L += [f"Command: `{doc['command']}`" + (f" ({doc['elapsed_seconds']:.0f} s)" if doc.get("elapsed_seconds")
                                                 else ""), ""]
    mode = timing.get("mode") or cfg.get("finetune", "")
    L += [f"**Held-out unit: the {one}.** " + {
        "person": (f"Each of the {n_units} people is held out once" if n_units == n_all
                   else f"{n_units} of the {n_all} people are held out, each once")
                  + (f" (in {n_folds} fold{'s' if n_folds != 1 else ''})" if n_folds else "")
                  + "; a fold's base model was pretrained on every person it does not hold out.",
        "session": f"This capture holds one person, so each of its {n_units} sessions is held out once; the base "
                   "model of a session was pretrained on the other sessions.",
        "cells": "This capture holds one person and one session, so the held-out units are three disjoint thirds of "
                 "its cells; the base model of a third was pretrained on the other two thirds.",
    }.get(meta.get("unit_kind"), "") + (f" Base models: loaded from `{cfg.get('init')}`." if cfg.get("init") else ""),
          ""]
    L += [f"Model: `{cfg.get('model', '?')}`. Each held-out {one}'s cells are split: half for calibration (the "
          "first nine are a 3 x 3 grid, the 9-point calibration; the k photos are the first frames of the "
          "calibration cells, then their second frames), a sixth for validation and a third for test; no test cell "
          "is ever a calibration or validation cell. Error = mean Euclidean error in cells on the test cells. "
          f"**Fine-tuned: {MODE_WORDS.get(mode, mode or 'not recorded')}**, {cfg.get('steps', '?')} full-batch steps"
          + (" (photos per step: at most 32)" if mode == "full" else "")
          + f", AdamW with a cosine LR. The LR is chosen per arm, {one} and k on the validation cells from one grid "
          f"for every arm, {cfg.get('lr_grid', '?')}; the LR-matched control (the baseline at 0.2 x each grid LR) "
          "is kept, and each arm is also compared with the baseline at the very LR it chose.", ""]
    for k, used in doc.get("k_used_min", {}).items():
        L += [f"k = {k}: a held-out {one} has fewer calibration photos than that; at least {used} were used "
              "(all of its calibration photos).", ""]
    L += [f"Time: {timing['finetunes']} fine-tunes, **{fmt(timing['seconds_per_finetune'], 3)} s per fine-tune** "
          f"(median {fmt(timing['median_seconds_per_finetune'], 3)} s, one CPU thread, evaluation included); features "
          f"{fmt(timing['feature_seconds_per_unit'], 2)} s per {one}; base models "
          f"{fmt(timing['base_seconds'] or math.nan, 0)} s (0 when cached), fine-tuning "
          f"{fmt(timing['finetune_wall_seconds'] or math.nan, 0)} s wall.", ""]
    gain = doc.get("calibration_gain_cells")
    L += [f"Statistics (docs/science.md section 8): paired by {one} (n = {n_units}); each arm against its family's "
          "baseline (fine-tuned, true labels only; the 144-way arms against the fine-tuned 144-way head). "
          + method_text(f"{margin:.3g}", doc.get("overlap_ratio", 0))
          + (f" The margin is {MARGIN_FRACTION:g} x the calibration's own measured gain ({fmt(gain, 3)} cells: the "
             "no-fine-tune control against the fine-tuned baseline, over units and k), the smallest effect of interest."
             if gain is not None and math.isfinite(gain) and gain > 0 else
             f" The margin is the default +-{margin:g} cells (no calibration gain measured to set it from).")
          + (" The units share base models pretrained on overlapping data; with --init every unit shares one base, "
             "which no correction here accounts for." if cfg.get("init") else ""), ""]
    L += ["## The answer, in plain words", ""]
    for k in ks:
        if k in doc["answer"]:
            L.append(f"- **One {one} with {k} photos:** " + " ".join(doc["answer"][k]))
    L.append("")
    sl = {(t["arm"], t["budget"]): t for t in same_lr}
    for k in ks:
        L += [f"## k = {k} calibration photos", "",
              "| arm | what it is | error (mean, 95% t-CI) | diff vs baseline (shape-free 95% CI; median; share harmed; "
              "detectable at 80% power) | p (Holm) | p (equivalence, Holm) | verdict | failures | vs baseline at the "
              "same LR | LR chosen |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for e in [e for e in summary if e["budget"] == k]:
            t = sl.get((e["arm"], k))
            same = (f"{fmt_signed(t['diff_vs_baseline'], 3)} ({t['verdict']})" if t and math.isfinite(t["diff_vs_baseline"])
                    else "")
            lr = lrs.get(e["arm"], {})
            L.append(entry_row(e, same, (str(max(lr, key=lr.get)) if lr else "-")
                               + (f" ({e['lr_edge']})" if e.get("lr_edge") else "")))
        L.append("")
    L += _more_and_lr_sections(more, lrs, cfg, one, many)
    L += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(L) + "\n"


def _more_and_lr_sections(more, lrs, cfg, one, many) -> list[str]:
    """The report's 'More real photos' and 'Learning rates chosen' sections."""
    L: list[str] = []
    if more:
        L += ["## More real photos", "", "The fine-tuned baseline with more calibration photos, paired by "
              f"{one} (Holm over these comparisons):", "",
              "| from k | to k | error from | error to | diff (95% t-CI) | verdict |", "|---|---|---|---|---|---|"]
        for t in more:
            L.append(f"| {t['from_k']} | {t['to_k']} | {fmt(t['mean_from'])} | {fmt(t['mean_to'])} | "
                     f"{fmt_signed(t['diff_vs_baseline'], 3)} [{fmt_signed(t['diff_ci95_low'], 3)}, {fmt_signed(t['diff_ci95_high'], 3)}] | "
                     f"**{t['verdict']}** |")
        L.append("")
    if lrs:
        grid_ = cfg.get("lr_grid") or []
        L += ["## Learning rates chosen on validation", "",
              f"How often each LR was chosen (over {many} and k). An arm that mostly picks an end of the grid "
              f"({', '.join(f'{g:g}' for g in grid_)}) might do better beyond it.", "",
              "| arm | LR: times chosen |", "|---|---|"]
        for a, c in lrs.items():
            L.append(f"| {a} | {', '.join(f'{lr}: {n}' for lr, n in c.items())} |")
        L.append("")
    return L


def verdict_lines(out) -> list[str]:
    doc = json.loads((Path(out) / "summary.json").read_text())
    lines = []
    for e in doc["entries"]:
        d = e.get("diff_vs_baseline")
        lines.append(f"  k={e['budget']:<4} {e['arm']:<24} {e['verdict']:<12} error {fmt(e['mean_error_cells'])}"
                     + (f"  diff {fmt_signed(d, 3)}" if d is not None else ""))
    return lines
