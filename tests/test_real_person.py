"""What transfers to a real person: the eye landmark features (defined the same way on the renderer's exact
geometry and on a landmark detection), kappa (each eye's optical axis off its visual axis, per person), and the
landmark-feature model (ridge regression on the face features, fitted in closed form)."""

import dataclasses
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from gazeneg.data.dataset import EYE_LEFT_XY, EYE_RIGHT_XY, IMAGE_W
from gazeneg.data.synth import DEFAULT_CONFIG, optical_axes, render_dataset, render_sample, sample_subject
from gazeneg.strip import EYE_SLICE, FACE_FEATURES, eye_features
from gazeneg.webcam.detect import landmark_features
from gazeneg.webcam.detection import Detection

CLEAN = DEFAULT_CONFIG.noiseless()
HEAD = dataclasses.replace(CLEAN, iris_view="head")   # renderer version 3's eye-in-head view


def _person(seed=7, kappa=((0.0, 0.0), (0.0, 0.0)), **kw):
    sp = sample_subject(np.random.default_rng(seed))
    return dataclasses.replace(sp, camera_cm=(0.0, -18.0, 0.0), pose_bias=(0.0, 0.0, 0.0), posture=(0.0, 0.0, 0.0),
                               kappa=kappa, canthal_tilt=0.0, eye_dx=0.0, eye_dy=0.0, **kw)


def _render(sp, row, col, config=CLEAN):
    return render_sample(sp, row, col, np.random.default_rng(0), config=config)


def _coloured(sp):
    """The same person painted for measuring: green skin, red sclera, blue iris (no rim, no texture), no brow
    and no lashes, so the pupil is the only dark thing and the eye opening the only red or blue one."""
    return dataclasses.replace(sp, skin_rgb=(0.0, 255.0, 0.0), sclera_rgb=(255.0, 0.0, 0.0), iris_rgb=(0.0, 0.0, 255.0),
                               limbal_ring=0.0, iris_texture=0.0, brow_alpha=0.0, lash_darkness=0.0,
                               socket_depth=0.0, crease_strength=0.0)


def _pupil_centres(img):
    """(2, 2) centroid (x, y) of the dark (pupil) pixels in each half of the strip."""
    dark = np.clip(1.0 - img.max(axis=2) / 255.0 - 0.75, 0.0, None)   # the pupil; not sclera in the lid's shade
    out = []
    for x0 in (0, IMAGE_W // 2):
        d = dark[:, x0:x0 + IMAGE_W // 2]
        ys, xs = np.mgrid[0:d.shape[0], 0:d.shape[1]]
        out.append(((d * (xs + 0.5)).sum() / d.sum() + x0, (d * (ys + 0.5)).sum() / d.sum()))
    return np.array(out)


def _opening_px(img, x):
    """Height (px) of the eye opening in strip column x: how much of each pixel is not skin (green)."""
    col = img[:, int(x)].astype(np.float64)
    eye = np.clip(1.0 - col[:, 1] / 255.0, 0.0, 1.0)     # the skin is exactly (0, 255, 0) here
    eye[col.max(axis=1) < 130] = 1.0                       # the pupil (and a glint on it)
    return float(eye.sum())


@pytest.mark.parametrize("row,col", [(2, 11), (6, 3), (4, 7.5)])
def test_eye_features_of_a_rendered_eye_match_what_its_pixels_show(row, col):
    """Known geometry: no crop jitter, no tilt, the corners at EYE_*_XY -+ eye_half_w. The features' iris x and
    y are where the dark iris sits in the image, relative to those corners, in eye widths; the lid opening is
    the eye opening's height in the eye's middle column, in eye widths."""
    sp = _coloured(_person())
    s = _render(sp, row, col)
    w = 2 * sp.eye_half_w
    f = s.eye_feats
    pupils = _pupil_centres(s.image)
    for k, (ex, ey) in enumerate((EYE_LEFT_XY, EYE_RIGHT_XY)):
        assert f[3 * k] == pytest.approx((pupils[k, 0] - ex) / w, abs=0.01)
        # a lid may hide a pupil's edge: looking down, the lower lid covers the pupil's bottom (1.2 px here)
        assert f[3 * k + 1] == pytest.approx((pupils[k, 1] - ey) / w, abs=0.035)
        assert f[3 * k + 2] == pytest.approx(_opening_px(s.image, ex) / w, abs=0.035)   # antialiased lid edges
    # and the definition on the geometry itself: corners on the eye line, the iris centre from iris_xy
    corners = [((ex - sp.eye_half_w, ey), (ex + sp.eye_half_w, ey)) for ex, ey in (EYE_LEFT_XY, EYE_RIGHT_XY)]
    again = eye_features(s.iris_xy, corners, f[[2, 5]])
    assert again == pytest.approx(f, abs=1e-9)


def test_eye_features_follow_the_gaze_the_right_way():
    sp = _person()
    a, right, down = _render(sp, 2, 3).eye_feats, _render(sp, 2, 11).eye_feats, _render(sp, 7, 3).eye_feats
    assert (right[[0, 3]] > a[[0, 3]] + 0.1).all()            # larger col: iris towards strip-right, both eyes
    assert (down[[1, 4]] > a[[1, 4]] + 0.08).all()            # larger row: iris down
    assert (down[[2, 5]] < a[[2, 5]] - 0.02).all()            # looking down: the upper lid follows, the eye narrows


def test_landmark_features_of_a_detection_are_measured_in_the_mirrored_view():
    """A raw frame 640 wide: the image-left eye (the person's right) with corners at x 100 and 140, its iris
    5 px towards its inner corner and 5 px down; the image-right eye with corners at 180 and 220, its iris 5 px
    towards its inner corner. Mirrored, the image-right eye is the strip's left one: both irises towards the
    nose is strip-left eye x > 0 and strip-right eye x < 0."""
    lm = SimpleNamespace(eye_corners=(((100.0, 200.0), (140.0, 200.0)), ((180.0, 200.0), (220.0, 200.0))),
                         iris=((125.0, 205.0), (195.0, 200.0)), opening=(0.30, 0.42))
    det = Detection(face=(80, 150, 160, 160), left_eye=(120.0, 200.0), right_eye=(200.0, 200.0), landmarks=lm)
    f = landmark_features(det, 640)
    assert f == pytest.approx([0.125, 0.0, 0.42, -0.125, 0.125, 0.30])
    assert landmark_features(Detection(face=(0, 0, 9, 9), left_eye=(1.0, 1.0), right_eye=(5.0, 1.0)), 640) is None


def test_kappa_turns_the_iris_temporally_and_is_drawn_per_person():
    """kappa (temporal, up) per eye turns the optical axis, which the iris shows, away from the nose and up;
    people differ by about 1.5 deg, so the same target reads differently per person: what a calibration fixes."""
    limbus = math.sqrt(DEFAULT_CONFIG.eyeball_radius_px ** 2 - DEFAULT_CONFIG.iris_radius_px ** 2)
    d = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    o = optical_axes(d, ((5.0, 0.0), (5.0, 2.0)))
    assert o[0, 0] == pytest.approx(-math.sin(math.radians(5)), abs=1e-6)   # image-left eye: temporal is -x
    assert o[1, 0] == pytest.approx(math.sin(math.radians(5)), abs=0.01)
    assert o[0, 1] == pytest.approx(0.0) and o[1, 1] < -0.03                 # up is -y
    assert limbus * math.sin(math.radians(5)) > 1.0                          # over a pixel of iris shift
    plain, turned = _person(), _person(kappa=((5.0, 2.0), (5.0, 2.0)))
    a, b = _render(plain, 4, 7.5), _render(turned, 4, 7.5)
    w = 2 * plain.eye_half_w
    assert b.iris_xy[0, 0] - a.iris_xy[0, 0] == pytest.approx(-limbus * math.sin(math.radians(5)), rel=0.15)
    assert b.iris_xy[1, 0] - a.iris_xy[1, 0] == pytest.approx(limbus * math.sin(math.radians(5)), rel=0.15)
    assert (b.eye_feats[[1, 4]] < a.eye_feats[[1, 4]] - 0.4 / w).all()
    draws = np.array([sample_subject(np.random.default_rng(s)).kappa for s in range(300)])   # (300, 2, 2)
    assert draws[:, :, 0].mean() == pytest.approx(DEFAULT_CONFIG.kappa_deg, abs=0.3)
    assert draws[:, 0, 0].std() == pytest.approx(math.hypot(DEFAULT_CONFIG.kappa_sd_deg, DEFAULT_CONFIG.kappa_eye_sd_deg),
                                                 rel=0.2)
    assert draws[:, 0, 1].std() > 1.0 and np.corrcoef(draws[:, 0, 1], draws[:, 1, 1])[0, 1] > 0.8
    places = np.array([sample_subject(np.random.default_rng(s)).camera_cm for s in range(300)])
    above, below = places[:, 1] < -17, places[:, 1] > 17
    beside = np.abs(places[:, 0]) > 30
    assert above.mean() == pytest.approx(0.6, abs=0.08) and below.mean() == pytest.approx(0.2, abs=0.06)
    assert beside.mean() == pytest.approx(0.2, abs=0.06)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    # every camera above the screen: with 4 people, one below or beside it would be a per-person offset of
    # several rows that no zero-shot model can know (docs/face.md), and this test is about the fit
    cfg = dataclasses.replace(DEFAULT_CONFIG, camera_place_p=(1.0, 0.0, 0.0))
    return render_dataset(tmp_path_factory.mktemp("lm") / "ds", n_subjects=4, frames_per_cell=1, seed=2, workers=1,
                          progress=False, contact_sheet=False, config=cfg)


def test_the_landmark_model_trains_in_closed_form_loads_and_beats_the_centre(rendered, tmp_path):
    from gazeneg.config import TrainConfig
    from gazeneg.model.checkpoint import load_checkpoint
    from gazeneg.model.networks import predict
    from gazeneg.training.loop import run

    cfg = TrainConfig(data=str(rendered), model="landmarks", out=str(tmp_path / "runs"), progress=False,
                      val_subjects=1, test_subjects=1, name="lm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = run(cfg, argv=["test"], log=lambda *_: None)
    import json

    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["outcome"] == "ok"
    assert m["test_mean_error_cells"] < 0.6 * m["centre_guess_error_cells"]
    model, ckpt = load_checkpoint(run_dir / "best.pt")
    assert ckpt["model_name"] == "landmarks" and math.isfinite(float(model.alpha))
    face = np.zeros((3, FACE_FEATURES), np.float32)
    out = predict(model, np.zeros((3, 32, 96, 3), np.uint8), face)
    assert np.isfinite(out).all() and out.shape == (3, 2)
    # it reads the eye features: moving both irises right moves the predicted column right
    face[1, EYE_SLICE] = [0.1, 0.0, 0.0, 0.1, 0.0, 0.0]
    out = predict(model, np.zeros((3, 32, 96, 3), np.uint8), face)
    assert out[1, 1] > out[0, 1] + 1.0


def test_the_camera_iris_view_places_the_iris_by_its_angle_to_the_camera():
    """iris_view "camera": an eye looking at the camera shows its iris camera_gaze_iris_px from the corner
    line; a camera below the screen shows the irises of a person looking at the screen's centre above the
    corner line (a camera above: below it); and a head turned with the gaze held moves the iris far less than
    the eye-in-head view says."""
    cam = dataclasses.replace(CLEAN, iris_view="camera")
    above = _person()
    below = dataclasses.replace(above, camera_cm=(0.0, 19.0, 0.0))
    w = 2 * above.eye_half_w
    assert (_render(above, 4, 7.5, cam).eye_feats[[1, 4]] > 0.03).all()
    assert (_render(below, 4, 7.5, cam).eye_feats[[1, 4]] < -0.1).all()
    centre_cam = dataclasses.replace(above, camera_cm=(0.0, 0.0, 0.0))     # a camera at the screen's centre
    at_camera = _render(centre_cam, 4, 7.5, cam)                             # looked at
    assert at_camera.iris_xy[:, 1] - EYE_LEFT_XY[1] == pytest.approx([cam.camera_gaze_iris_px] * 2, abs=0.05)
    assert at_camera.iris_xy[:, 0] == pytest.approx([EYE_LEFT_XY[0], EYE_RIGHT_XY[0]], abs=0.05)

    def shift(config):
        a = render_sample(above, 4, 7.5, np.random.default_rng(0), config=config, head_pose=(0, 0, 0))
        b = render_sample(above, 4, 7.5, np.random.default_rng(0), config=config, head_pose=(8, 0, 0))
        return abs(b.iris_xy[0, 0] - a.iris_xy[0, 0])

    assert shift(cam) < 0.3 * shift(HEAD) and shift(HEAD) > 1.5
    assert w > 30
