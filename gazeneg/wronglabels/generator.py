"""Deliberately wrong labels: displaced targets w = y + d for a batch of true points y.

Distances are Euclidean in cells. Direction policies:
  one_sided        one global direction for every sample (default straight down the rows)
  random           a uniform angle per sample, drawn once (from the seed and the sample's index) and kept
  redraw           a new uniform angle every step
  symmetric        K evenly spaced angles per sample, so the K displacements sum to zero
  prediction_side  w = y + D (f - y)/|f - y|: on the prediction's side of the truth (needs f)
Boundary policies when w leaves the screen, whose edges are half a cell beyond the outer cell centres
(rows -0.5..8.5, cols -0.5..15.5: a point on the edge is on the screen, as a true target may be):
  keep (off-screen allowed), clip (clamp: note this breaks the symmetry of symmetric sets),
  reflect (mirror at the edge), drop (mark invalid).
Wrong *cells* (classification) stay on the cell centres [0, 8] x [0, 15]: a class is a cell.

Angles are measured in the (row, col) plane: angle 0 points down the rows (+row), pi/2 to the right.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gazeneg import grid, seeding

POLICIES = ("one_sided", "random", "redraw", "symmetric", "prediction_side")
BOUNDARIES = ("keep", "clip", "reflect", "drop")


def _reflect(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    # Mirror into [lo, hi]: a triangle wave with period 2 * (hi - lo).
    period = 2.0 * (hi - lo)
    v = torch.remainder(v - lo, period)
    return torch.where(v > hi - lo, period - v, v) + lo


def apply_boundary(w: torch.Tensor, boundary: str, rows: tuple[float, float] = grid.ROW_EDGES,
                   cols: tuple[float, float] = grid.COL_EDGES) -> tuple[torch.Tensor, torch.Tensor]:
    """(w', valid) for w (..., 2), the limits (rows, cols) the screen's edges unless given. valid is False
    only under "drop" for points beyond them."""
    valid = torch.ones(w.shape[:-1], dtype=torch.bool, device=w.device)
    if boundary == "keep":
        return w, valid
    if boundary == "clip":
        return torch.stack([w[..., 0].clamp(*rows), w[..., 1].clamp(*cols)], -1), valid
    if boundary == "reflect":
        return torch.stack([_reflect(w[..., 0], *rows), _reflect(w[..., 1], *cols)], -1), valid
    if boundary == "drop":
        tol = 1e-5  # cells: a point on the edge, up to float32 rounding of y + D u, is on the screen
        inside = ((w[..., 0] >= rows[0] - tol) & (w[..., 0] <= rows[1] + tol) & (w[..., 1] >= cols[0] - tol)
                  & (w[..., 1] <= cols[1] + tol))
        return w, inside
    raise ValueError(f"boundary must be one of {BOUNDARIES}, not {boundary!r}")


class WrongLabelGenerator:
    """Displaced targets for a batch of true points.

        gen = WrongLabelGenerator(distance=2, k=1, policy="random", n_samples=len(train), seed=0)
        w, valid = gen(y, idx, step=global_step, f=pred.detach())   # (B, K, 2), (B, K)

    idx are the samples' indices in the training set: the "random" policy keeps one angle per
    sample across epochs. Deterministic by seed.
    """

    def __init__(self, *, distance: float = 2.0, k: int = 1, policy: str = "one_sided",
                 boundary: str = "keep", direction=(1.0, 0.0), n_samples: int | None = None, seed: int = 0):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, not {boundary!r}")
        if not (distance > 0 and math.isfinite(distance)):
            raise ValueError(f"distance must be a positive number of cells, not {distance!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        d = np.asarray(direction, np.float64)
        if d.shape != (2,) or not np.linalg.norm(d) > 0:
            raise ValueError(f"direction must be a non-zero (row, col) pair, not {direction!r}")
        self.distance, self.k, self.policy, self.boundary, self.seed = float(distance), k, policy, boundary, seed
        self.direction = torch.tensor(d / np.linalg.norm(d), dtype=torch.float32)
        self._angles = None
        if policy == "random":
            if n_samples is None:
                raise ValueError("policy 'random' needs n_samples (the training set size)")
            rng = seeding.numpy_rng(seed, "wrong_random")
            self._angles = torch.tensor(rng.uniform(0, 2 * math.pi, (n_samples, k)), dtype=torch.float32)

    def unit_directions(self, y: torch.Tensor, idx: torch.Tensor | None, step: int,
                        f: torch.Tensor | None) -> torch.Tensor:
        """(B, K, 2) unit displacement directions."""
        b, k, dev = y.shape[0], self.k, y.device
        if self.policy == "one_sided":
            return self.direction.to(dev).expand(b, k, 2).clone()
        if self.policy == "symmetric":
            ang = torch.arange(k, device=dev, dtype=torch.float32) * (2 * math.pi / k)
            ang = ang.expand(b, k)
        elif self.policy == "random":
            if idx is None:
                raise ValueError("policy 'random' needs the samples' indices")
            ang = self._angles.to(dev)[idx.long()]
        elif self.policy == "redraw":
            g = seeding.torch_generator(self.seed, "wrong_redraw", step)
            ang = (torch.rand(b, k, generator=g) * (2 * math.pi)).to(dev)
        else:  # prediction_side
            if f is None:
                raise ValueError("policy 'prediction_side' needs the current predictions f")
            diff = (f - y).detach().float()
            norm = diff.norm(dim=1, keepdim=True)
            # Where f == y exactly there is no side; fall back to the one-sided direction.
            fallback = self.direction.to(dev).expand_as(diff)
            u = torch.where(norm > 1e-6, diff / norm.clamp_min(1e-6), fallback)
            return u[:, None, :].expand(b, k, 2).clone()
        # Trig in float64 so that symmetric sets sum to zero to rounding, not to float32 error.
        ang = ang.double()
        return torch.stack([torch.cos(ang), torch.sin(ang)], dim=-1).float()

    def __call__(self, y: torch.Tensor, idx: torch.Tensor | None = None, *, step: int = 0,
                 f: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.unit_directions(y, idx, step, f)
        w = y.float()[:, None, :] + self.distance * u
        return apply_boundary(w, self.boundary)


def wrong_cells(true_cells: torch.Tensor, *, distance: float = 2.0, k: int = 1, policy: str = "random",
                boundary: str = "reflect", uniform: bool = False, idx=None, step: int = 0, f=None,
                n_samples: int | None = None, seed: int = 0, generator: WrongLabelGenerator | None = None
                ) -> torch.Tensor:
    """Wrong classes for the 144-way classification form: (N, K) LongTensor of cell indices, never the
    true cell. With uniform=True they are drawn uniformly over the 143 other cells; otherwise a wrong
    point at distance D is generated with the regression generator's policies and snapped to the
    nearest cell ("keep" is not meaningful for cells, so off-grid points are clipped or reflected;
    "drop" falls back to reflect). If snapping lands on the true cell (possible only after clipping),
    the cell one step further along the displacement is used."""
    n = true_cells.shape[0]
    dev = true_cells.device
    if uniform:
        g = seeding.torch_generator(seed, "wrong_cells", step)
        r = torch.randint(0, grid.N_CELLS - 1, (n, k), generator=g).to(dev)
        return r + (r >= true_cells[:, None]).long()  # skip the true cell
    gen = generator or WrongLabelGenerator(
        distance=distance, k=k, policy=policy, boundary="keep", n_samples=n_samples, seed=seed)
    rows = torch.div(true_cells, grid.COLS, rounding_mode="floor").float()
    cols = (true_cells % grid.COLS).float()
    y = torch.stack([rows, cols], dim=1)
    u = gen.unit_directions(y, idx, step, f)
    w = y[:, None, :] + gen.distance * u
    w, _ = apply_boundary(w, "clip" if boundary == "clip" else "reflect", rows=(0.0, grid.ROW_MAX),
                          cols=(0.0, grid.COL_MAX))
    r = w[..., 0].round().clamp(0, grid.ROW_MAX).long()
    c = w[..., 1].round().clamp(0, grid.COL_MAX).long()
    cells = r * grid.COLS + c
    same = cells == true_cells[:, None]
    if same.any():
        # Step away from the truth on the grid: opposite direction of the clipped displacement.
        r2 = (rows[:, None] - u[..., 0].sign()).clamp(0, grid.ROW_MAX).long()
        c2 = (cols[:, None] - u[..., 1].sign()).clamp(0, grid.COL_MAX).long()
        alt = r2 * grid.COLS + c2
        alt = torch.where(alt == true_cells[:, None], (true_cells[:, None] + 1) % grid.N_CELLS, alt)
        cells = torch.where(same, alt, cells)
    return cells
