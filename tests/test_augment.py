"""The two augmentation backends: albumentations per epoch on the CPU, and DeviceAugment per batch in
torch on the training device (the GPU path; run here on the CPU, where the same torch ops execute)."""

import json

import numpy as np
import torch

from gazeneg import grid
from gazeneg.config import from_dict
from gazeneg.data.augment import DeviceAugment, augment_epoch
from gazeneg.data.dataset import PIXEL_MEAN, PIXEL_STD, load_dataset, normalize_images
from gazeneg.training.loop import run


def _batch(tiny_dataset, n=64):
    ds = load_dataset(tiny_dataset)
    idx = np.linspace(0, len(ds) - 1, n).astype(int)
    return (torch.from_numpy(np.ascontiguousarray(ds.images[idx])), torch.from_numpy(ds.targets[idx].astype(np.float32)),
            torch.from_numpy(ds.face[idx].astype(np.float32)))


def test_off_is_plain_normalisation(tiny_dataset):
    x, y, f = _batch(tiny_dataset)
    xa, ya, fa = DeviceAugment(0, "cpu", photometric=False, flip=False)(x, y, f)
    assert xa.shape == (len(x), 3, *x.shape[1:3]) and xa.dtype == torch.float32
    torch.testing.assert_close(xa, normalize_images(x), atol=1e-6, rtol=0)
    assert torch.equal(ya, y) and torch.equal(fa, f)


def test_flip_mirrors_image_and_labels(tiny_dataset):
    x, y, f = _batch(tiny_dataset)
    y[:, 1] = torch.linspace(0, 14, len(y))          # no col 7.5, so a flip always changes the col
    xa, ya, fa = DeviceAugment(3, "cpu", photometric=False, flip=True)(x, y, f)
    flipped = ya[:, 1] != y[:, 1]
    assert 0.25 < flipped.float().mean() < 0.75
    torch.testing.assert_close(ya[flipped, 1], grid.COL_MAX - y[flipped, 1])
    assert torch.equal(ya[:, 0], y[:, 0])
    torch.testing.assert_close(fa[flipped, 0], -f[flipped, 0])
    assert torch.equal(fa[~flipped], f[~flipped]) and torch.equal(fa[:, 1:], f[:, 1:])
    plain = normalize_images(x)
    torch.testing.assert_close(xa[flipped], plain[flipped].flip(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(xa[~flipped], plain[~flipped], atol=1e-6, rtol=0)
    # The inputs are not modified in place.
    assert not torch.equal(y[flipped, 1], ya[flipped, 1])


def test_deterministic_by_seed_and_in_range(tiny_dataset):
    x, y, f = _batch(tiny_dataset)
    a = DeviceAugment(7, "cpu")(x, y, f)
    b = DeviceAugment(7, "cpu")(x, y, f)
    c = DeviceAugment(8, "cpu")(x, y, f)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    lo, hi = (0 - PIXEL_MEAN) / PIXEL_STD, (1 - PIXEL_MEAN) / PIXEL_STD
    assert torch.isfinite(a[0]).all() and a[0].min() >= lo - 1e-5 and a[0].max() <= hi + 1e-5


def test_matches_albumentations_in_distribution(tiny_dataset):
    """Same transforms, same probabilities: the mean absolute pixel change per image agrees with the
    albumentations backend's within 30%, and so does the share of images left untouched."""
    x, y, f = _batch(tiny_dataset, 256)
    plain = normalize_images(x)
    xt = DeviceAugment(1, "cpu", flip=False)(x, y, f)[0]
    xa = normalize_images(augment_epoch(x.numpy(), y.numpy(), f.numpy(), seed=1, flip=False)[0])
    dt = (xt - plain).abs().mean(dim=(1, 2, 3))
    da = (xa - plain).abs().mean(dim=(1, 2, 3))
    assert 0.7 < dt.mean() / da.mean() < 1.3, (dt.mean(), da.mean())
    # p(no transform at all) = 0.3 * 0.3 * 0.7 * 0.7 = 0.044 for both.
    assert abs((dt < 1e-6).float().mean() - (da < 1e-6).float().mean()) < 0.05


def test_training_with_the_torch_backend(tiny_dataset, tmp_path):
    """augment_backend "torch" trains as well as the albumentations backend (on the CPU, as a GPU run
    would on its device)."""
    errs = {}
    for backend in ("albumentations", "torch"):
        cfg = from_dict(dict(data=str(tiny_dataset), epochs=20, out=str(tmp_path / backend), progress=False,
                             model="mlp", val_subjects=1, test_subjects=1, augment=True, flip=True,
                             augment_backend=backend, ema=0.0))
        rd = run(cfg, argv=["x"])
        errs[backend] = json.loads((rd / "metrics.json").read_text())["test_mean_error_cells"]
    centre = 4.88
    assert errs["torch"] < centre / 2 and errs["albumentations"] < centre / 2, errs
    assert errs["torch"] < 1.5 * errs["albumentations"] + 0.2, errs
