import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeneg.wronglabels.generator import WrongLabelGenerator, apply_boundary, wrong_cells

points = st.lists(st.tuples(st.floats(0, 8), st.floats(0, 15)), min_size=1, max_size=20)


@settings(max_examples=50, deadline=None)
@given(points, st.floats(0.25, 6), st.integers(1, 6), st.sampled_from(["one_sided", "random", "redraw", "symmetric"]),
       st.integers(0, 1000))
def test_distance_is_exactly_D_before_boundary(pts, D, k, policy, seed):
    y = torch.tensor(pts, dtype=torch.float32)
    gen = WrongLabelGenerator(distance=D, k=k, policy=policy, boundary="keep", n_samples=len(pts), seed=seed)
    w, valid = gen(y, torch.arange(len(pts)), step=3)
    assert w.shape == (len(pts), k, 2) and valid.all()
    dist = (w - y[:, None, :]).norm(dim=-1)
    assert torch.allclose(dist, torch.full_like(dist, D), atol=1e-4)


@settings(max_examples=50, deadline=None)
@given(points, st.floats(0.25, 6), st.integers(2, 8))
def test_symmetric_sets_sum_to_zero(pts, D, k):
    y = torch.tensor(pts, dtype=torch.float32)
    w, _ = WrongLabelGenerator(distance=D, k=k, policy="symmetric")(y)
    assert torch.allclose((w - y[:, None, :]).sum(1), torch.zeros_like(y), atol=1e-4)


def test_one_sided_default_is_straight_down_the_rows():
    y = torch.tensor([[2.0, 11.0]])
    w, _ = WrongLabelGenerator(distance=2)(y)
    assert w[0, 0].tolist() == [4.0, 11.0]


def test_random_keeps_angle_per_sample_and_redraw_changes():
    y = torch.tensor([[2.0, 11.0], [6.0, 3.0]])
    idx = torch.tensor([0, 1])
    g = WrongLabelGenerator(distance=2, policy="random", n_samples=2, seed=5)
    assert torch.equal(g(y, idx, step=0)[0], g(y, idx, step=99)[0])
    # Same sample index, same angle even when the batch order changes.
    w_rev, _ = g(y.flip(0), idx.flip(0))
    assert torch.equal(w_rev.flip(0), g(y, idx)[0])
    r = WrongLabelGenerator(distance=2, policy="redraw", seed=5)
    assert not torch.equal(r(y, idx, step=0)[0], r(y, idx, step=1)[0])
    assert torch.equal(r(y, idx, step=4)[0], r(y, idx, step=4)[0])  # reproducible


def test_prediction_side():
    y = torch.tensor([[2.0, 11.0]])
    f = torch.tensor([[2.3, 11.4]])  # error 0.5 along (0.6, 0.8)
    w, _ = WrongLabelGenerator(distance=2, policy="prediction_side")(y, f=f)
    assert w[0, 0].tolist() == pytest.approx([2.0 + 1.2, 11.0 + 1.6])
    with pytest.raises(ValueError, match="needs the current predictions"):
        WrongLabelGenerator(policy="prediction_side")(y)


def test_boundaries():
    # The limits are the screen's edges, rows -0.5..8.5 and cols -0.5..15.5 (on the edge is on the screen).
    w = torch.tensor([[[-1.0, 16.5]], [[9.5, 3.0]], [[-0.5, 15.5]]])
    assert apply_boundary(w, "clip")[0].tolist() == [[[-0.5, 15.5]], [[8.5, 3.0]], [[-0.5, 15.5]]]
    assert apply_boundary(w, "reflect")[0].tolist() == [[[0.0, 14.5]], [[7.5, 3.0]], [[-0.5, 15.5]]]
    assert apply_boundary(w, "drop")[1].tolist() == [[False], [False], [True]]
    assert apply_boundary(w, "keep")[0].tolist() == w.tolist()
    # Given limits (wrong cells use the cell centres 0..8, 0..15).
    cells = apply_boundary(w, "reflect", rows=(0.0, 8.0), cols=(0.0, 15.0))[0]
    assert cells.tolist() == [[[1.0, 13.5]], [[6.5, 3.0]], [[0.5, 14.5]]]


def test_clipping_breaks_symmetry_at_the_edge():
    y = torch.tensor([[0.0, 7.0]])   # the point 2 cells up, at row -2, is clipped to the edge at -0.5
    w, _ = WrongLabelGenerator(distance=2, k=4, policy="symmetric", boundary="clip")(y)
    assert (w - y[:, None, :]).sum(1).norm() > 1.0


def test_bad_options():
    with pytest.raises(ValueError, match="policy must be one of"):
        WrongLabelGenerator(policy="sideways")
    with pytest.raises(ValueError, match="distance must be a positive"):
        WrongLabelGenerator(distance=-1)
    with pytest.raises(ValueError, match="needs n_samples"):
        WrongLabelGenerator(policy="random")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 143), min_size=1, max_size=30), st.integers(1, 4), st.floats(1, 4), st.booleans())
def test_wrong_cells_never_true_and_near_distance(cells, k, D, uniform):
    t = torch.tensor(cells)
    w = wrong_cells(t, distance=D, k=k, policy="symmetric" if k > 1 else "redraw", uniform=uniform)
    assert w.shape == (len(cells), k)
    assert ((w >= 0) & (w < 144)).all()
    assert (w != t[:, None]).all()
    if not uniform:
        tr, tc = np.divmod(t.numpy(), 16)
        wr, wc = np.divmod(w.numpy(), 16)
        d = np.hypot(wr - tr[:, None], wc - tc[:, None])
        # Rounding to a cell changes the distance by at most sqrt(2)/2 (reflection keeps D inside).
        assert (d <= D + math.sqrt(2) / 2 + 1e-6).all()
