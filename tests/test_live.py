"""The live pipeline, smoothing, the calibration fit and file, and the calibrate -> validate state
machine, all headless."""

import json

import cv2
import numpy as np
import pytest
import torch

from gazeneg import grid
from gazeneg.model.checkpoint import save_checkpoint
from gazeneg.model.networks import create_model
from gazeneg.webcam import live as L
from gazeneg.webcam.capture import FrameClock
from tests.conftest import ListSource, face_frames, load_script

# A non-symmetric distortion of the truth, as a user-specific model bias: corrected by the calibration.
DISTORT = np.array([[0.8, 0.1, 1.2], [-0.05, 1.15, -0.7]])


@pytest.fixture(scope="module")
def frames():
    return face_frames(80)


def test_calibration_fit_recovers_an_affine_map():
    true = np.array(L.calibration_targets(9))
    raw = (true - DISTORT[:, 2]) @ np.linalg.inv(DISTORT[:, :2]).T  # DISTORT maps raw -> true
    cal = L.Calibration.fit(raw, true)
    assert np.allclose(cal.matrix, DISTORT, atol=1e-9)
    assert cal.fit_error_cells < 1e-9 and cal.n_points == 9
    assert np.allclose(cal.apply(raw), true)
    assert np.allclose(cal.apply(raw[3]), true[3])  # a single point works too
    assert L.Calibration().is_identity and np.allclose(L.Calibration().apply([2.0, 11.0]), [2.0, 11.0])


def test_calibration_needs_three_points_not_on_a_line():
    with pytest.raises(L.CalibrationError, match="at least 3 targets"):
        L.Calibration.fit([[1, 2], [3, 4]], [[1, 2], [3, 4]])
    line = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    with pytest.raises(L.CalibrationError, match="lie on one line"):
        L.Calibration.fit(line, line + 1)
    with pytest.raises(L.CalibrationError, match=r"must both be \(N, 2\)"):
        L.Calibration.fit(np.zeros((4, 3)), np.zeros((4, 3)))


def test_calibration_file_round_trip_and_errors(tmp_path):
    ckpt = tmp_path / "best.pt"
    path = L.calibration_path(ckpt, "me")
    assert path.name == "best.pt.calib.me.json"
    cal = L.Calibration(DISTORT.copy(), 9, 0.1)
    cal.save(path)
    back = L.Calibration.load(path)
    assert np.allclose(back.matrix, DISTORT) and back.n_points == 9
    assert not list(tmp_path.glob("*.tmp"))
    path.write_text("{not json")
    with pytest.raises(L.CalibrationError, match="best.pt.calib.me.json: not a gazeneg calibration file"):
        L.Calibration.load(path)
    path.write_text(json.dumps({"format_version": 1, "matrix": [[1, 0], [0, 1]]}))
    with pytest.raises(L.CalibrationError, match="2x3"):
        L.Calibration.load(path)
    assert L.Calibration.load_or_identity(tmp_path / "none.json").is_identity


def test_calibration_targets():
    nine = L.calibration_targets(9)
    assert len(set(nine)) == 9 and (4.0, 7.5) in nine and (0.0, 15.0) in nine
    three = np.array(L.calibration_targets(3))
    assert np.linalg.matrix_rank(np.hstack([three, np.ones((3, 1))])) == 3  # never collinear
    assert not set(L.VALIDATION_POINTS) & set(nine)  # validation targets are separate
    with pytest.raises(L.CalibrationError, match="3..25"):
        L.calibration_targets(2)


def test_ema_smoother():
    s = L.EmaSmoother(alpha=0.5)
    assert np.allclose(s.update([2.0, 11.0], 0.0), [2.0, 11.0])
    assert np.allclose(s.update([4.0, 11.0], 0.03), [3.0, 11.0])
    assert np.allclose(s.update([4.0, 11.0], 0.06), [3.5, 11.0])
    assert np.allclose(s.update([0.0, 0.0], 2.0), [0.0, 0.0])  # a gap resets it
    with pytest.raises(ValueError, match="alpha"):
        L.EmaSmoother(alpha=0.0)


def test_kalman_smoother_reduces_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    k = L.KalmanSmoother(accel=5.0, noise=0.5)
    t = np.arange(300) / 30.0
    truth = np.stack([2.0 + 0 * t, 3.0 + 1.5 * t], axis=1)  # moving right at 1.5 cells/s
    noisy = truth + rng.normal(0, 0.5, truth.shape)
    out = np.array([k.update(z, ti) for z, ti in zip(noisy, t, strict=True)])
    raw_err = np.linalg.norm(noisy[60:] - truth[60:], axis=1).mean()
    err = np.linalg.norm(out[60:] - truth[60:], axis=1).mean()
    assert err < raw_err / 2
    assert abs(np.mean(out[60:, 1] - truth[60:, 1])) < 0.1  # no lag on constant velocity


def test_make_smoother_names_the_choices():
    assert isinstance(L.make_smoother("ema", alpha=0.2), L.EmaSmoother)
    assert isinstance(L.make_smoother("kalman"), L.KalmanSmoother)
    with pytest.raises(ValueError, match="ema, kalman, none"):
        L.make_smoother("median")


def test_accuracy_and_precision_figures():
    # target (2, 11); samples 1 cell right of it, alternating 0.2 cells up and down
    pts = np.array([[2.0 + (0.1 if i % 2 else -0.1), 12.0] for i in range(10)])
    acc = L.accuracy([((2.0, 11.0), pts)], screen_cm=(32.0, 18.0), distance_cm=50.0)
    assert acc.mean_error_cells == pytest.approx(np.hypot(0.1, 1.0))
    assert acc.mean_error_cm == pytest.approx(np.hypot(0.1 * 2.0, 1.0 * 2.0))  # cells are 2 x 2 cm here
    assert acc.precision_cells == pytest.approx(0.2)
    assert acc.precision_cm == pytest.approx(0.4)
    want = grid.error_degrees(pts[:, 0], pts[:, 1], 2.0, 11.0, 32.0, 18.0, 50.0).mean()
    assert acc.mean_error_deg == pytest.approx(want)
    assert 0.3 < acc.precision_deg < 0.6  # 0.4 cm at ~50 cm is ~0.45 degrees
    assert acc.n_targets == 1 and acc.n_samples == 10 and "cm" in acc.lines()[0]
    with pytest.raises(L.CalibrationError, match="no validation samples"):
        L.accuracy([((2.0, 11.0), np.zeros((0, 2)))])


def test_target_collector():
    c = L.TargetCollector([(0.0, 0.0), (8.0, 15.0)], samples=3, fixation_s=0.5, timeout_s=2.0)
    c.feed([9.0, 9.0], 0.0)      # fixation: ignored
    c.feed([9.0, 9.0], 0.4)
    assert c.current == (0.0, 0.0) and not c.results
    for i, t in enumerate((0.5, 0.6, 0.7)):
        c.feed(None if i == 1 else [1.0, float(i)], t)  # a frame without a face is skipped
    assert c.current == (0.0, 0.0)
    c.feed([1.0, 3.0], 0.8)
    assert c.current == (8.0, 15.0) and c.results[0][1].shape == (3, 2)
    c.feed(None, 1.0)
    c.feed(None, 4.0)            # timeout with no samples: moves on with none
    assert c.done and c.results[1][1].shape == (0, 2)


def test_frame_pipeline_on_real_frames(frames):
    torch.manual_seed(0)
    pipe = L.FramePipeline(create_model("mlp"), smoother=L.make_smoother("ema", alpha=0.5))
    res = [pipe.process(f, i / 30.0) for i, f in enumerate(frames[:12])]
    assert all(r.det is not None and r.raw is not None for r in res)
    assert all(r.strip.shape == (32, 96, 3) for r in res)
    assert all(np.isfinite(r.smoothed).all() and r.cell is not None for r in res)
    assert set(res[-1].ms) == {"detect", "crop", "model", "smooth", "total"}
    summary = L.summarize_latency(res, warmup=2)
    assert summary["frames"] == 10 and summary["tracked"] >= 9 and summary["total"]["median_ms"] > 0
    blank = pipe.process(np.full_like(frames[0], 90), 1.0)
    assert blank.det is None and blank.smoothed is None


def test_a_non_finite_prediction_is_never_drawn_or_smoothed(frames):
    answers = iter([np.array([[np.nan, 3.0]]), np.array([[2.0, 11.0]]), np.array([[np.inf, 1.0]])])
    pipe = L.FramePipeline(predict_fn=lambda strips, feats: next(answers), smoother=L.make_smoother("ema", alpha=0.5))
    bad = pipe.process(frames[0], 0.0)
    assert bad.det is not None and bad.raw is None and bad.point is None and bad.smoothed is None
    good = pipe.process(frames[1], 1 / 30)
    assert np.allclose(good.smoothed, [2.0, 11.0])      # the NaN never reached the smoother
    again = pipe.process(frames[2], 2 / 30)
    assert again.smoothed is None and np.isfinite(pipe.smoother.update(np.array([2.0, 11.0]), 0.1)).all()


def test_frame_pipeline_needs_a_model():
    with pytest.raises(ValueError, match="model or a predict_fn"):
        L.FramePipeline()


def _session_with_fake_model(frames, tmp_path, calibrate="auto", noise=0.05, seed=0):
    """A LiveSession whose 'model' answers the distorted current target plus noise: what a model with
    a per-user bias would do while the person looks at each target."""
    rng = np.random.default_rng(seed)
    inv = np.linalg.inv(np.vstack([DISTORT, [0, 0, 1]]))[:2]
    holder = {}

    def predict_fn(strips, feats):
        s = holder["session"]
        target = s.collector.current if s.collector is not None and s.collector.current else (4.0, 7.5)
        raw = inv @ np.array([target[0], target[1], 1.0]) + rng.normal(0, noise, 2)
        return raw[None]

    pipe = L.FramePipeline(predict_fn=predict_fn, smoother=L.make_smoother("none"))
    logs = []
    session = L.LiveSession(pipe, calib_path=tmp_path / "m.pt.calib.json", calibrate=calibrate, samples=4,
                            fixation_s=0.1, screen_cm=(34.4, 19.3), distance_cm=60.0, log=logs.append)
    holder["session"] = session
    return session, logs


def test_calibrate_then_validate_headless(frames, tmp_path):
    session, logs = _session_with_fake_model(frames, tmp_path)
    assert session.mode == L.CALIBRATE
    results = L.run_live(session, ListSource(frames * 3), clock=FrameClock(30.0))
    assert session.mode == L.TRACK and session.report is not None
    cal = L.Calibration.load(tmp_path / "m.pt.calib.json")
    assert np.allclose(cal.matrix, DISTORT, atol=0.1)
    # After calibration the validation targets are hit to within the noise.
    assert session.report.mean_error_cells < 0.2 and session.report.n_targets == len(L.VALIDATION_POINTS)
    assert session.report.precision_cells < 0.2 and session.report.mean_error_deg < 1.0
    assert any("calibration saved" in m for m in logs) and any("accuracy on 8 validation targets" in m for m in logs)
    assert len(results) > 0
    # Next time the saved calibration is loaded and only the accuracy check runs.
    again, logs2 = _session_with_fake_model(frames, tmp_path)
    assert again.mode == L.VALIDATE and not again.pipe.calibration.is_identity
    assert any("calibration loaded" in m for m in logs2)
    # Keys: c recalibrates, Esc ends.
    again.press("c", 0.0)
    assert again.mode == L.CALIBRATE and again.pipe.calibration.is_identity
    again.press("esc", 0.0)
    assert again.mode == L.DONE


def test_failed_calibration_keeps_tracking(frames, tmp_path):
    # A model that always answers the same point: the fit is impossible; the session says so and goes on.
    pipe = L.FramePipeline(predict_fn=lambda s, f: np.array([[4.0, 7.5]]), smoother=L.make_smoother("none"))
    logs = []
    session = L.LiveSession(pipe, calib_path=tmp_path / "x.calib.json", samples=2, fixation_s=0.0, log=logs.append)
    L.run_live(session, ListSource(frames * 2), clock=FrameClock(30.0))
    assert session.mode == L.TRACK and session.error and "calibration failed" in session.error
    assert not (tmp_path / "x.calib.json").exists()


def test_render_live_without_a_window(frames, tmp_path):
    session, _ = _session_with_fake_model(frames, tmp_path, calibrate="never")
    session.press("esc", 0.0)
    res = session.feed(frames[0], 0.0)
    img = L.render_live(session, res, frames[0], 960, 540, 0.0)
    assert img.shape == (540, 960, 3)


def test_live_script_headless_with_a_checkpoint(frames, tmp_path, capsys):
    model = create_model("gazecnn", width=8)
    ckpt = tmp_path / "best.pt"
    save_checkpoint(ckpt, model, model_name="gazecnn", model_kwargs={"width": 8}, config={}, epoch=0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames[:25]):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), f)
    script = load_script("live")
    assert script.main([str(ckpt), "--source", str(folder), "--headless", "--smoother", "ema"]) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out)
    assert out["frames"] > 0 and out["with_face"] == out["frames"] and out["total"]["median_ms"] > 0
    assert not L.calibration_path(ckpt).exists()  # headless never calibrates
    # headless shows its progress through the file on stderr (it showed nothing for 25 s)
    assert "live --headless" in printed.err and "25/25" in printed.err
    assert script.main([str(ckpt), "--source", str(folder), "--headless", "--max-frames", "10"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["frames"] == 10 - 1 and "10/10" in printed.err   # 1 warm-up frame left out


def test_landmark_backend_skips_blinks_and_shows_them(frames, tmp_path, monkeypatch):
    from gazeneg.webcam import model_files as models_cache
    from gazeneg.webcam.detect import make_detector
    from tests.test_landmarks import shut_eyes

    try:
        models_cache.fetch(quiet=True)
    except models_cache.ModelFileError as e:
        pytest.skip(f"landmark model files unavailable and could not be fetched: {e}")
    torch.manual_seed(0)
    pipe = L.FramePipeline(create_model("mlp"), detector=make_detector("landmarks", track=False))
    open_ = pipe.process(frames[0], 0.0)
    assert open_.det.backend == "landmarks" and not open_.closed and open_.raw is not None
    shut = shut_eyes(frames[0], open_.det.landmarks.mesh)
    res = pipe.process(shut, 0.1)
    assert res.det is not None and res.det.landmarks.blink and res.closed and res.raw is None
    session, _ = _session_with_fake_model(frames, tmp_path, calibrate="never")
    texts = []
    real_put = cv2.putText
    monkeypatch.setattr(cv2, "putText", lambda img, text, *a, **k: texts.append(text) or real_put(img, text, *a, **k))
    img = L.render_live(session, res, shut, 960, 540, 0.1)
    assert img.shape == (540, 960, 3)
    assert any("BLINK" in t and "[landmarks]" in t and "yaw" in t for t in texts), texts
