"""The real-face benchmark's own geometry: a perturbed still must carry its hand marks along exactly,
or every error it reports is off."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_script("face_landmarks", "benchmarks")


def _dot_image(pts, size=(260, 200)):
    img = np.full((size[1], size[0], 3), 220, np.uint8)
    for x, y in pts:  # edge convention in, cv2's pixel-centre convention for drawing
        cv2.circle(img, (round((x - 0.5) * 16), round((y - 0.5) * 16)), 5 * 16, (10, 10, 10), -1, cv2.LINE_AA, shift=4)
    return img


def _centroids(img, pts):
    w = np.clip(200.0 - img[..., 0].astype(np.float64), 0, None)
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    out = []
    for x, y in pts:  # each dot's centroid in a window around where it should be
        m = ((xs + 0.5 - x) ** 2 + (ys + 0.5 - y) ** 2) < 12 ** 2
        out.append(((w * m * (xs + 0.5)).sum() / (w * m).sum(), (w * m * (ys + 0.5)).sum() / (w * m).sum()))
    return np.array(out)


@pytest.mark.parametrize("cond", ["rot+15", "rot-15", "scale0.5", "dark", "blur", "occlusion"])
def test_perturbations_carry_the_marks(bench, cond):
    marks = np.array([[83.4, 97.6], [151.2, 91.3]])  # non-symmetric, sub-pixel
    img, mk = bench.perturb(_dot_image(marks), marks, cond)
    if cond == "occlusion":  # the block covers below the eyes, not the eyes
        assert np.allclose(mk, marks) and (img != _dot_image(marks)).any()
        assert np.allclose(_centroids(img, mk), mk, atol=0.3)
        return
    tol = 0.6 if cond == "scale0.5" else 0.3
    assert np.abs(_centroids(img, mk) - mk).max() < tol, (cond, _centroids(img, mk), mk)


def test_marks_file_is_complete(bench):
    marks = json.loads(bench.MARKS.read_text())
    assert len(marks["stills"]) >= 25
    for name, m in marks["stills"].items():
        assert len(m["sha256"]) == 64, name
        assert m["left_iris"][0] < m["right_iris"][0], f"{name}: the left iris must have the smaller x"
