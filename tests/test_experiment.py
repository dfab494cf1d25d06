import json
import math

import numpy as np
import pytest

from gazeneg.experiment import Arm, SweepConfig, all_arms, load_done, run_sweep
from gazeneg.report import build_report, read_results
from gazeneg.stats import compare, holm, mean_ci, summarize


def _rows(arm, values, budget=1, **extra):
    return [{"arm": arm, "budget": budget, "seed": s, "final_test_error": v, "best_test_error": v,
             "diverged": extra.get("diverged", False), "collapsed": False, "cell_accuracy": 0.5, "seconds": 1.0,
             "bias_along_direction": extra.get("bias", 0.0)} for s, v in enumerate(values)]


ARMS = {"sgd:baseline": Arm("sgd:baseline", "sgd", {}), "sgd:better": Arm("sgd:better", "sgd", {}),
        "sgd:worse": Arm("sgd:worse", "sgd", {}), "sgd:same": Arm("sgd:same", "sgd", {}),
        "sgd:boom": Arm("sgd:boom", "sgd", {}), "sgd:theory": Arm("sgd:theory", "sgd", {}, predicted_bias=-0.857)}


def test_verdicts_on_fabricated_results_with_known_answer():
    rng = np.random.default_rng(0)
    base = 1.0 + rng.normal(0, 0.1, 8)
    rows = (_rows("sgd:baseline", base) + _rows("sgd:better", base - 0.3 + rng.normal(0, 0.01, 8))
            + _rows("sgd:worse", base + 0.3 + rng.normal(0, 0.01, 8))
            + _rows("sgd:same", base + rng.normal(0, 0.05, 8))
            + _rows("sgd:boom", [math.inf] * 2 + list(base[2:]), diverged=True)
            + _rows("sgd:theory", base + 0.5, bias=-0.85))
    for r in rows:
        if r["arm"] == "sgd:boom":
            r["diverged"] = not math.isfinite(r["final_test_error"])
    s = {e["arm"]: e for e in summarize(rows, ARMS)}
    assert s["sgd:baseline"]["verdict"] == "reference"
    assert s["sgd:better"]["verdict"] == "helps" and s["sgd:better"]["diff_vs_baseline"] == pytest.approx(-0.3, abs=0.02)
    assert s["sgd:worse"]["verdict"] == "hurts"
    assert s["sgd:same"]["verdict"] == "no significant difference"
    assert s["sgd:boom"]["verdict"] == "hurts" and s["sgd:boom"]["diverged_runs"] == 2
    assert math.isnan(s["sgd:boom"]["mean_error_cells"])
    assert s["sgd:theory"]["measured_bias_cells"] == pytest.approx(-0.85)
    lo, hi = s["sgd:better"]["diff_ci95_low"], s["sgd:better"]["diff_ci95_high"]
    assert lo < -0.3 + 0.02 and hi > -0.3 - 0.02 and hi < 0
    c = compare(rows, "sgd:same", "sgd:baseline", 1)
    assert c["verdict"] == "no significant difference"


def test_holm_and_ci():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and lo == pytest.approx(2 - 4.303 * 1 / math.sqrt(3), rel=1e-3)


def test_every_theory_arm_is_sgd_combined_keep():
    for a in all_arms():
        if a.group == "theory":
            o = a.overrides
            assert (o["optimizer"], o["neg_mode"], o["neg_boundary"]) == ("sgd", "combined", "keep")
            lam = o["neg_lambda"]
            assert a.predicted_bias == pytest.approx(-lam / (1 - lam) * 2.0)


def test_sweep_resumes_and_reports(tiny_dataset, tmp_path):
    arms = ["sgd:baseline", "sgd:naive_l1.5", "sgd:symmetric_k4", "sgd:lr_control_0.2", "sgd:one_sided_l0.3",
            "cls:baseline", "cls:negated_ce"]
    sw = SweepConfig(data=str(tiny_dataset), out=str(tmp_path / "sw"), seeds=2, budgets=(1,), arms=arms,
                     base={"epochs": 3, "val_subjects": 1, "test_subjects": 1})
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
    for png in ("error_vs_lambda.png", "learning_curves.png", "bias_predicted_vs_measured.png"):
        assert (tmp_path / "sw" / png).stat().st_size > 1000
    s = json.loads((tmp_path / "sw" / "summary.json").read_text())
    e = {x["arm"]: x for x in s["entries"]}
    for k in ("arm", "budget", "n_seeds", "mean_error_cells", "ci95_low", "ci95_high", "verdict", "diverged_runs"):
        assert k in e["sgd:naive_l1.5"]
    assert e["sgd:naive_l1.5"]["verdict"] == "hurts"
    assert "predicted_bias_cells" in e["sgd:one_sided_l0.3"]
    assert doc["symmetric_vs_control"]
    with pytest.raises(ValueError, match="holds a different sweep"):
        run_sweep(SweepConfig(**{**sw.__dict__, "seeds": 3}), progress=False, sequential=True)


def test_sweep_on_a_bad_data_folder_fails_clearly_and_writes_nothing(tmp_path):
    from gazeneg.data import DatasetError

    out = tmp_path / "sweep"
    with pytest.raises(DatasetError, match="no such dataset folder"):
        run_sweep(SweepConfig.quick(data=str(tmp_path / "missing"), out=str(out)), progress=False)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "labels.csv").write_text("path,row\n")
    with pytest.raises(DatasetError, match="meta.json"):
        run_sweep(SweepConfig.quick(data=str(tmp_path / "half"), out=str(out)), progress=False)
    assert not out.exists()
