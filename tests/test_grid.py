import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gazeneg import grid


def test_shape_and_centre():
    assert (grid.ROWS, grid.COLS, grid.N_CELLS) == (9, 16, 144)
    assert grid.CENTRE == (4.0, 7.5)


def test_cell_index_is_row_major_on_non_symmetric_cells():
    assert grid.cell_index(2, 11) == 2 * 16 + 11 == 43
    assert grid.index_to_cell(43) == (2, 11)
    assert grid.index_to_cell(16) == (1, 0)
    assert grid.cell_index(8, 15) == 143
    with pytest.raises(ValueError, match="outside"):
        grid.cell_index(9, 0)
    with pytest.raises(ValueError, match="outside"):
        grid.index_to_cell(144)


def test_pixels_x_is_col_and_y_is_row():
    # 1600x900 screen: cells are 100 px square; cell (2, 11) has its centre at x=1150, y=250.
    x, y = grid.to_pixels(2, 11, 1600, 900)
    assert (float(x), float(y)) == (1150.0, 250.0)
    r, c = grid.from_pixels(1150, 250, 1600, 900)
    assert (float(r), float(c)) == (2.0, 11.0)
    # The screen centre pixel is the grid centre.
    r, c = grid.from_pixels(800, 450, 1600, 900)
    assert (float(r), float(c)) == grid.CENTRE
    # Top-left corner pixel is half a cell before cell (0, 0)'s centre.
    r, c = grid.from_pixels(0, 0, 1600, 900)
    assert (float(r), float(c)) == (-0.5, -0.5)


@given(st.floats(-0.5, 8.5), st.floats(-0.5, 15.5), st.integers(100, 4000), st.integers(100, 3000))
def test_pixel_round_trip(r, c, w, h):
    x, y = grid.to_pixels(r, c, w, h)
    r2, c2 = grid.from_pixels(x, y, w, h)
    assert abs(r2 - r) < 1e-9 and abs(c2 - c) < 1e-9


def test_clamp_and_nearest():
    r, c = grid.clamp(np.array([-1.0, 2.3, 9.7]), np.array([16.2, -0.1, 11.49]))
    assert r.tolist() == [0.0, 2.3, 8.0] and c.tolist() == [15.0, 0.0, 11.49]
    assert grid.nearest_cell(2.4, 10.6) == grid.cell_index(2, 11)
    assert grid.nearest_cell(-3, 20) == grid.cell_index(0, 15)


def test_cell_centres_in_index_order():
    cc = grid.cell_centres()
    assert cc.shape == (144, 2)
    assert cc[43].tolist() == [2.0, 11.0]


def test_error_units():
    # 48 x 27 cm screen: a cell is 3 cm square; one cell right is 3 cm.
    assert grid.error_cm(0, 1, 48, 27) == pytest.approx(3.0)
    assert grid.error_cm(1, 1, 48, 27) == pytest.approx(3 * 2 ** 0.5)
    # From the centre, a point 3 cm away at 60 cm subtends atan(3/60).
    deg = grid.error_degrees(4, 8.5, 4, 7.5, 48, 27, 60)
    assert deg == pytest.approx(np.degrees(np.arctan(3 / 60)), rel=1e-9)
    assert grid.error_degrees(2, 11, 2, 11, 48, 27, 60) == pytest.approx(0, abs=1e-6)
