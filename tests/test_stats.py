"""The sweeps' statistics: the interval's coverage and the equivalence test's error on normal, heavy-tailed
and skewed differences (by simulation), the verdicts, failures, families, power."""

import math

import numpy as np
import pytest

from gazeneg.study.stats import (
    detectable_effect,
    failure_interval,
    failure_verdict,
    mean_ci,
    paired_test,
    shape_free_ci,
    tost_p,
    units_for,
    verdict,
)


def _shape(name: str, rng, size) -> np.ndarray:
    """Mean 0, sd 1 draws: normal, Student t3 (heavy tails), standard log-normal (right skew 6.2; the
    harmful arms' differences are right-skewed, the harm on a few)."""
    if name == "normal":
        return rng.standard_normal(size)
    if name == "t3":
        return rng.standard_t(3, size) / math.sqrt(3)
    x = np.exp(rng.standard_normal(size))
    return (x - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)


def _simulate(shape: str, n: int, sims: int, seed: int):
    """Coverage of the printed interval, and how often a true difference AT the margin (either side; the
    right-skewed one at +margin is the hard case) is called "equivalent"."""
    rng = np.random.default_rng(seed)
    margin, sd, mu = 0.05, 0.05, 0.02
    covered = false_eq = 0
    for _ in range(sims):
        d = mu + sd * _shape(shape, rng, n)
        t = paired_test({i: x for i, x in enumerate(d)}, {i: 0.0 for i in range(n)}, margin)
        covered += t["diff_ci95_low"] <= mu <= t["diff_ci95_high"]
        for edge in (margin, -margin):
            e = edge + sd * _shape(shape, rng, n) * (1 if edge > 0 else -1)   # skew toward the outside
            false_eq += verdict(float(np.mean(e)), 1.0, tost_p(e, margin)) == "equivalent"
    return covered / sims, false_eq / (2 * sims)


@pytest.mark.parametrize("shape", ["normal", "t3", "lognormal"])
@pytest.mark.parametrize("n", [5, 24])
def test_interval_coverage_and_equivalence_error_hold_whatever_the_shape(shape, n):
    """Acceptance of issue 22 point 4: coverage >= 93% and false "equivalent" <= 7% at the margin, on
    normal, t3 and log-normal differences at n = 5 and n = 24. The t-interval the reports used before covered
    82% / 87% on log-normal differences and its TOST called a difference at the margin equivalent 16-23% of
    the time."""
    cov, false_eq = _simulate(shape, n, sims=1500, seed=n * 7 + len(shape))
    assert cov >= 0.93, cov
    assert false_eq <= 0.07, false_eq


def test_the_t_interval_fails_on_skewed_differences_for_the_record():
    """Why the interval changed: on log-normal differences at n = 5 the t-interval covers well under 93%."""
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        d = _shape("lognormal", rng, 5)
        _, lo, hi = mean_ci(d)
        hits += lo <= 0 <= hi
    assert hits / 2000 < 0.88


def test_the_printed_interval_is_the_one_the_equivalence_test_uses():
    """equivalent (p_tost < 0.05) exactly when the printed 95% interval lies inside (-margin, margin)."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        d = rng.normal(rng.uniform(-0.05, 0.05), rng.uniform(0.001, 0.03), int(rng.integers(3, 30)))
        _, lo, hi = shape_free_ci(d)
        assert (tost_p(d, 0.05) < 0.05) == (-0.05 < lo and hi < 0.05)


def test_equivalence_needs_evidence_not_a_failed_test():
    rng = np.random.default_rng(0)
    tight = rng.normal(0.0, 0.005, 24)
    wide = np.array([0.5, -0.4, 0.3, -0.6, 0.2, -0.1, 0.45, -0.35])
    assert tost_p(tight, 0.05) < 0.05
    assert tost_p(wide, 0.05) > 0.05
    t = paired_test({i: 1.0 + x for i, x in enumerate(wide)}, {i: 1.0 for i in range(8)}, margin=0.05)
    assert verdict(t["diff_vs_baseline"], t["p_value"], t["p_tost"]) == "inconclusive"
    assert verdict(-0.2, 0.01, 0.9) == "helps" and verdict(0.2, 0.01, 0.9) == "hurts"
    assert verdict(0.001, 0.8, 0.01) == "equivalent"


def test_median_share_harmed_and_the_overlap_correction():
    d = np.array([0.9, -0.1, -0.05, -0.1, -0.02, -0.08])   # the harm on one unit
    t = paired_test({i: x for i, x in enumerate(d)}, {i: 0.0 for i in range(6)})
    assert t["diff_median"] == pytest.approx(np.median(d)) and t["share_harmed"] == pytest.approx(1 / 6)
    tc = paired_test({i: x for i, x in enumerate(d)}, {i: 0.0 for i in range(6)}, ratio=0.25)
    # Nadeau-Bengio: sd sqrt(1/n + n_test/n_train) instead of sd / sqrt(n)
    assert tc["diff_se"] == pytest.approx(d.std(ddof=1) * math.sqrt(1 / 6 + 0.25))
    assert tc["diff_ci95_high"] - tc["diff_ci95_low"] > t["diff_ci95_high"] - t["diff_ci95_low"]
    assert "Nadeau-Bengio" in tc["interval"]


def test_detectable_effect_is_found_with_the_stated_power():
    """A true difference of the printed detectable size is found (interval excludes 0) in about 80% of
    normal samples, and more units shrink it as units_for says."""
    rng = np.random.default_rng(1)
    n, sd = 24, 0.1
    se = sd / math.sqrt(n)
    eff = detectable_effect(se)
    found = 0
    for _ in range(2000):
        d = rng.normal(eff, sd, n)
        _, lo, _ = shape_free_ci(d)
        found += lo > 0
    assert 0.7 <= found / 2000 <= 0.9
    assert units_for(eff, sd) == pytest.approx(n, rel=1e-6)
    assert units_for(eff / 2, sd) == pytest.approx(4 * n, rel=1e-6)
    assert units_for(eff, sd, ratio=1.0) == math.inf   # overlapping folds: more folds cannot shrink it below this


def test_failure_interval_is_clopper_pearson():
    lo, hi = failure_interval(1, 5)
    assert lo == pytest.approx(0.00505, abs=1e-4) and hi == pytest.approx(0.7164, abs=1e-3)
    assert failure_interval(0, 5)[0] == 0.0
    assert failure_verdict(1, 5).startswith("fails 1 of 5 [1%, 72%]")
