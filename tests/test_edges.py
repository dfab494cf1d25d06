"""Targets on the screen's edge (rows -0.5..8.5, cols -0.5..15.5) are on the screen everywhere; beyond
them stays an error."""

import csv

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeneg import grid
from gazeneg.data.dataset import DatasetError, load_dataset
from gazeneg.model.metrics import error_metrics
from gazeneg.wronglabels.generator import WrongLabelGenerator, apply_boundary
from tests.conftest import make_tiny_dataset

CORNERS = [(-0.5, -0.5), (-0.5, 15.5), (8.5, -0.5), (8.5, 15.5)]


def _set_targets(root, targets):
    path = root / "labels.csv"
    rows = list(csv.reader(path.open(newline="")))
    for i, (r, c) in enumerate(targets, start=1):
        rows[i][1], rows[i][2] = str(r), str(c)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_on_screen_edges():
    assert grid.on_screen(np.array([-0.5, 8.5, 4.0]), np.array([15.5, -0.5, 7.5])).all()
    assert not grid.on_screen(-0.51, 3).any() and not grid.on_screen(2, 15.6).any()
    assert not grid.in_grid(-0.5, 3)   # the centre range is narrower than the screen


@pytest.fixture
def ds_dir(tmp_path):
    return make_tiny_dataset(tmp_path / "ds", subjects=1, cells=range(8))


def test_loader_accepts_the_edge_and_corners(ds_dir):
    _set_targets(ds_dir, CORNERS + [(2.0, 15.5), (8.5, 11.0)])
    ds = load_dataset(ds_dir, load_images=False)
    assert ds.targets[:6].tolist() == [list(c) for c in CORNERS] + [[2.0, 15.5], [8.5, 11.0]]


@pytest.mark.parametrize("target, culprit", [((8.6, 3.0), r"line 2: row 8.6 is off the screen \(rows -0.5..8.5\)"),
                                             ((2.0, -0.7), r"line 2: col -0.7 is off the screen \(cols -0.5..15.5\)")])
def test_loader_rejects_beyond_the_edge(ds_dir, target, culprit):
    _set_targets(ds_dir, [target])
    with pytest.raises(DatasetError, match=culprit):
        load_dataset(ds_dir, load_images=False)


def test_metrics_and_nearest_cell_on_the_edge():
    true = np.array(CORNERS + [(2.0, 15.5)])
    assert [grid.index_to_cell(int(i)) for i in grid.nearest_cell(true[:, 0], true[:, 1])] == \
        [(0, 0), (0, 15), (8, 0), (8, 15), (2, 15)]
    m = error_metrics(true.copy(), true)
    assert m["mean_error_cells"] == 0 and m["cell_accuracy"] == 1.0
    pred = true + np.array([0.3, 0.0])
    assert error_metrics(pred, true)["mean_error_cells"] == pytest.approx(0.3)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CORNERS + [(2.0, 15.5), (8.5, 11.0)]), st.floats(0.5, 4), st.integers(1, 4))
def test_wrong_points_for_edge_targets_stay_on_the_screen(y, D, k):
    yt = torch.tensor([y], dtype=torch.float32)
    for boundary in ("clip", "reflect"):
        w, valid = WrongLabelGenerator(distance=D, k=k, policy="symmetric", boundary=boundary)(yt)
        assert grid.on_screen(w[..., 0].numpy(), w[..., 1].numpy(), tol=1e-4).all() and valid.all()
    w, valid = WrongLabelGenerator(distance=D, k=k, policy="symmetric", boundary="drop")(yt)
    assert (valid.numpy() == grid.on_screen(w[..., 0].numpy(), w[..., 1].numpy(), tol=1e-5)).all()


def test_a_wrong_point_on_the_edge_is_kept_by_every_policy():
    w = torch.tensor([[[8.5, -0.5]]])
    for boundary in ("keep", "clip", "reflect", "drop"):
        out, valid = apply_boundary(w, boundary)
        assert out.tolist() == w.tolist() and valid.all()
