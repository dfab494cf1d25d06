"""The numerical checks behind docs/science.md (studies/science_checks.py): each measurement matches
its prediction. The statistics checks simulate thousands of samples, so they run in the slow suite."""

from __future__ import annotations

import numpy as np
import pytest

from studies import science_checks as sc


@pytest.mark.parametrize("section", [sc.section1, sc.section2])
def test_regression_and_huber_derivations_hold(section):
    checks = section(np.random.default_rng(0))
    assert checks
    for line, ok in checks:
        assert ok, line


@pytest.mark.parametrize("section", [sc.section3, sc.section4, sc.section5])
def test_classification_optimiser_and_snapshot_checks_hold(section):
    for line, ok in section():
        assert ok, line


def test_a_wrong_prediction_is_reported_as_a_mismatch(monkeypatch):
    # a Huber whose knee sits at 2 cells moves the one-sided fixed point: the check must say so
    monkeypatch.setattr(sc, "huber_grad", lambda v: v if np.linalg.norm(v) < 2 else 2 * v / np.linalg.norm(v))
    lines = dict(sc.section2(np.random.default_rng(0)))
    assert not all(lines.values())


@pytest.mark.slow
def test_interval_coverage_and_wilcoxon_floor():
    for line, ok in sc.section8(np.random.default_rng(0)):
        assert ok, line
