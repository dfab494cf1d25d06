"""The one place that defines gazeneg's screen grid and its units.

Coordinates are continuous (row, col): row 0..8 top to bottom, col 0..15 left to right, and
integer coordinates are cell centres, so the screen centre is (4, 7.5). Cell indices run row-major:
index = row * COLS + col. Screen pixels have x to the right and y down, with pixel (0, 0) the
top-left corner of the screen, so cell (r, c) has its centre at x = (c + 0.5) * W / COLS,
y = (r + 0.5) * H / ROWS.
"""

from __future__ import annotations

import math

import numpy as np

ROWS = 9
COLS = 16
N_CELLS = ROWS * COLS
ROW_MAX = ROWS - 1
COL_MAX = COLS - 1
# The farthest apart two on-screen points can be (corner to corner), in cells. A mean error beyond it
# means the predictions ran off the screen: the run diverged, even while its numbers are still finite.
DIAGONAL = float((ROW_MAX ** 2 + COL_MAX ** 2) ** 0.5)
CENTRE = (ROW_MAX / 2, COL_MAX / 2)  # (4.0, 7.5)
# The screen itself reaches half a cell beyond the outer cell centres: rows -0.5..8.5 and cols -0.5..15.5
# are on the screen (its edges and corners, common in calibration and cursor-following data); beyond is
# off the screen.
ROW_EDGES = (-0.5, ROWS - 0.5)
COL_EDGES = (-0.5, COLS - 0.5)


def cell_index(row, col):
    """Row-major cell index of integer cell (row, col); works on scalars and arrays."""
    row = np.asarray(row)
    col = np.asarray(col)
    if np.any((row < 0) | (row > ROW_MAX) | (col < 0) | (col > COL_MAX)):
        raise ValueError(f"cell ({row}, {col}) is outside the {ROWS}x{COLS} grid")
    out = row.astype(np.int64) * COLS + col.astype(np.int64)
    return int(out) if out.ndim == 0 else out


def index_to_cell(index):
    """(row, col) of a row-major cell index; works on scalars and arrays."""
    index = np.asarray(index)
    if np.any((index < 0) | (index >= N_CELLS)):
        raise ValueError(f"cell index {index} is outside 0..{N_CELLS - 1}")
    row, col = np.divmod(index.astype(np.int64), COLS)
    if row.ndim == 0:
        return int(row), int(col)
    return row, col


def cell_centres() -> np.ndarray:
    """(N_CELLS, 2) float array of (row, col) for every cell, in index order."""
    r, c = np.divmod(np.arange(N_CELLS), COLS)
    return np.stack([r, c], axis=1).astype(np.float64)


def nearest_cell(row, col):
    """Index of the cell whose centre is nearest to the continuous point (clamped onto the grid)."""
    r, c = clamp(row, col)
    return cell_index(np.rint(r).astype(np.int64), np.rint(c).astype(np.int64))


def clamp(row, col):
    """Clamp continuous (row, col) onto the grid's centre range [0, 8] x [0, 15]."""
    return np.clip(row, 0.0, ROW_MAX), np.clip(col, 0.0, COL_MAX)


def to_pixels(row, col, screen_w: float, screen_h: float):
    """Screen pixel (x, y) of continuous (row, col) on a screen of screen_w x screen_h pixels."""
    x = (np.asarray(col, dtype=np.float64) + 0.5) * screen_w / COLS
    y = (np.asarray(row, dtype=np.float64) + 0.5) * screen_h / ROWS
    return x, y


def from_pixels(x, y, screen_w: float, screen_h: float):
    """Continuous (row, col) of screen pixel (x, y); the inverse of to_pixels."""
    col = np.asarray(x, dtype=np.float64) * COLS / screen_w - 0.5
    row = np.asarray(y, dtype=np.float64) * ROWS / screen_h - 0.5
    return row, col


def cell_size_cm(screen_w_cm: float, screen_h_cm: float) -> tuple[float, float]:
    """Height and width of one cell in cm: (screen_h_cm / ROWS, screen_w_cm / COLS)."""
    return screen_h_cm / ROWS, screen_w_cm / COLS


def error_cm(d_row, d_col, screen_w_cm: float, screen_h_cm: float):
    """Euclidean on-screen error in cm of a (row, col) error given in cells."""
    ch, cw = cell_size_cm(screen_w_cm, screen_h_cm)
    return np.hypot(np.asarray(d_row) * ch, np.asarray(d_col) * cw)


def error_degrees(pred_row, pred_col, true_row, true_col, screen_w_cm: float, screen_h_cm: float,
                  distance_cm: float):
    """Angle in degrees between the rays from an eye at the screen's centre normal, at distance_cm,
    to the predicted and the true point. Clamped before arccos so rounding never gives NaN."""
    ch, cw = cell_size_cm(screen_w_cm, screen_h_cm)

    def ray(r, c):
        x = (np.asarray(c, dtype=np.float64) - CENTRE[1]) * cw
        y = (np.asarray(r, dtype=np.float64) - CENTRE[0]) * ch
        v = np.stack([x, y, np.full_like(x, distance_cm)], axis=-1)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    cos = np.sum(ray(pred_row, pred_col) * ray(true_row, true_col), axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def in_grid(row, col, tol: float = 1e-9):
    """True where (row, col) lies within the grid's centre range."""
    row = np.asarray(row)
    col = np.asarray(col)
    return (row >= -tol) & (row <= ROW_MAX + tol) & (col >= -tol) & (col <= COL_MAX + tol)


def on_screen(row, col, tol: float = 1e-6):
    """True where (row, col) lies on the screen, its edges included: rows -0.5..8.5, cols -0.5..15.5.
    tol (cells) absorbs the rounding of a pixel-to-cell conversion and of 4-decimal labels."""
    row = np.asarray(row)
    col = np.asarray(col)
    return ((row >= ROW_EDGES[0] - tol) & (row <= ROW_EDGES[1] + tol)
            & (col >= COL_EDGES[0] - tol) & (col <= COL_EDGES[1] + tol))


def degrees_per_cell(screen_w_cm: float, screen_h_cm: float, distance_cm: float) -> tuple[float, float]:
    """Visual angle of one cell at the screen centre: (rows, cols) in degrees."""
    ch, cw = cell_size_cm(screen_w_cm, screen_h_cm)
    return math.degrees(math.atan(ch / distance_cm)), math.degrees(math.atan(cw / distance_cm))
