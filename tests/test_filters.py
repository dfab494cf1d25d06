"""The gaze filters: One Euro against the authors' reference implementation (Casiez et al. 2012), its
published formulas and its behaviour (a fixed low-pass at rest, less lag with beta); make_smoother's names;
and the default filter is the one benchmarks/filters.py chooses."""

import math

import numpy as np
import pytest

from gazeneg.webcam import filters as F
from tests.conftest import load_script


# The reference implementation (1euro.py by Géry Casiez, the paper's companion code), transcribed as is:
# LowPassFilter keeps the last raw value; OneEuroFilter takes the derivative against it.
class RefLowPass:
    def __init__(self, alpha, initval=0.0):
        self.y = self.s = initval
        self.alpha = alpha
        self.initialized = False

    def __call__(self, value, alpha=None):
        if alpha is not None:
            self.alpha = alpha
        if self.initialized:
            s = self.alpha * value + (1.0 - self.alpha) * self.s
        else:
            s = value
            self.initialized = True
        self.y, self.s = value, s
        return s

    def last_value(self):
        return self.y


class RefOneEuro:
    def __init__(self, freq, mincutoff=1.0, beta=0.0, dcutoff=1.0):
        self.freq, self.mincutoff, self.beta, self.dcutoff = freq, mincutoff, beta, dcutoff
        self.x = RefLowPass(self.alpha(mincutoff))
        self.dx = RefLowPass(self.alpha(dcutoff))
        self.lasttime = None

    def alpha(self, cutoff):
        te = 1.0 / self.freq
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def __call__(self, x, timestamp=None):
        if self.lasttime and timestamp:
            self.freq = 1.0 / (timestamp - self.lasttime)
        self.lasttime = timestamp
        prev_x = self.x.last_value() if self.x.initialized else None
        dx = 0.0 if prev_x is None else (x - prev_x) * self.freq
        edx = self.dx(dx, alpha=self.alpha(self.dcutoff))
        cutoff = self.mincutoff + self.beta * math.fabs(edx)
        return self.x(x, alpha=self.alpha(cutoff))


def test_one_euro_alpha_is_the_published_formula():
    # fc 1 Hz at 60 Hz: tau = 1/(2 pi), Te = 1/60, alpha = 1/(1 + 60/(2 pi)) = 0.09479...
    assert F.one_euro_alpha(1.0, 1 / 60) == pytest.approx(1 / (1 + 60 / (2 * math.pi)))
    assert F.one_euro_alpha(1.0, 1 / 60) == pytest.approx(0.094793, abs=1e-6)
    assert F.one_euro_alpha(1e6, 1 / 30) > 0.9999          # a very high cutoff passes the signal


@pytest.mark.parametrize("mincutoff,beta,dcutoff", [(1.0, 0.0, 1.0), (0.5, 0.3, 1.0), (2.0, 5.0, 0.7)])
def test_one_euro_matches_the_reference_implementation(mincutoff, beta, dcutoff):
    rng = np.random.default_rng(1)
    n = 400
    t = 1.0 + np.cumsum(rng.uniform(0.025, 0.042, n))        # jittered ~30 Hz timestamps
    x = np.stack([np.where(np.arange(n) < 200, 2.0, 6.0), 11.0 + 0.1 * np.arange(n) / 30], 1)
    x = x + rng.normal(0, 0.3, x.shape)
    ours = F.OneEuroFilter(mincutoff=mincutoff, beta=beta, dcutoff=dcutoff, freq=30.0, reset_after_s=10.0)
    refs = [RefOneEuro(30.0, mincutoff, beta, dcutoff) for _ in range(2)]
    got = np.array([ours.update(xi, ti) for xi, ti in zip(x, t, strict=True)])
    want = np.array([[refs[k](xi[k], ti) for k in range(2)] for xi, ti in zip(x, t, strict=True)])
    assert np.allclose(got, want, atol=1e-12)


def test_one_euro_at_rest_is_a_first_order_low_pass_and_beta_cuts_lag():
    dt = 1 / 30
    f = F.OneEuroFilter(mincutoff=1.0, beta=0.0)
    f.update([0.0, 0.0], 0.0)
    a = F.one_euro_alpha(1.0, dt)
    out = [f.update([1.0, 1.0], (i + 1) * dt)[0] for i in range(10)]
    assert np.allclose(out, 1 - (1 - a) ** np.arange(1, 11))  # a step through alpha's first-order filter

    def frames_to_90(beta):
        g = F.OneEuroFilter(mincutoff=1.0, beta=beta)
        g.update([0.0, 0.0], 0.0)
        return next(i for i in range(1, 100) if g.update([5.0, 5.0], i * dt)[0] >= 4.5)
    assert frames_to_90(1.0) < frames_to_90(0.1) < frames_to_90(0.0)


def test_one_euro_restarts_after_a_gap_and_checks_its_settings():
    f = F.OneEuroFilter(mincutoff=0.5, reset_after_s=0.5)
    f.update([0.0, 0.0], 0.0)
    assert np.allclose(f.update([3.0, 4.0], 2.0), [3.0, 4.0])
    with pytest.raises(ValueError, match="One Euro"):
        F.OneEuroFilter(mincutoff=0.0)


def test_make_smoother_names_and_defaults():
    assert isinstance(F.make_smoother("one_euro"), F.OneEuroFilter)
    assert F.make_smoother("one_euro", beta=0.7).beta == 0.7
    assert isinstance(F.make_smoother(), type(F.make_smoother(F.DEFAULT_SMOOTHER)))
    with pytest.raises(ValueError, match="ema, kalman, none, one_euro"):
        F.make_smoother("median")
    from gazeneg.webcam import live

    assert live.make_smoother is F.make_smoother and live.KalmanSmoother is F.KalmanSmoother


def _benchmark():
    return load_script("filters", "benchmarks")


def test_benchmark_metrics_on_known_signals():
    b = _benchmark()
    seq = b.make_sequence(seed=0, seconds=6.0, noise=0.0)
    # No filter on noise-free gaze: no jitter, no lag beyond the sampling, no overshoot.
    m = b.evaluate(F.make_smoother("none"), seq)
    assert m["precision_cells"] == pytest.approx(0.0, abs=1e-12)
    assert m["lag_ms"] <= 1000 / 30 + 1e-6 and m["overshoot_cells"] == pytest.approx(0.0, abs=1e-12)
    # A heavy EMA lags and never overshoots; the Kalman's velocity overshoots a step.
    ema = b.evaluate(F.make_smoother("ema", alpha=0.1), seq)
    assert ema["lag_ms"] > 300 and ema["overshoot_cells"] == pytest.approx(0.0, abs=1e-9)
    assert b.evaluate(F.make_smoother("kalman", accel=200.0, noise=0.6), seq)["overshoot_cells"] > 0.05


def test_the_default_filter_is_the_benchmarks_choice():
    b = _benchmark()
    table = b.run_table()   # the benchmark's own defaults: the run docs/integration.md shows
    kind, params = b.choose(table)
    assert kind == F.DEFAULT_SMOOTHER and params == F.DEFAULT_PARAMS[kind]
