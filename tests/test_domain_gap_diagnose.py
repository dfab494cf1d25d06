"""benchmarks/domain_gap.py --diagnose: what the pixel classifier separates real strips from renders on,
checked on strips with known differences (no real media needed)."""

import types

import numpy as np
import pytest

from gazeneg.strip import IMAGE_H, IMAGE_W
from tests.conftest import load_script


def _dg():
    return load_script("domain_gap", "benchmarks")


ARGS = types.SimpleNamespace(seed=0, folds=5, l2=1e-2)


def _strips(n, rng, pattern=None):
    """n noisy grey strips (uint8 RGB) around a smooth horizontal gradient, plus `pattern` (H, W) if given."""
    base = 90 + 60 * np.linspace(0, 1, IMAGE_W)[None, :] + np.zeros((IMAGE_H, 1))
    out = base[None] + rng.normal(0, 25, (n, IMAGE_H, IMAGE_W)) + rng.normal(0, 15, (n, 1, 1))
    if pattern is not None:
        out = out + pattern
    return np.repeat(np.clip(out, 0, 255).astype(np.uint8)[..., None], 3, axis=3)


def test_seam_step_sees_two_halves_cut_apart_and_not_one_continuous_strip():
    dg = _dg()
    cut = np.full((1, IMAGE_H, IMAGE_W, 3), 60, np.uint8)
    cut[:, :, : IMAGE_W // 2] = 160
    cut[:, ::2] += 10                                   # some contrast inside each half
    smooth = np.repeat(np.linspace(60, 160, IMAGE_W)[None, None, :, None], 3, 3).repeat(IMAGE_H, 1).astype(np.uint8)
    assert dg.seam_step(cut)[0] > 0.8
    assert abs(dg.seam_step(smooth)[0]) < 0.1


def test_mean_difference_parts_add_up_and_name_the_properties():
    dg = _dg()
    d = np.random.default_rng(0).normal(size=(8, 24))
    p = dg.mean_difference_parts(d)
    assert np.allclose(p["left-right symmetric"] + p["left-right antisymmetric"], d)
    assert np.allclose(p["coarse (6x2)"] + p["fine (all but 6x2)"], d)
    assert np.allclose(p["left-right symmetric"], p["left-right symmetric"][:, ::-1])
    assert np.allclose(p["row profile"].std(1), 0) and np.allclose(p["column profile"].std(0), 0)
    assert np.count_nonzero(p["seam columns"].any(0)) == 4


def test_removing_the_mean_difference_removes_a_fixed_pattern_and_the_jitter_keeps_shapes():
    """Real = renders + one fixed pattern: the classifier finds it (AUC ~1) until the mean difference is
    removed from the renders, then it cannot (AUC ~0.5)."""
    dg = _dg()
    rng = np.random.default_rng(1)
    pattern = np.zeros((IMAGE_H, IMAGE_W))
    pattern[8:16, 10:30] = -12                           # a darker blob where an iris might sit
    pattern[24:, :] += 8                                 # and a brighter bottom
    real, renders = _strips(120, rng, pattern), _strips(120, rng)
    out = dg.mean_difference_removed(dg.standardised(real), dg.standardised(renders), ARGS)
    assert out["0"] > 0.95
    assert out["1"] == pytest.approx(0.5, abs=0.02) and out["0.5"] > out["0.9"]
    assert dg.jittered(real[:3], 0, shift_px=0.0, scale=0.0) == pytest.approx(real[:3], abs=1)


def test_diagnose_writes_its_figures_and_numbers(tmp_path):
    dg = _dg()
    rng = np.random.default_rng(2)
    pattern = np.zeros((IMAGE_H, IMAGE_W))
    pattern[:, : IMAGE_W // 2] += 30                     # a seam between the halves
    real = {"videos": _strips(60, rng, pattern), "stills": _strips(20, rng, pattern)}
    logs = []
    res = dg.diagnose(_strips(100, rng), real, ARGS, tmp_path / "diag", log=logs.append)
    assert set(res) == {"auc_normalised", "auc_parts", "seam_step", "mean_difference", "transfer", "figures"}
    assert res["seam_step"]["real_median"] > 0.3 and abs(res["seam_step"]["render_median"]) < 0.2
    assert res["auc_parts"]["seam columns only"] > 0.9
    assert list(res["transfer"]) == ["videos -> stills"] and res["transfer"]["videos -> stills"] > 0.9
    assert all(0.0 <= v <= 1.0 for v in res["auc_normalised"].values())
    for f in res["figures"]:
        assert (tmp_path / "diag" / f.split("/")[-1]).stat().st_size > 1000
    assert any("seam step" in line for line in logs)
