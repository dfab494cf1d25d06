"""summary.json, report.md and the PNG plots of a wrong-label sweep, from its results.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .data import atomic_write_text  # noqa: E402
from .experiment import all_arms, centre_error_reference  # noqa: E402
from .stats import compare, summarize  # noqa: E402

FLOATS = ("final_test_error", "best_test_error", "final_val_error", "signed_error_row", "signed_error_col",
          "bias_along_direction", "train_bias_along_direction", "cell_accuracy", "seconds")


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


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _f(x, nd=3):
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _p(x):
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def build_report(out, *, elapsed: float | None = None, command: str = "") -> dict:
    out = Path(out)
    arms = {a.name: a for a in all_arms()}
    rows = read_results(out)
    names = [a for a in arms if any(r["arm"] == a for r in rows)]
    arms = {a: arms[a] for a in names}
    summary = summarize(rows, arms)
    budgets = sorted({r["budget"] for r in rows})
    theory = []
    for b in budgets:
        for fam in ("sgd", "adam"):
            a, c = f"{fam}:symmetric_k4", f"{fam}:lr_control_0.2"
            if any(r["arm"] == a and r["budget"] == b for r in rows) and any(r["arm"] == c and r["budget"] == b for r in rows):
                theory.append(compare(rows, a, c, b))
    doc = {"entries": summary, "symmetric_vs_control": theory, "elapsed_seconds": elapsed, "command": command}
    atomic_write_text(out / "summary.json", json.dumps(_clean(doc), indent=2))
    plots = make_plots(out, rows, summary, arms)
    atomic_write_text(out / "report.md", render_markdown(summary, theory, rows, plots, budgets, elapsed, command))
    return doc


# ----------------------------------------------------------------------------------------------
# Plots


def make_plots(out: Path, rows, summary, arms) -> list[str]:
    made = []
    budgets = sorted({r["budget"] for r in rows})
    top = budgets[-1]
    ent = {(e["arm"], e["budget"]): e for e in summary}

    # Error vs lambda: naive random-direction arms and one-sided theory arms.
    fig, ax = plt.subplots(figsize=(6, 4))
    for fam, marker in (("sgd", "o"), ("adam", "s")):
        xs, ys = [0.0], [ent.get((f"{fam}:baseline", top), {}).get("finite_mean_error_cells", math.nan)]
        for lam in (0.3, 1.0, 1.5):
            e = ent.get((f"{fam}:naive_l{lam}", top))
            if e:
                xs.append(lam)
                ys.append(e["finite_mean_error_cells"])
        if len(xs) > 1:
            ax.plot(xs, ys, marker=marker, label=f"{fam}: naive, random wrong point")
    xs, ys = [], []
    for lam in (0.1, 0.3, 0.5):
        e = ent.get((f"sgd:one_sided_l{lam}", top))
        if e:
            xs.append(lam)
            ys.append(e["finite_mean_error_cells"])
    if xs:
        ax.plot(xs, ys, marker="^", label="sgd: one-sided (theory arms)")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("lambda (total weight of the wrong points)")
    ax.set_ylabel("final test error (cells, log)")
    ax.set_title(f"Error vs lambda (budget {top} frame(s)/cell)")
    ax.legend(fontsize=7)
    made.append(_save(fig, out / "error_vs_lambda.png"))

    # Error vs B: the error-bound arms on a diverging Lambda = 1.5.
    bs = [(float(a.split("_B")[1].split("_")[0]), ent[(a, top)]) for a in arms if a.startswith("sgd:bound_B")
          and (a, top) in ent]
    if bs:
        fig, ax = plt.subplots(figsize=(6, 4))
        bs.sort()
        ax.errorbar([b for b, _ in bs], [e["finite_mean_error_cells"] for _, e in bs],
                    yerr=[[max(0, e["finite_mean_error_cells"] - e["ci95_low"]) for _, e in bs],
                          [max(0, e["ci95_high"] - e["finite_mean_error_cells"]) for _, e in bs]],
                    marker="o", label="measured test error")
        ax.plot([b for b, _ in bs], [abs(e["measured_bias_cells"]) for _, e in bs], marker="x", ls="--",
                label="|measured bias| along d")
        ax.plot([b for b, _ in bs], [b for b, _ in bs], color="grey", ls=":", label="theory: settles near B")
        base = ent.get(("sgd:baseline", top))
        if base:
            ax.axhline(base["finite_mean_error_cells"], color="green", lw=1, label="baseline (lambda = 0)")
        ax.set_xlabel("error bound B (cells)")
        ax.set_ylabel("cells")
        ax.set_title("One-sided Lambda = 1.5 under the error bound")
        ax.legend(fontsize=7)
        made.append(_save(fig, out / "error_vs_bound.png"))

    # Learning curves, seed 0, largest budget, divergences marked.
    curves = read_curves(out)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    show = [a for a in ("sgd:baseline", "sgd:naive_l0.3", "sgd:naive_l1.5", "sgd:guard_watchdog",
                        "sgd:original_pred_side", "adam:baseline", "adam:naive_l1.5", "adam:original_pred_side")
            if a in arms]
    for a in show:
        c = curves.get(f"{a}|0|{top}")
        if not c:
            continue
        v = np.array([x if x is not None and math.isfinite(x) else np.nan for x in c["val"]], float)
        (line,) = ax.plot(np.arange(len(v)), v, label=a)
        bad = ~np.isfinite(v)
        r = next((r for r in rows if r["arm"] == a and r["seed"] == 0 and r["budget"] == top), None)
        if bad.any():
            i = int(np.argmax(bad))
            ax.axvline(i, color=line.get_color(), ls="--", lw=1)
            ax.annotate("diverged", (i, np.nanmax(v[:i]) if i else 1), color=line.get_color(), fontsize=7)
        if r and r["watchdog_events"]:
            for ev in r["watchdog_events"]:
                ax.plot(ev["epoch"], v[ev["epoch"]] if ev["epoch"] < len(v) else np.nan, "x", ms=9,
                        color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error (cells, log)")
    ax.set_title(f"Learning curves (seed 0, budget {top}); x = watchdog restore, dashed = non-finite")
    ax.legend(fontsize=6, ncol=2)
    made.append(_save(fig, out / "learning_curves.png"))

    # Guard firing rates.
    labels, rates = [], []
    for a in arms:
        rs = [r for r in rows if r["arm"] == a and r["budget"] == top]
        g = [r["guard_counts"] for r in rs if r["guard_counts"].get("guard_pairs_seen")]
        for key in ("error_bound", "direction", "grad_cap", "confidence", "boundary_drop"):
            fired = sum(x.get(f"guard_{key}_fired", 0) for x in g)
            seen = sum(x.get("guard_pairs_seen", 0) for x in g)
            if seen and f"guard_{key}_fired" in (g[0] if g else {}) and (fired or key != "boundary_drop"):
                denom = seen if key != "grad_cap" else max(1, sum(r["n_train"] for r in rs) // 64 * 25)
                labels.append(f"{a} [{key}]")
                rates.append(fired / denom)
    if labels:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
        ax.barh(labels, rates)
        ax.set_xlabel("fraction blocked (grad_cap: fraction of steps capped)")
        ax.set_xlim(0, 1)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"Guard firing rates (budget {top})")
        made.append(_save(fig, out / "guard_firing.png"))

    # Predicted vs measured bias.
    pts = [e for e in summary if e.get("predicted_bias_cells") is not None and e["budget"] == top]
    if pts:
        fig, ax = plt.subplots(figsize=(5, 5))
        for e in pts:
            ax.errorbar(e["predicted_bias_cells"], e["measured_bias_cells"],
                        yerr=[[e["measured_bias_cells"] - e["measured_bias_ci95"][0]],
                              [e["measured_bias_ci95"][1] - e["measured_bias_cells"]]], marker="o", capsize=3)
            ax.annotate(e["arm"].split(":")[1], (e["predicted_bias_cells"], e["measured_bias_cells"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        lim = [min(e["predicted_bias_cells"] for e in pts) - 0.5, 0.5]
        ax.plot(lim, lim, color="grey", ls=":", label="measured = predicted")
        ax.set_xlabel("predicted signed error along d (cells)")
        ax.set_ylabel("measured mean signed test error along d (cells)")
        ax.set_title("Theory vs measurement")
        ax.legend(fontsize=7)
        made.append(_save(fig, out / "bias_predicted_vs_measured.png"))

    # Classification: logits and accuracy over epochs.
    cls = [a for a in arms if a.startswith("cls:")]
    if cls:
        fig, ax = plt.subplots(figsize=(6, 4))
        for a in cls:
            c = curves.get(f"{a}|0|{top}")
            if c and any(x is not None for x in c.get("logit") or []):
                ax.plot([x if x is not None else np.nan for x in c["logit"]], label=a)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean max |logit| on validation (log)")
        ax.set_title("Classification: do the logits run off?")
        ax.legend(fontsize=7)
        made.append(_save(fig, out / "cls_logits.png"))
    return made


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path.name


# ----------------------------------------------------------------------------------------------
# Markdown


def render_markdown(summary, theory, rows, plots, budgets, elapsed, command) -> str:
    L = ["# Does training on deliberately wrong labels with a negative learning rate help?", ""]
    if command:
        L += [f"Command: `{command}`" + (f" ({elapsed:.0f} s)" if elapsed else ""), ""]
    n_seeds = max(e["n_seeds"] for e in summary)
    L += [f"Runs: {len(rows)} ({n_seeds} seeds per arm, budgets {budgets} frames per cell per training subject; "
          "seed s holds out the s-th group of subjects, the same group for every arm, so each comparison is paired and "
          "the seeds together test most of the people). Error = final-epoch mean Euclidean test error in grid cells "
          "on held-out subjects. Each arm is compared with its own baseline (same optimizer family, same seeds) "
          "by a paired t-test, Holm-corrected across the arms of a budget (alpha 0.05); the Wilcoxon p and a "
          "bootstrap 95% CI of the paired difference are shown beside it. A run that diverges (non-finite) or "
          "collapses (ends worse than always answering the screen centre) counts as *hurts*.", ""]
    L += _answer(summary, theory, budgets)
    for b in budgets:
        L += [f"## Budget: {b} frame(s) per cell per subject", "",
              "| arm | what it is | error (mean, 95% CI) | diff vs baseline (bootstrap CI) | p (t, Holm) | p Wilcoxon "
              "| verdict | diverged/collapsed | best-checkpoint error |",
              "|---|---|---|---|---|---|---|---|---|"]
        for e in [e for e in summary if e["budget"] == b]:
            n, k = e["n_seeds"], e["diverged_runs"]
            if k == n:      # every run ran off: its numbers (up to 1e35 and inf) only say that
                err, diff = f"diverged ({k}/{n})", "diverged"
            elif k:         # the interval would mix finite errors with run-away ones: the finite mean only
                err, diff = f"{_f(e['finite_mean_error_cells'])} (mean of the {n - k} finite runs)", f"n/a ({k} diverged)"
            else:
                err = f"{_f(e['finite_mean_error_cells'])} [{_f(e['ci95_low'])}, {_f(e['ci95_high'])}]"
                diff = (f"{_f(e.get('diff_vs_baseline'))} [{_f(e.get('diff_ci95_low'))}, "
                        f"{_f(e.get('diff_ci95_high'))}]" if "diff_vs_baseline" in e else "")
            best = e["best_checkpoint_error_cells"]
            best = _f(best) if isinstance(best, float) and math.isfinite(best) and best < 1e3 else "diverged"
            pt, pw = (_p(e.get("p_holm")), _p(e.get("p_wilcoxon"))) if k < n else ("n/a", "n/a")
            L.append(f"| {e['arm']} | {e['note']} | {err} | {diff} | {pt} | {pw} "
                     f"| **{e['verdict']}** | {e['diverged_runs']}/{e['collapsed_runs']} of {e['n_seeds']} | "
                     f"{best} |")
        L.append("")
    L += _theory_section(summary, theory, budgets)
    L += _cls_section(summary, budgets)
    L += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    L += _notes()
    return "\n".join(L) + "\n"


def _answer(summary, theory, budgets) -> list[str]:
    top = budgets[-1]
    # The complementary-only arm answers a different question (no true labels at all): it is judged
    # against chance and full supervision in its own section, not listed as "hurt" here.
    ent = [e for e in summary if e["budget"] == top and e["verdict"] != "reference"
           and e.get("group") != "complement_only"]
    helps = [e["arm"] for e in ent if e["verdict"] == "helps"]
    hurts = [e["arm"] for e in ent if e["verdict"] == "hurts"]
    same = [e["arm"] for e in ent if e["verdict"] == "no significant difference"]
    div = [e["arm"] for e in ent if e["diverged_runs"] + e["collapsed_runs"] > 0]
    L = ["## The answer, in plain words", ""]
    L.append(f"At the largest budget ({top} frame(s)/cell): **helped**: {', '.join(helps) or 'nothing'}; "
             f"**hurt**: {', '.join(hurts) or 'nothing'}; **no significant difference**: {', '.join(same) or 'none'}.")
    L.append("")
    if div:
        L.append(f"Diverged or collapsed in at least one run: {', '.join(div)}.")
        L.append("")
    co = [e for e in summary if e["budget"] == top and e.get("group") == "complement_only"]
    if co:
        L.append(f"Without any true label (complementary labels only, {co[0]['arm']}): "
                 f"{_f(co[0]['finite_mean_error_cells'])} cells; see 'Classification' below for chance and "
                 "full supervision.")
        L.append("")
    L += [
        "Why (SCIENCE.md section 1): a wrong point w is computed from the true point y, so (photo, w) carries no "
        "information that (photo, y) did not. Per photo, 1/2|f - y|^2 - lambda/2 |f - w|^2 = (1 - lambda)/2 |f - f*|^2 "
        "+ const with f* = y - lambda/(1 - lambda) d: a one-sided wrong point moves the optimum *away from the truth*; "
        "symmetric wrong points only rescale the gradient by (1 - Lambda), i.e. lower the learning rate under SGD and "
        "do nearly nothing under Adam, which normalises the gradient's scale; at Lambda >= 1 the loss is linear or "
        "concave in f and training runs away. Guards limit the damage (the error bound turns runaway into an error "
        "near B; bounded repulsion keeps y a minimiser) but cannot make wrong labels add information. Placing w on "
        "the prediction's side of the truth (the original idea) makes the negative step pull toward y: it is an "
        "extra L1-like loss on the true label, a change of loss shape, not new data.",
        "",
        "So, for someone with too little data: the measured effect of wrong labels is at best nothing and often harm. "
        "More real frames (compare the baselines across budgets) help; wrong labels do not substitute for them.",
        "",
    ]
    bs = [(e["budget"], e["finite_mean_error_cells"]) for e in summary if e["arm"] == "adam:baseline"]
    if len(bs) > 1:
        L.append("Baseline (Adam) error by budget: " + ", ".join(f"{b} frame(s): {_f(v)} cells" for b, v in bs) + ".")
        L.append("")
    return L


def _in_band(x, pred: float, band: float) -> str:
    return "n/a" if x is None else "yes" if math.isfinite(x) and abs(x - pred) <= band else "NO"


def _theory_section(summary, theory, budgets) -> list[str]:
    L = ["## Theory beside measurement", "",
         "One-sided arms: SGD, combined loss, `keep` boundary, D = 2; the wrong point lies straight down the rows. "
         "Predicted mean signed error along d: -lambda/(1 - lambda) D (away from w). Bound arms: one-sided "
         "Lambda = 1.5 (which alone diverges) under the error bound B: predicted to settle near -B. Acceptance band: "
         "within 25% or 0.1 cells, whichever is larger. Measured: the mean signed test error along d over the seeds, on "
         "held-out people (each seed holds out a different group, so the seeds together cover most people). It "
         "also carries each held-out person's own offset, which no model trained on others can know, and the "
         "baseline's signed error shows its size; the theory predicts the shift from the baseline, so that is "
         "checked too, and so is the signed error on the training photos, where the fixed point is defined "
         "exactly.", "",
         "| arm | budget | predicted | measured on held-out people (95% CI) | baseline's own | measured - baseline "
         "| on training photos | within band (measured / shift / training) |",
         "|---|---|---|---|---|---|---|---|"]
    for e in summary:
        if e.get("predicted_bias_cells") is None:
            continue
        pred, meas = e["predicted_bias_cells"], e["measured_bias_cells"]
        band = max(0.25 * abs(pred), 0.1)
        shift, tr = e.get("measured_shift_cells"), e.get("train_bias_cells")
        inband = [_in_band(x, pred, band) for x in (meas, shift, tr)]
        ci = e.get("measured_bias_ci95") or [math.nan, math.nan]
        L.append(f"| {e['arm']} | {e['budget']} | {_f(pred)} | {_f(meas)} [{_f(ci[0])}, {_f(ci[1])}] | "
                 f"{_f(e.get('baseline_bias_cells'))} | {_f(shift)} | {_f(tr)} | "
                 f"{' / '.join(inband)} |")
    L.append("")
    if theory:
        L += ["Symmetric K = 4, Lambda = 0.8 against its LR-matched control (baseline at lr x 0.2), paired by seed. "
              "Predicted: identical under SGD (the gradient is exactly (1 - Lambda)(f - y)); under Adam the symmetric "
              "arm should instead match the full-LR baseline, since Adam divides out the gradient's scale.", "",
              "| pair | budget | mean symmetric | mean control | diff (bootstrap CI) | p (paired t) | verdict |",
              "|---|---|---|---|---|---|---|"]
        for t in theory:
            L.append(f"| {t['a']} vs {t['b']} | {t['budget']} | {_f(t['mean_a'])} | {_f(t['mean_b'])} | "
                     f"{_f(t['diff_vs_baseline'])} [{_f(t['diff_ci95_low'])}, {_f(t['diff_ci95_high'])}] | "
                     f"{_p(t['p_value'])} | {t['verdict']} |")
        L.append("")
    L += ["Literal step vs combined loss under Adam: the literal method runs a *separate* optimizer at learning rate "
          "-lambda*lr. Adam's update is lr * m/sqrt(v), roughly lr per parameter whatever the gradient's size, so the "
          "negative step moves the weights by about lambda*lr every step even where its gradient is tiny; in the "
          "combined loss the wrong-label gradient is added *before* Adam's normalisation and is scaled together "
          "with the true-label gradient. Under SGD both are the same update to first order in lr "
          "(tests/test_guards.py checks this).", ""]
    return L


def _cls_section(summary, budgets) -> list[str]:
    ent = [e for e in summary if e["family"] == "cls"]
    if not ent:
        return []
    L = ["## Classification: 144-way softmax with known-wrong cells (SCIENCE.md section 2)", "",
         "| arm | budget | cell accuracy (chance 0.7%) | error (cells) | final mean max abs logit | diverged/collapsed | verdict |",
         "|---|---|---|---|---|---|---|"]
    for e in ent:
        L.append(f"| {e['arm']} | {e['budget']} | {e['mean_cell_accuracy']:.1%} | {_f(e['finite_mean_error_cells'])} | "
                 f"{_f(e.get('final_logit_absmax'), 1)} | {e['diverged_runs']}/{e['collapsed_runs']} | {e['verdict']} |")
    L.append("")
    for b in budgets:
        base = next((e for e in ent if e["arm"] == "cls:baseline" and e["budget"] == b), None)
        co = next((e for e in ent if e["arm"] == "cls:complement_only" and e["budget"] == b), None)
        if base and co:
            L.append(f"Complementary-only (budget {b}): trained with NO true label, only wrong cells, it reaches "
                     f"{co['mean_cell_accuracy']:.1%} cell accuracy and {_f(co['finite_mean_error_cells'])} cells mean "
                     f"error, against chance 0.7% (and {_f(centre_error_reference(), 2)} cells for always guessing the centre) and full supervision's "
                     f"{base['mean_cell_accuracy']:.1%} / {_f(base['finite_mean_error_cells'])} cells: here the wrong "
                     "labels are the only source of information, and they do carry it.")
    L.append("")
    return L


def _notes() -> list[str]:
    return ["## Notes", "",
            "- Boundary: the main arms reflect off-grid wrong points back onto the grid; the theory arms keep them "
            "(off-grid allowed), where the math is exact. Clipping would break the symmetry of symmetric sets "
            "(points at the edge lose their outward partner), which biases predictions inward.",
            "- The sweep trains a small MLP on pooled pixels plus the face box so that hundreds of runs fit in "
            "minutes; the conclusions are about the method, and SCIENCE.md's algebra holds for any model.",
            "- Raw numbers: results.csv (one row per run), curves.jsonl (validation error per epoch), summary.json.",
            ""]


def verdict_lines(out) -> list[str]:
    doc = json.loads((Path(out) / "summary.json").read_text())
    return [f"  budget {e['budget']:>2}  {e['arm']:<28} {e['verdict']:<26} error "
            + (_f(e['finite_mean_error_cells']) if e["diverged_runs"] < e["n_seeds"] else "diverged")
            + (f"  diff {e['diff_vs_baseline']:+.3f}" if e.get("diff_vs_baseline") is not None
               and e["diverged_runs"] == 0 else "")
            + (f"  ({e['diverged_runs']} diverged, {e['collapsed_runs']} collapsed)"
               if e["diverged_runs"] or e["collapsed_runs"] else "")
            for e in doc["entries"]]
