"""Shared fixtures: a tiny dataset whose images encode the gaze point as a dark disc, so training
tests run in seconds without the renderer."""

import csv

import cv2
import numpy as np
import pytest

from gazeneg import grid
from gazeneg.data.dataset import IMAGE_H, IMAGE_W, DatasetWriter, new_meta


def rewrite_labels(ds_dir, fn):
    """Replace a dataset's labels.csv rows (header included) by fn(rows): how tests corrupt or age a file."""
    path = ds_dir / "labels.csv"
    rows = fn(list(csv.reader(open(path, newline=""))))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def make_tiny_dataset(root, *, subjects=6, cells=None, frames=1, seed=0):
    rng = np.random.default_rng(seed)
    cells = range(grid.N_CELLS) if cells is None else cells
    with DatasetWriter(root, new_meta("test-tiny"), fsync=False) as wr:
        for s in range(subjects):
            shade = int(rng.integers(150, 220))
            for c in cells:
                r, cc = grid.index_to_cell(c)
                for k in range(frames):
                    img = np.full((IMAGE_H, IMAGE_W, 3), shade, np.uint8)
                    x = 8 + cc * (IMAGE_W - 16) / grid.COL_MAX + rng.normal(0, 0.3)
                    y = 6 + r * (IMAGE_H - 12) / grid.ROW_MAX + rng.normal(0, 0.3)
                    cv2.circle(img, (int(round(x * 4)), int(round(y * 4))), 12, (30, 30, 30), -1,
                               lineType=cv2.LINE_AA, shift=2)
                    wr.add(img, float(r), float(cc), subject=f"s{s:02d}", session="t",
                           name=f"s{s:02d}_{c:03d}_{k}.png", face=(200 + s, 150, 220, 220), frame=(640, 480))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds")
