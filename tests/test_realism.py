"""The webcam look (gazeneg.data.realism): each effect does what it says, the whole look is deterministic
under a seed and keeps shape, dtype and range, and the training switch (config realism) turns it on and off."""

import json
import shutil
import types

import albumentations as A
import cv2
import numpy as np
import pytest

from gazeneg.config import ConfigError, from_dict
from gazeneg.data import realism, synth
from gazeneg.data.augment import augment_epoch, realism_enabled, realism_seed
from gazeneg.data.dataset import load_dataset
from gazeneg.strip import EYE_LEFT_XY, EYE_RIGHT_XY, IMAGE_H, IMAGE_W
from tests.conftest import load_script


@pytest.fixture(scope="module")
def renders(tiny_dataset):
    """48 renderer strips (4 people x 12 gaze points) and the tiny data set."""
    rng = np.random.default_rng(0)
    imgs = []
    for _ in range(4):
        person = synth.sample_subject(rng)
        for r, c in zip(rng.uniform(0, 8, 12), rng.uniform(0, 15, 12), strict=True):
            imgs.append(synth.render_sample(person, r, c, rng).image)
    return np.stack(imgs), load_dataset(tiny_dataset)


def _one(tf, img, seed=0):
    """One transform at p=1 through a seeded Compose."""
    tf.p = 1.0
    return A.Compose([tf], seed=seed)(image=img)["image"]


def _sharpness(img):
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


def _grey(img):
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)


def test_look_keeps_shape_dtype_and_is_seeded(renders):
    imgs, _ = renders
    a = realism.apply_webcam_look(imgs, 5)
    b = realism.apply_webcam_look(imgs, 5)
    c = realism.apply_webcam_look(imgs, 6)
    assert a.shape == imgs.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, imgs)
    # Each frame its own draw: not one shared change.
    d = (a.astype(float) - imgs).mean(axis=(1, 2, 3))
    assert d.std() > 1.0
    assert np.array_equal(imgs, renders[0])  # input untouched
    with pytest.raises(ValueError, match="uint8"):
        realism.apply_webcam_look(imgs.astype(np.float32), 0)


def test_look_moves_renders_towards_webcam_statistics(renders):
    """On average the look dims the strips, lowers their contrast, softens them and desaturates them:
    the directions in which real strips differ from the renders (issue 21)."""
    imgs, _ = renders
    out = realism.apply_webcam_look(np.repeat(imgs, 4, axis=0), 1)
    base = np.repeat(imgs, 4, axis=0)
    grey_in = np.array([_grey(i).mean() for i in base])
    grey_out = np.array([_grey(i).mean() for i in out])
    assert grey_out.mean() < grey_in.mean() - 10
    assert np.median([_grey(i).std() for i in out]) < np.median([_grey(i).std() for i in base])
    assert np.median([_sharpness(i) for i in out]) < np.median([_sharpness(i) for i in base])
    # colourfulness as chroma, max - min over the channels (HSV saturation blows up in dark pixels)
    chroma, chroma0 = ((x.max(-1).astype(int) - x.min(-1)).mean(axis=(1, 2)) for x in (out, base))
    assert chroma.mean() < chroma0.mean(), (chroma.mean(), chroma0.mean())


def test_dim_frames_lower_the_mean(renders):
    img = renders[0][0]
    tf = A.RandomBrightnessContrast(brightness_limit=(-0.35, -0.3), contrast_limit=0, p=1)
    assert _grey(_one(tf, img)).mean() < _grey(img).mean() - 20


def test_blur_and_downscale_lower_sharpness(renders):
    img = renders[0][0]
    look = realism.webcam_look(0)
    blur = next(t for t in look.transforms if isinstance(t, A.OneOf) and isinstance(t.transforms[0], A.Defocus))
    for t in blur.transforms:
        assert _sharpness(_one(t, img)) < 0.7 * _sharpness(img), type(t).__name__
    down = next(t for t in look.transforms if isinstance(t, A.Downscale))
    assert _sharpness(_one(down, img)) < 0.8 * _sharpness(img)


def test_side_shadow_darkens_one_side():
    img = np.full((IMAGE_H, IMAGE_W, 3), 180, np.uint8)
    sides = set()
    for seed in range(12):
        out = _grey(_one(realism.SideShadow(depth_range=(0.5, 0.5)), img, seed))
        left, right = out[:, :IMAGE_W // 4].mean(), out[:, -IMAGE_W // 4:].mean()
        dark, light = min(left, right), max(left, right)
        assert light > 150 and dark < 0.7 * 180, (left, right)
        sides.add(left < right)
    assert sides == {True, False}   # both sides get shadowed


def test_sclera_tint_greys_white_only(renders):
    img = np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8)
    img[:, :32] = (240, 238, 235)   # sclera-like: bright, colourless
    img[:, 32:64] = (60, 120, 200)  # iris-like: saturated
    img[:, 64:] = (90, 90, 90)      # dark grey skin / shadow
    out = _one(realism.ScleraTint(value_range=(0.6, 0.6), amount_range=(1, 1)), img)
    assert out[:, :32].mean() < 0.7 * 240
    assert np.array_equal(out[:, 32:], img[:, 32:])


def test_iris_tint_changes_saturated_pixels_only():
    img = np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8)
    img[:, :48] = (60, 120, 200)
    img[:, 48:] = (200, 200, 200)
    out = _one(realism.IrisTint(hue_shift=30, sat_range=(0.3, 0.3)), img)
    hsv_in, hsv_out = (cv2.cvtColor(i, cv2.COLOR_RGB2HSV).astype(int) for i in (img, out))
    assert hsv_out[:, :48, 1].mean() < 0.5 * hsv_in[:, :48, 1].mean()
    assert np.abs(out[:, 48:].astype(int) - img[:, 48:]).max() <= 1


def test_eyelashes_darken_above_the_eyes_only():
    img = np.full((IMAGE_H, IMAGE_W, 3), 200, np.uint8)
    out = _one(realism.Eyelashes(count_range=(14, 14), alpha_range=(0.9, 0.9)), img)
    diff = img.astype(int).sum(2) - out.astype(int).sum(2)
    assert diff.min() >= 0 and diff.max() > 100
    ys, xs = np.nonzero(diff > 30)
    assert (ys <= EYE_LEFT_XY[1]).all()          # above the eye line (the upper lid)
    near = np.minimum(np.abs(xs - EYE_LEFT_XY[0]), np.abs(xs - EYE_RIGHT_XY[0]))
    assert (near <= 24).all()
    assert (xs < IMAGE_W / 2).any() and (xs > IMAGE_W / 2).any()   # both eyes


def test_glare_brightens_a_streak():
    img = np.full((IMAGE_H, IMAGE_W, 3), 80, np.uint8)
    out = _one(realism.GlassesGlare(alpha_range=(0.5, 0.5)), img)
    assert out.min() >= 80 and out.max() > 150
    assert (out.astype(int).sum(2) > 3 * 90).mean() < 0.5   # a streak, not the whole strip


def test_noise_and_jpeg_change_a_flat_image():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(40, 220, (IMAGE_H, IMAGE_W, 3), dtype=np.uint8), (0, 0), 3)
    look = realism.webcam_look(0)
    noise = next(t for t in look.transforms if isinstance(t, A.OneOf) and isinstance(t.transforms[0], A.ISONoise))
    for t in noise.transforms:   # sensor noise: pixel-to-pixel variation the smooth image did not have
        assert _sharpness(_one(t, img)) > 2 * _sharpness(img), type(t).__name__
    grad = np.tile(np.linspace(0, 255, IMAGE_W, dtype=np.uint8)[None, :, None], (IMAGE_H, 1, 3))
    grad[::2, ::3] = 255 - grad[::2, ::3]
    jpeg = next(t for t in look.transforms if isinstance(t, A.ImageCompression))
    jpeg.quality_range = (30, 30)
    assert not np.array_equal(_one(jpeg, grad), grad)


def test_realism_setting():
    assert realism_enabled("auto", "synthetic") and not realism_enabled("auto", "webcam")
    assert realism_enabled("on", "webcam") and not realism_enabled("off", "synthetic")
    with pytest.raises(ValueError, match="realism 'maybe'"):
        realism_enabled("maybe", "synthetic")
    assert from_dict({}).realism == "auto" and from_dict({"realism": "off"}).realism == "off"
    with pytest.raises(ConfigError):
        from_dict({"realism": "maybe"})


def test_augment_epoch_switch_is_paired(renders):
    """realism=True changes the pixels but leaves the flip and the labels as realism=False draws them for
    the same seed (its own random stream), and realism=False is the augmentation as it was."""
    _, ds = renders
    x, y, f = ds.images[:64], ds.targets[:64], ds.face[:64]
    off = augment_epoch(x, y, f, seed=3)
    on = augment_epoch(x, y, f, seed=3, realism=True)
    assert np.array_equal(off[1], on[1]) and np.array_equal(off[2], on[2])
    assert not np.array_equal(off[0], on[0])
    assert np.array_equal(on[0], augment_epoch(x, y, f, seed=3, realism=True)[0])
    look_only = augment_epoch(x, y, f, seed=3, photometric=False, flip=False, realism=True)[0]
    assert np.array_equal(look_only, realism.apply_webcam_look(x, realism_seed(3)))


@pytest.mark.parametrize("backend", ["albumentations", "torch"])
def test_training_applies_the_look_as_configured(renders, tmp_path, monkeypatch, backend):
    """fit applies the look on synthetic data by default, not with realism off, and not without augment;
    "auto" leaves other data (here the tiny set, source "test-tiny") alone."""
    import gazeneg.training.loop as loop

    _, ds = renders
    synthetic = tmp_path / "synthetic"
    shutil.copytree(ds.root, synthetic)
    meta = json.loads((synthetic / "meta.json").read_text())
    (synthetic / "meta.json").write_text(json.dumps({**meta, "source": "synthetic"}))
    seen = []
    real = loop.augment_epoch

    def spy(*a, **kw):
        seen.append(kw.get("realism", False))
        return real(*a, **kw)

    monkeypatch.setattr(loop, "augment_epoch", spy)
    for data, setting, augment, expect in ((synthetic, "auto", True, True), (synthetic, "off", True, False),
                                           (synthetic, "on", False, False), (ds.root, "auto", True, False),
                                           (ds.root, "on", True, True)):
        seen.clear()
        cfg = from_dict(dict(data=str(data), epochs=1, out=str(tmp_path / f"{data.name}{setting}{augment}"), progress=False,
                             model="mlp", val_subjects=1, test_subjects=1, augment=augment, flip=True,
                             augment_backend=backend, ema=0.0, realism=setting))
        loop.run(cfg, argv=["x"])
        assert any(seen) == expect, (data.name, setting, augment, seen)


def _domain_gap():
    return load_script("domain_gap", "benchmarks")


def test_domain_gap_measures():
    """The benchmark's AUC, folds, logistic regression and statistics on cases with known answers."""
    dg = _domain_gap()
    assert dg.auc([3, 4, 5], [0, 1, 2]) == 1.0 and dg.auc([0, 1], [2, 3]) == 0.0
    assert dg.auc([1, 1], [1, 1]) == 0.5 and dg.auc([1, 3], [2]) == 0.5
    y = np.r_[np.ones(30), np.zeros(70)]
    folds = dg.stratified_folds(y, 5, 0)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(100))
    assert all(y[te].sum() == 6 and len(te) == 20 for _, te in folds)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 5))
    x[y == 1, 2] += 3.0                               # one informative feature
    scores, per_fold = dg.cross_validated(lambda a, b: dg.fit_logistic(a, b, 1e-2), x, y, folds)
    assert np.mean(per_fold) > 0.9
    noise = rng.normal(size=(100, 5))
    _, per_fold = dg.cross_validated(lambda a, b: dg.fit_logistic(a, b, 1e-2), noise, y, folds)
    assert 0.25 < np.mean(per_fold) < 0.75
    flat = np.full((2, IMAGE_H, IMAGE_W, 3), 128, np.uint8)
    flat[1, :, :, 0] = 200                            # a red cast
    flat[1, :, : IMAGE_W // 2] //= 2                  # and its left half in shadow
    st = dict(zip(dg.STATS, dg.strip_stats(flat).T, strict=True))
    assert st["brightness"][0] == pytest.approx(128 / 255, abs=0.01) and st["contrast"][0] < 1e-6
    assert st["chroma"][0] == 0 and st["warmth"][0] == 0 and st["side_asymmetry"][0] == 0
    assert st["warmth"][1] > 0.1 and st["green_tint"][1] < 0 and st["side_asymmetry"][1] > 0.5
    assert dg.percentile_of(np.arange(100), 49.5) == 50.0


def test_identity_null_scores_what_a_few_peoples_likeness_alone_gives(monkeypatch):
    """The null arranges renders like the real set (strips per source from as many people as the source has)
    against the other people: with no per-person look it stays near 0.5; when each person has a look of
    their own the classifier tells a few people from the rest, with no renderer gap at all."""
    dg = _domain_gap()
    monkeypatch.setattr(dg, "as_trained", lambda images, targets, face, *, realism, seed: images)
    rng = np.random.default_rng(0)
    subjects = np.repeat([f"s{i:02d}" for i in range(12)], 40)
    targets, face = np.zeros((len(subjects), 2), np.float32), np.zeros((len(subjects), 8), np.float32)
    args = types.SimpleNamespace(seed=0, folds=5, l2=1e-2)
    counts = {"videos": 60, "me": 30}

    def null(look_sd):
        looks = {s: rng.normal(0, look_sd, (IMAGE_H, IMAGE_W, 1)) for s in np.unique(subjects)}
        imgs = np.stack([np.clip(128 + 20 * rng.normal(size=(IMAGE_H, IMAGE_W, 3)) + looks[s], 0, 255)
                         for s in subjects]).astype(np.uint8)
        return dg.identity_null(counts, (imgs, targets, face, subjects), args, realism=True, draws=2)

    flat = null(0.0)
    assert flat["people_per_source"] == {"videos": 3, "me": 1} and flat["other_people"] == 8
    assert 0.3 < flat["auc_median"] < 0.7
    assert null(25.0)["auc_median"] > 0.85
