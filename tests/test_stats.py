"""The sweep's statistics: honest coverage of the interval, the equivalence test, the verdicts."""

import numpy as np
import pytest
from scipy import stats as sst

from gazeneg.study.stats import mean_ci, paired_test, tost_p, verdict


@pytest.mark.parametrize("n", [3, 5])
def test_t_interval_covers_95_percent_at_small_n(n):
    """The paired-difference interval the reports print covers the true mean >= 93% of the time at the
    sweeps' n (the percentile bootstrap it replaced covered ~76% at n = 3 and ~84% at n = 5)."""
    rng = np.random.default_rng(n)
    sims, covered, boot_covered = 2000, 0, 0
    for _ in range(sims):
        d = rng.normal(0.1, 0.2, n)
        _, lo, hi = mean_ci(d)
        covered += lo <= 0.1 <= hi
    assert covered / sims >= 0.93
    for _ in range(300):  # the old interval, for the record: well short of 95%
        d = rng.normal(0.1, 0.2, n)
        b = sst.bootstrap((d,), np.mean, n_resamples=500, method="percentile", random_state=0).confidence_interval
        boot_covered += b.low <= 0.1 <= b.high
    assert boot_covered / 300 < 0.9


def test_tost_equivalence_needs_evidence_not_a_failed_test():
    rng = np.random.default_rng(0)
    tight = rng.normal(0.0, 0.01, 8)
    wide = np.array([0.5, -0.4, 0.3, -0.6, 0.2, -0.1, 0.45, -0.35])  # mean 0, sd 0.42
    assert tost_p(tight, 0.05) < 0.05          # shown within +-0.05
    assert tost_p(wide, 0.05) > 0.05           # no difference found, but nothing shown either
    t = paired_test({i: 1.0 + x for i, x in enumerate(wide)}, {i: 1.0 for i in range(8)}, margin=0.05)
    assert verdict(t["diff_vs_baseline"], t["p_value"], t["p_tost"]) == "inconclusive"
    assert verdict(-0.2, 0.01, 0.9) == "helps" and verdict(0.2, 0.01, 0.9) == "hurts"
    assert verdict(0.001, 0.8, 0.01) == "equivalent"


def test_tost_matches_the_90_percent_interval_rule():
    """TOST at alpha 0.05 rejects exactly when the 90% t-interval lies inside (-margin, margin)."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        d = rng.normal(rng.uniform(-0.1, 0.1), rng.uniform(0.01, 0.1), 5)
        _, lo, hi = mean_ci(d, level=0.90)
        assert (tost_p(d, 0.05) < 0.05) == (-0.05 < lo and hi < 0.05)
