import json
import math

import numpy as np
import pytest

from gazeneg.study.stats import compare, holm, mean_ci, summarize
from gazeneg.study.sweep import Arm, SweepConfig, all_arms, load_done, run_sweep
from gazeneg.study.sweep_report import build_report, read_results
from tests.conftest import load_script


def _rows(arm, values, budget=1, **extra):
    return [{"arm": arm, "budget": budget, "seed": s, "final_test_error": v, "best_test_error": v,
             "diverged": extra.get("diverged", False), "collapsed": False, "cell_accuracy": 0.5, "seconds": 1.0,
             "bias_along_direction": extra.get("bias", 0.0)} for s, v in enumerate(values)]


ARMS = {"sgd:baseline": Arm("sgd:baseline", "sgd", {}), "sgd:better": Arm("sgd:better", "sgd", {}),
        "sgd:worse": Arm("sgd:worse", "sgd", {}), "sgd:same": Arm("sgd:same", "sgd", {}),
        "sgd:noisy": Arm("sgd:noisy", "sgd", {}),
        "sgd:boom": Arm("sgd:boom", "sgd", {}), "sgd:theory": Arm("sgd:theory", "sgd", {}, predicted_bias=-0.857)}


def test_verdicts_on_fabricated_results_with_known_answer():
    rng = np.random.default_rng(0)
    base = 1.0 + rng.normal(0, 0.1, 8)
    rows = (_rows("sgd:baseline", base) + _rows("sgd:better", base - 0.3 + rng.normal(0, 0.01, 8))
            + _rows("sgd:worse", base + 0.3 + rng.normal(0, 0.01, 8))
            + _rows("sgd:same", base + rng.normal(0, 0.005, 8))
            + _rows("sgd:noisy", base + rng.normal(0, 0.3, 8))
            + _rows("sgd:boom", [4.5e31, 1.9e9] + list(base[2:] - 0.5)) + _rows("sgd:theory", base + 0.5, bias=-0.85))
    for r in rows:
        if r["arm"] == "sgd:boom":
            r["diverged"] = r["final_test_error"] > 100
    s = {e["arm"]: e for e in summarize(rows, ARMS)}
    assert s["sgd:baseline"]["verdict"] == "reference"
    assert s["sgd:better"]["verdict"] == "helps" and s["sgd:better"]["diff_vs_baseline"] == pytest.approx(-0.3, abs=0.02)
    assert s["sgd:worse"]["verdict"] == "hurts"
    assert s["sgd:same"]["verdict"] == "equivalent"       # a TOST within +-0.05 cells, not a failed t-test
    assert s["sgd:noisy"]["verdict"] == "inconclusive"
    # Diverged runs have their own verdict and count at the screen's diagonal in the comparison: the verdict
    # never contradicts the mean it is about.
    boom = s["sgd:boom"]
    assert boom["diverged_runs"] == 2 and boom["failure_verdict"].startswith("fails 2 of 8")
    assert boom["finite_mean_error_cells"] == pytest.approx(np.mean(base[2:] - 0.5))
    assert boom["diff_vs_baseline"] > 0 and boom["verdict"] in ("hurts", "inconclusive")
    assert s["sgd:theory"]["measured_bias_cells"] == pytest.approx(-0.85)
    lo, hi = s["sgd:better"]["diff_ci95_low"], s["sgd:better"]["diff_ci95_high"]
    assert lo < -0.3 + 0.02 and hi > -0.3 - 0.02 and hi < 0
    assert compare(rows, "sgd:same", "sgd:baseline", 1)["verdict"] == "equivalent"


def test_a_failed_baseline_is_compared_with_its_failures_imputed_not_invalid():
    base = [1.0, 1.1, 0.9, 8.5, 1.0, 1.05]
    rows = _rows("sgd:baseline", base) + _rows("sgd:better", [0.7, 0.8, 0.6, 0.7, 0.72, 0.74])
    rows[3]["collapsed"] = True
    rows[3]["centre_error"] = 4.0      # its own 8.5 is worse: it counts at 8.5
    s = {e["arm"]: e for e in summarize(rows, ARMS)}
    assert s["sgd:baseline"]["verdict"] == "reference" and s["sgd:baseline"]["failure_verdict"].startswith("fails 1 of 6")
    assert s["sgd:better"]["verdict"] != "invalid" and s["sgd:better"]["diff_vs_baseline"] < 0
    assert s["sgd:better"]["baseline_failed_runs"] == 1


@pytest.mark.parametrize("seed", range(40))
def test_no_hurts_with_a_better_mean_and_no_helps_with_a_worse_one(seed):
    """Issue 22 point 3: one collapsed run out of three used to make an arm "hurts" whatever its errors. On
    random results with random failures, a verdict always has the sign of the mean difference it prints,
    and of the arms' printed mean errors."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    base = 1.0 + rng.normal(0, 0.05, n)
    rows = _rows("sgd:baseline", base)
    for name in ("sgd:better", "sgd:worse", "sgd:noisy"):
        rows += _rows(name, base + rng.normal(rng.uniform(-0.4, 0.4), rng.uniform(0.001, 0.2), n))
    for r in rows:
        if rng.uniform() < 0.15:
            r["collapsed" if rng.uniform() < 0.5 else "diverged"] = True
            r["centre_error"] = 3.0
    s = {e["arm"]: e for e in summarize(rows, ARMS)}
    for e in s.values():
        if e["verdict"] in ("hurts", "helps"):
            sign = 1 if e["verdict"] == "hurts" else -1
            assert sign * e["diff_vs_baseline"] > 0
            assert sign * (e["mean_error_cells"] - s["sgd:baseline"]["mean_error_cells"]) > 0
        if e["failed_runs"]:
            assert e["failure_verdict"].startswith(f"fails {e['failed_runs']} of {e['n_seeds']}")


def test_mean_cell_accuracy_leaves_failed_runs_out():
    rows = _rows("sgd:baseline", [1.0, 1.1, 0.9])
    rows[2]["collapsed"], rows[2]["cell_accuracy"] = True, 0.0
    e = summarize(rows, ARMS)[0]
    assert e["mean_cell_accuracy"] == pytest.approx(0.5)


def test_the_no_finetune_control_is_a_holm_family_of_its_own():
    """The calibration's positive control in the wrong-label family was corrected for 20 tests it has
    nothing to do with, so no calibration gain could come out significant."""
    arms = {"ft:baseline": Arm("ft:baseline", "ft", {}),
            "ft:no_finetune": Arm("ft:no_finetune", "ft", {"no_finetune": True}, group="reference"),
            **{f"ft:x{i}": Arm(f"ft:x{i}", "ft", {}) for i in range(10)}}
    rng = np.random.default_rng(0)
    base = 1.0 + rng.normal(0, 0.05, 8)
    rows = _rows("ft:baseline", base) + _rows("ft:no_finetune", base + 0.05 + rng.normal(0, 0.003, 8))
    for i in range(10):
        rows += _rows(f"ft:x{i}", base + rng.normal(0, 0.05, 8))
    s = {e["arm"]: e for e in summarize(rows, arms)}
    nf = s["ft:no_finetune"]
    assert nf["holm_family"] != s["ft:x0"]["holm_family"]
    assert nf["p_holm"] == pytest.approx(nf["p_value"]) and nf["family_size"] == 1
    assert s["ft:x0"]["family_size"] == 10
    assert nf["verdict"] == "hurts"     # no calibration is worse than calibrating: found
    for e in s.values():
        if e["verdict"] != "reference":
            assert math.isfinite(e["detectable_cells"])


def test_holm_and_ci():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and lo == pytest.approx(2 - 4.303 * 1 / math.sqrt(3), rel=1e-3)


def test_no_two_arms_share_a_configuration():
    from gazeneg.study.sweep import run_config

    sweep = SweepConfig()
    seen = {}
    for a in all_arms():
        key = json.dumps(run_config(a, 0, 1, sweep).replace(name="").to_dict(), sort_keys=True)
        assert key not in seen, f"{a.name} and {seen[key]} are the same configuration"
        seen[key] = a.name


def test_every_theory_arm_is_sgd_combined_keep():
    for a in all_arms():
        if a.group == "theory":
            o = a.overrides
            assert (o["optimizer"], o["neg_mode"], o["neg_boundary"]) == ("sgd", "combined", "keep")
            lam = o["neg_lambda"]
            assert a.predicted_bias == pytest.approx(-lam / (1 - lam) * 2.0)


def test_sweep_resumes_and_reports(tiny_dataset, tmp_path):
    arms = ["adam:baseline", "adam:naive_l1.5", "adam:symmetric_k4", "adam:lr_control_0.2", "sgd:baseline",
            "sgd:one_sided_l0.3", "cls:baseline"]
    # Small batches: the tiny set has 576 training photos, and the sweep's batch of 256 would give 3 steps an epoch.
    sw = SweepConfig(data=str(tiny_dataset), out=str(tmp_path / "sw"), seeds=2, budgets=(1,), arms=arms,
                     base={"epochs": 3, "val_subjects": 1, "test_subjects": 1, "batch_size": 16})
    # Interrupted after 5 runs: only those are in results.csv.
    run_sweep(SweepConfig(**{**sw.__dict__, "arms": arms}), progress=False, sequential=True)
    rows = read_results(tmp_path / "sw")
    assert len(rows) == 14
    # Drop the last 3 rows as if the sweep had been stopped, then re-run: only they are redone.
    lines = (tmp_path / "sw" / "results.csv").read_text().splitlines(keepends=True)
    (tmp_path / "sw" / "results.csv").write_text("".join(lines[:-3]))
    assert len(load_done(tmp_path / "sw")) == 11
    run_sweep(sw, progress=False, sequential=True)
    rows2 = read_results(tmp_path / "sw")
    assert len(rows2) == 14
    key = {(r["arm"], r["seed"]): r["final_test_error"] for r in rows}
    for r in rows2:  # same seed, same numbers
        assert r["final_test_error"] == key[(r["arm"], r["seed"])] or (
            math.isnan(r["final_test_error"]) and math.isnan(key[(r["arm"], r["seed"])]))
    doc = build_report(tmp_path / "sw")
    assert (tmp_path / "sw" / "report.md").exists()
    for png in ("diff_vs_baseline.png", "error_vs_lambda.png", "learning_curves.png"):
        assert (tmp_path / "sw" / png).stat().st_size > 1000
    s = json.loads((tmp_path / "sw" / "summary.json").read_text())
    e = {x["arm"]: x for x in s["entries"]}
    for k in ("arm", "budget", "n_seeds", "mean_error_cells", "ci95_low", "ci95_high", "verdict", "diverged_runs"):
        assert k in e["adam:naive_l1.5"]
    assert e["adam:baseline"]["verdict"] == "reference"
    assert e["adam:naive_l1.5"]["verdict"] == "hurts"
    assert "predicted_bias_cells" in e["sgd:one_sided_l0.3"]
    assert doc["same_as"]
    with pytest.raises(ValueError, match="holds a different sweep"):
        run_sweep(SweepConfig(**{**sw.__dict__, "seeds": 3}), progress=False, sequential=True)


def test_sweep_on_a_bad_data_folder_fails_clearly_and_writes_nothing(tmp_path):
    from gazeneg.data.dataset import DatasetError

    out = tmp_path / "sweep"
    with pytest.raises(DatasetError, match="no such dataset folder"):
        run_sweep(SweepConfig.quick(data=str(tmp_path / "missing"), out=str(out)), progress=False)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "labels.csv").write_text("path,row\n")
    with pytest.raises(DatasetError, match="meta.json"):
        run_sweep(SweepConfig.quick(data=str(tmp_path / "half"), out=str(out)), progress=False)
    assert not out.exists()


def _fabricated_sweep(arm_effects: dict, n=5, budgets=(1, 2)):
    """Result rows as results.csv would hold them: arm -> effect in cells added to the baseline's error."""
    rng = np.random.default_rng(1)
    rows = []
    for b in budgets:
        base = 1.2 - 0.05 * b + rng.normal(0, 0.05, n)
        for arm, eff in {"sgd:baseline": 0.0, **arm_effects}.items():
            for s in range(n):
                rows.append({"arm": arm, "family": arm.split(":")[0], "group": "main", "optimizer": "sgd", "seed": s,
                             "budget": b, "final_test_error": base[s] + eff + rng.normal(0, 0.005),
                             "best_test_error": base[s], "final_val_error": 1.0, "best_val_error": 1.0,
                             "signed_error_row": 0.0, "signed_error_col": 0.0, "bias_along_direction": -0.8,
                             "train_bias_along_direction": -0.8, "cell_accuracy": 0.3, "diverged": False,
                             "collapsed": False, "stop_reason": "", "guard_counts": {}, "watchdog_events": [],
                             "logit_absmax": None, "seconds": 1.0, "n_train": 100})
    return rows


def test_report_conclusions_follow_the_data(tmp_path):
    """Fed fabricated results in which a wrong-label arm helps, the report says so; fed results in which
    nothing helps, it says that instead. No conclusion sentence is fixed text."""
    helps = build_report(tmp_path / "a", rows=_fabricated_sweep({"sgd:original_pred_side": -0.2,
                                                                 "sgd:naive_l0.3": +0.3}))
    text = (tmp_path / "a" / "report.md").read_text()
    e = {(x["arm"], x["budget"]): x for x in helps["entries"]}
    assert e[("sgd:original_pred_side", 2)]["verdict"] == "helps"
    assert "**helped**: sgd:original_pred_side" in text
    assert "Wrong labels helped in 2 of 4" in text and "No wrong-label arm helped" not in text
    none = build_report(tmp_path / "b", rows=_fabricated_sweep({"sgd:original_pred_side": 0.0,
                                                                "sgd:naive_l0.3": +0.3}))
    text = (tmp_path / "b" / "report.md").read_text()
    assert "No wrong-label arm helped at any budget (2 arms)" in text
    assert "**equivalent** to the baseline within +-0.05 cells: sgd:original_pred_side" in text
    assert {x["verdict"] for x in none["entries"] if x["arm"] == "sgd:naive_l0.3"} == {"hurts"}
    for png in ("diff_vs_baseline.png", "error_vs_lambda.png"):
        assert (tmp_path / "b" / png).stat().st_size > 1000


def test_sweep_table_prints_the_verdicts(tmp_path, capsys):
    mod = load_script("sweep_table")
    build_report(tmp_path / "a", rows=_fabricated_sweep({"sgd:original_pred_side": -0.2}))
    assert mod.main([str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "| sgd:original_pred_side | -0.20 [" in out and "**helps**" in out and "| budget 1 | budget 2 |" in out
    assert mod.cli([str(tmp_path / "missing")]) == 2   # one line on stderr (tests/test_console.py)


def test_a_consistent_but_tiny_difference_is_called_too_small_to_matter(tmp_path):
    """Issue 24 item 7: a helps/hurts verdict whose mean difference lies inside the margin says, as the personal
    report does, that it is too small to matter; one outside the margin does not."""
    build_report(tmp_path / "t", rows=_fabricated_sweep({"sgd:original_pred_side": +0.03, "sgd:naive_l0.3": +0.3}),
                 margin=0.05)
    text = (tmp_path / "t" / "report.md").read_text()
    answer = text.split("## The answer, in plain words")[1].split("##")[0]
    assert "sgd:original_pred_side (+0.0" in answer and "inside the +-0.05 margin: too small to matter" in answer
    assert "**hurt**: sgd:naive_l0.3, sgd" in answer and "sgd:naive_l0.3 (+" not in answer


def test_replicates_give_every_seed_its_own_people_and_no_overlap_correction(tmp_path):
    """--replicates: seed s trains and tests on the synthetic set whose people are drawn with seed s and holds
    out its own first group, so the seeds are independent replications; the report then drops the
    Nadeau-Bengio correction (ratio 0) and says why. Without it the seeds stay folds of one set of people."""
    from gazeneg.config import ConfigError
    from gazeneg.study.sweep import run_config, seed_data
    from gazeneg.study.sweep_report import independent_seeds, overlap_ratio

    arm = {a.name: a for a in all_arms()}["sgd:baseline"]
    folds = SweepConfig(data="synthetic:4", out="x")
    reps = SweepConfig(data="synthetic:4", out="x", replicates=True)
    assert [run_config(arm, s, 1, folds).data for s in range(3)] == ["synthetic:4"] * 3
    assert [run_config(arm, s, 1, folds).split_fold for s in range(3)] == [0, 1, 2]
    assert [run_config(arm, s, 1, reps).data for s in range(3)] == ["synthetic:4:0", "synthetic:4:1", "synthetic:4:2"]
    assert [run_config(arm, s, 1, reps).split_fold for s in range(3)] == [0, 0, 0]
    assert seed_data(SweepConfig(data="synthetic", out="x", replicates=True), 3) == "synthetic:2:3"
    with pytest.raises(ConfigError, match="--replicates .* not the folder"):
        seed_data(SweepConfig(data=str(tmp_path), out="x", replicates=True), 1)

    rows = _fabricated_sweep({"sgd:original_pred_side": -0.2}, n=5, budgets=(1,))
    for r in rows:
        r.update(n_test_groups=5, n_train_groups=17)
    assert not independent_seeds(rows) and overlap_ratio(rows) == pytest.approx(5 / 17)   # no data column: folds
    for r in rows:
        r["data"] = "synthetic:4"
    assert not independent_seeds(rows) and overlap_ratio(rows) == pytest.approx(5 / 17)
    for r in rows:
        r["data"] = f"synthetic:4:{r['seed']}"
    assert independent_seeds(rows) and overlap_ratio(rows) == 0.0
    doc = build_report(tmp_path / "rep", rows=rows)
    text = (tmp_path / "rep" / "report.md").read_text()
    assert doc["overlap_ratio"] == 0.0
    assert "the seeds are independent" in text and "no overlap correction" in text and "Nadeau-Bengio" not in text
    folds_doc = build_report(tmp_path / "folds", rows=[{**r, "data": "synthetic:4"} for r in rows])
    e_rep = {(x["arm"], x["budget"]): x for x in doc["entries"]}[("sgd:original_pred_side", 1)]
    e_fold = {(x["arm"], x["budget"]): x for x in folds_doc["entries"]}[("sgd:original_pred_side", 1)]
    # the same differences, read as independent units: the standard error sd/sqrt(n), not sd sqrt(1/n + 5/17)
    assert e_rep["diff_se"] == pytest.approx(e_fold["diff_se"] * math.sqrt(0.2 / (0.2 + 5 / 17)))


def test_the_report_says_how_many_seeds_would_detect_the_more_frames_effect():
    """Beside the detectable effects: how many seeds would make an effect the size of what 4x more real frames
    did detectable (stats.units_for, each comparison's own spread and family); with overlapping folds, that no
    number of folds would, and what independent replications would need."""
    from gazeneg.study.stats import units_for
    from gazeneg.study.sweep_report import _seeds_needed

    more = [{"diff_vs_baseline": -0.2}, {"diff_vs_baseline": -0.1}, {"diff_vs_baseline": -0.3}]
    ent = [{"diff_sd": sd, "family_size": 4, "n_pairs": 5} for sd in (0.02, 0.05, 0.08)]
    text = _seeds_needed(ent, more, 0.0)
    assert "(0.200 cells, the median over the baselines)" in text
    assert f"about {math.ceil(units_for(0.2, 0.05, 4))} seeds (this run: 5)" in text
    folds = _seeds_needed(ent, more, 0.29)
    assert units_for(0.2, 0.05, 4, 0.29) == math.inf
    assert "no number of seeds would do" in folds and f"would need about {math.ceil(units_for(0.2, 0.05, 4))}" in folds
    assert _seeds_needed(ent, [], 0.0) == ""
