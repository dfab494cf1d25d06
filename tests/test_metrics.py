"""gazeneg/model/metrics.py: the error figures on hand-computed cases, the centre-guess reference, and the one
definition of an ok, collapsed or diverged run."""

import json
import math

import numpy as np
import pytest

from gazeneg import grid
from gazeneg.config import TrainConfig
from gazeneg.model.metrics import COLLAPSED, DIVERGED, OK, centre_guess_error, error_metrics, outcome
from gazeneg.training.loop import run
from tests.conftest import fast_config


def test_error_metrics_on_a_hand_computed_case():
    true = np.array([[0.0, 0.0], [4.0, 7.0], [8.0, 15.0], [2.0, 2.0]])
    pred = np.array([[0.0, 0.0], [4.0, 8.0], [5.0, 11.0], [2.4, 2.3]])   # errors 0, 1, 5, 0.5
    m = error_metrics(pred, true, prefix="test_")
    assert m["test_mean_error_cells"] == pytest.approx(6.5 / 4)
    assert m["test_median_error_cells"] == pytest.approx(0.75)
    assert m["test_cell_accuracy"] == pytest.approx(0.5)       # rows 0 and 3 land in their own cell
    assert m["test_within1_accuracy"] == pytest.approx(0.75)   # row 1 is one cell off; row 2 is 4 off
    assert m["test_mean_signed_error_row"] == pytest.approx((0 + 0 - 3 + 0.4) / 4)
    assert m["test_mean_signed_error_col"] == pytest.approx((0 + 1 - 4 + 0.3) / 4)
    assert m["test_n"] == 4 and "test_mean_error_cm" not in m


def test_cm_and_degrees_only_when_the_screen_is_known():
    true = np.array([[4.0, 7.5]])
    pred = np.array([[4.0, 8.5]])                 # one cell to the right of the centre
    cfg = TrainConfig(screen_w_cm=48.0, screen_h_cm=27.0, distance_cm=60.0)
    m = error_metrics(pred, true, cfg)
    assert m["mean_error_cm"] == pytest.approx(3.0)                     # 48 cm / 16 columns
    assert m["mean_error_degrees"] == pytest.approx(math.degrees(math.atan(3.0 / 60.0)))
    assert "mean_error_degrees" not in error_metrics(pred, true, TrainConfig(screen_w_cm=48.0, screen_h_cm=27.0))
    assert "mean_error_cm" not in error_metrics(pred, true, TrainConfig())


def test_a_non_finite_prediction_counts_as_an_infinite_error_and_a_miss():
    true = np.array([[1.0, 1.0], [2.0, 2.0]])
    m = error_metrics(np.array([[1.0, 1.0], [np.nan, 2.0]]), true)
    assert m["mean_error_cells"] == math.inf and m["cell_accuracy"] == 0.5 and m["within1_accuracy"] == 0.5


def test_centre_guess_error():
    assert centre_guess_error([grid.CENTRE]) == 0.0
    assert centre_guess_error([[0.0, 7.5], [8.0, 7.5]]) == pytest.approx(4.0)
    corners = [[0, 0], [0, 15], [8, 0], [8, 15]]
    assert centre_guess_error(corners) == pytest.approx(grid.DIAGONAL / 2)


@pytest.mark.parametrize("err, centre, nonfinite, expect", [
    (1.0, 4.0, False, OK), (4.0, 4.0, False, OK), (4.1, 4.0, False, COLLAPSED),
    (grid.DIAGONAL + 0.1, 4.0, False, DIVERGED), (math.nan, 4.0, False, DIVERGED), (math.inf, 4.0, False, DIVERGED),
    (1.0, 4.0, True, DIVERGED)])
def test_outcome(err, centre, nonfinite, expect):
    assert outcome(err, centre, nonfinite) == expect


def test_cm_and_degree_errors(tiny_dataset, tmp_path):
    rd = run(fast_config(tiny_dataset, tmp_path / "runs", flip=True, screen_w_cm=48, screen_h_cm=27, distance_cm=60),
             argv=[])
    m = json.loads((rd / "metrics.json").read_text())
    assert m["test_mean_error_cm"] > 0 and m["test_mean_error_degrees"] > 0
