"""Smoothing filters for the gaze point: One Euro, constant-velocity Kalman, exponential moving average, none.

    f = make_smoother("one_euro", mincutoff=0.5, beta=0.3)
    smoothed = f.update((row, col), t)        # t in seconds; a gap longer than reset_after_s restarts it

Each filter has update(x (2,), t) -> (2,) and reset(). Units: cells and seconds. The default
(DEFAULT_SMOOTHER, DEFAULT_PARAMS) is the one benchmarks/filters.py chooses on synthetic fixation-and-saccade
gaze (docs/integration.md has its table): the steadiest during fixations among those that catch up with a
saccade within its lag budget.
"""

from __future__ import annotations

import math

import numpy as np


class EmaSmoother:
    """Exponential moving average: s <- s + alpha (x - s). alpha 1 = no smoothing."""

    def __init__(self, alpha: float = 0.3, *, reset_after_s: float = 0.5):
        if not 0 < alpha <= 1:
            raise ValueError(f"EMA alpha must be in (0, 1], not {alpha}")
        self.alpha, self.reset_after_s = alpha, reset_after_s
        self.reset()

    def reset(self) -> None:
        self.s, self.t = None, None

    def update(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.s is None or t - self.t > self.reset_after_s:
            self.s = x.copy()
        else:
            self.s = self.s + self.alpha * (x - self.s)
        self.t = t
        return self.s.copy()


class KalmanSmoother:
    """Constant-velocity Kalman filter on (row, col). State (r, c, vr, vc); white-noise acceleration of
    spectral density `accel` (cells^2/s^3) as process noise; measurement noise `noise` (cells, std).
    Larger accel follows saccades faster; larger noise smooths more."""

    def __init__(self, *, accel: float = 200.0, noise: float = 0.6, reset_after_s: float = 0.5):
        if accel <= 0 or noise <= 0:
            raise ValueError(f"Kalman accel and noise must be positive, not {accel}, {noise}")
        self.q, self.r, self.reset_after_s = accel, noise ** 2, reset_after_s
        self.reset()

    def reset(self) -> None:
        self.x, self.P, self.t = None, None, None

    def update(self, z, t: float) -> np.ndarray:
        z = np.asarray(z, np.float64)
        if self.x is None or t - self.t > self.reset_after_s:
            self.x = np.array([z[0], z[1], 0.0, 0.0])
            self.P = np.diag([self.r, self.r, 25.0, 25.0])
            self.t = t
            return z.copy()
        dt = max(t - self.t, 1e-3)
        self.t = t
        F = np.eye(4)
        F[0, 2] = F[1, 3] = dt
        q1 = np.array([[dt ** 3 / 3, dt ** 2 / 2], [dt ** 2 / 2, dt]]) * self.q
        Q = np.zeros((4, 4))
        Q[np.ix_([0, 2], [0, 2])] = q1
        Q[np.ix_([1, 3], [1, 3])] = q1
        x = F @ self.x
        P = F @ self.P @ F.T + Q
        S = P[:2, :2] + self.r * np.eye(2)        # H = [I 0]
        K = P[:, :2] @ np.linalg.inv(S)
        self.x = x + K @ (z - x[:2])
        self.P = (np.eye(4) - K @ np.hstack([np.eye(2), np.zeros((2, 2))])) @ P
        return self.x[:2].copy()


class NoSmoother:
    def reset(self) -> None:
        pass

    def update(self, x, t: float) -> np.ndarray:
        return np.asarray(x, np.float64).copy()


def one_euro_alpha(cutoff_hz: float, dt: float) -> float:
    """The smoothing factor of a first-order low-pass at cutoff_hz sampled every dt seconds (Casiez et al.
    2012): alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc), Te = dt."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """The 1 Euro filter (Casiez, Roussel, Vogel, CHI 2012), on each coordinate: a low-pass whose cutoff
    rises with the speed, fc = mincutoff + beta |dx/dt|, so fixations are smoothed hard (jitter) and
    saccades pass with little lag. The speed is the derivative of the raw input low-passed at dcutoff. This
    follows the authors' reference implementation (1euro.py): the derivative is taken against the previous
    raw value, the sampling rate from the timestamps.

    mincutoff (Hz): lower = steadier fixations, more lag at slow speeds. beta (1/cell): higher = less lag
    on fast movements. dcutoff (Hz): the derivative's cutoff (1 Hz in the paper)."""

    def __init__(self, *, mincutoff: float = 1.0, beta: float = 0.0, dcutoff: float = 1.0, freq: float = 30.0,
                 reset_after_s: float = 0.5):
        if mincutoff <= 0 or dcutoff <= 0 or beta < 0 or freq <= 0:
            raise ValueError(f"One Euro mincutoff, dcutoff, freq must be positive and beta >= 0, not "
                             f"{mincutoff}, {dcutoff}, {freq}, {beta}")
        self.mincutoff, self.beta, self.dcutoff, self.freq0 = mincutoff, beta, dcutoff, freq
        self.reset_after_s = reset_after_s
        self.reset()

    def reset(self) -> None:
        self.x_prev = None     # previous raw input
        self.s = None          # filtered value
        self.ds = None         # filtered derivative
        self.t = None
        self.freq = self.freq0

    def update(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64).reshape(-1)
        if self.s is None or (self.t is not None and t - self.t > self.reset_after_s):
            self.reset()
            self.x_prev, self.s, self.ds, self.t = x.copy(), x.copy(), np.zeros_like(x), t
            return x.copy()
        if t > self.t:
            self.freq = 1.0 / (t - self.t)
        self.t = t
        te = 1.0 / self.freq
        dx = (x - self.x_prev) * self.freq
        a_d = one_euro_alpha(self.dcutoff, te)
        self.ds = a_d * dx + (1 - a_d) * self.ds
        cutoff = self.mincutoff + self.beta * np.abs(self.ds)
        a = np.array([one_euro_alpha(c, te) for c in cutoff])
        self.s = a * x + (1 - a) * self.s
        self.x_prev = x.copy()
        return self.s.copy()


SMOOTHERS = ("ema", "kalman", "none", "one_euro")
# Chosen by benchmarks/filters.py (docs/integration.md): see DEFAULT_PARAMS for each filter's settings there.
DEFAULT_SMOOTHER = "one_euro"
DEFAULT_PARAMS = {"one_euro": {"mincutoff": 0.5, "beta": 0.3}, "kalman": {"accel": 200.0, "noise": 0.6},
                  "ema": {"alpha": 0.3}, "none": {}}


def make_smoother(kind: str = DEFAULT_SMOOTHER, **kwargs):
    """A filter by name; kwargs override DEFAULT_PARAMS[kind]."""
    if kind not in SMOOTHERS:
        raise ValueError(f"unknown smoother {kind!r}; choose one of {', '.join(SMOOTHERS)}")
    params = {**DEFAULT_PARAMS[kind], **kwargs}
    if kind == "ema":
        return EmaSmoother(**params)
    if kind == "kalman":
        return KalmanSmoother(**params)
    if kind == "one_euro":
        return OneEuroFilter(**params)
    return NoSmoother(**params)
