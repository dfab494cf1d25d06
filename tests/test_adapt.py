"""Renders matched to a camera (gazeneg.data.adapt, `gazeneg adapt`, train --camera-mean): the gain makes the
training photos' mean strip the camera's and multiplies every photo by the same image; the file is numbers only
and a bad one is one clear error; training applies it last, on what the model sees; the benchmark's
held-out protocol tests a camera's strips the mean never saw."""

import json

import numpy as np
import pytest
import torch

from gazeneg.cli.main import main as gazeneg_main
from gazeneg.config import ConfigError, from_dict
from gazeneg.data.adapt import CameraMean, CameraMeanError, adapt_to_camera, fit_camera_mean
from gazeneg.data.dataset import load_dataset
from gazeneg.strip import IMAGE_H, IMAGE_W
from tests.conftest import load_script


def _strips(n, seed=0, lo=60, hi=190):
    return np.random.default_rng(seed).integers(lo, hi, (n, IMAGE_H, IMAGE_W, 3)).astype(np.uint8)


def test_the_gain_gives_the_cameras_mean_and_keeps_what_varies():
    camera = fit_camera_mean(_strips(40, seed=1, lo=60, hi=120), "cam")
    renders = _strips(300, seed=2, lo=80, hi=180)
    out = adapt_to_camera(renders, camera)
    assert out.dtype == np.uint8 and out.shape == renders.shape
    # the mean strip is the camera's to the rounding (at most half a grey level)
    assert np.abs(out.astype(np.float64).mean(0) - camera.mean).max() <= 0.5 + 1e-3
    # every photo multiplied by the same gain image: out = photo x gain, to the rounding
    gain = camera.mean / renders.astype(np.float64).mean(0)
    assert np.abs(out - renders * gain).max() <= 0.5 + 1e-3
    # a camera whose mean is the renders' own changes nothing
    same = CameraMean(renders.astype(np.float64).mean(0).astype(np.float32), 300, "self")
    assert np.abs(adapt_to_camera(renders, same).astype(np.int16) - renders).max() <= 1
    # where the gain would pass 255, the clipped pixels' share goes to the others: the mean still arrives
    bright = fit_camera_mean(_strips(40, seed=3, lo=170, hi=250), "bright")
    up = adapt_to_camera(renders, bright)
    assert (up == 255).any() and np.abs(up.astype(np.float64).mean(0) - bright.mean).mean() < 1.0


def test_camera_mean_file_round_trip_and_clear_errors(tmp_path):
    cam = fit_camera_mean(_strips(25), "/some/frames")
    path = cam.save(tmp_path / "cam.npz")
    back = CameraMean.load(path)
    assert np.array_equal(back.mean, cam.mean) and back.n == 25 and back.source == "/some/frames"
    with np.load(path, allow_pickle=False) as z:   # numbers only: loads without pickle
        assert set(z.files) == {"mean", "info"}
    with pytest.raises(CameraMeanError, match="no such camera-mean file"):
        CameraMean.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CameraMeanError, match="junk.npz: not a camera-mean file"):
        CameraMean.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "shape.npz", mean=np.zeros((8, 8, 3)), info=np.array('{"format": "gazeneg-camera-mean-1"}'))
    with pytest.raises(CameraMeanError, match=r"shape.npz: the mean strip is \(8, 8, 3\)"):
        CameraMean.load(tmp_path / "shape.npz")
    with pytest.raises(CameraMeanError, match="3 eye strips .* at least 20"):
        fit_camera_mean(_strips(3), "few")
    with pytest.raises(CameraMeanError, match="expected eye strips of shape"):
        fit_camera_mean(np.zeros((30, 8, 8, 3), np.uint8), "odd")


def _epoch_photo_means(monkeypatch) -> list:
    """The mean strip of each epoch's training photos as training hands them to the model (loop._epoch_data
    watched), appended to the returned list as the runs go."""
    import gazeneg.training.loop as loop

    means, real = [], loop._epoch_data

    def spy(t, epoch):
        aug = real(t, epoch)
        means.append(t.data[0].numpy().astype(np.float64).mean(0))
        return aug

    monkeypatch.setattr(loop, "_epoch_data", spy)
    return means


def test_training_matches_each_epoch_to_the_camera_last(tiny_dataset, tmp_path, monkeypatch):
    """With --camera-mean every epoch's photos (after augmentation and flip) have the camera's mean; without
    it they do not; the torch augmentation backend is refused with the reason."""
    import gazeneg.training.loop as loop

    ds = load_dataset(tiny_dataset)
    target = np.full((IMAGE_H, IMAGE_W, 3), 205.0, np.float32)
    target[:, : IMAGE_W // 2] = 165.0                             # a camera with a darker left half
    CameraMean(target, 100, "test").save(tmp_path / "cam.npz")
    means = _epoch_photo_means(monkeypatch)
    for cam in (str(tmp_path / "cam.npz"), ""):
        means.clear()
        cfg = from_dict(dict(data=str(ds.root), epochs=2, out=str(tmp_path / f"run{bool(cam)}"), progress=False,
                             model="mlp", val_subjects=1, test_subjects=1, augment=True, flip=True, ema=0.0,
                             camera_mean=cam))
        loop.run(cfg, argv=["x"])
        assert len(means) == 2
        gap = max(np.abs(m - target).mean() for m in means)   # mean over pixels: a few clip at 0 or 255
        assert (gap < 1.0) if cam else (gap > 20), (cam, gap)
    cuda = torch.device("cuda")   # no GPU needed: which backend a CUDA run would pick
    assert loop._torch_augment(from_dict({}), cuda) and not loop._torch_augment(from_dict({"camera_mean": "c.npz"}), cuda)
    with pytest.raises(ConfigError, match="camera_mean .* albumentations"):
        from_dict(dict(camera_mean="x.npz", augment_backend="torch"))


def test_adapt_command_on_a_data_set_and_its_errors(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "cam.npz"
    assert gazeneg_main(["adapt", str(tiny_dataset), "--out", str(out)]) == 0
    cam = CameraMean.load(out)
    imgs = load_dataset(tiny_dataset).images
    assert cam.n == len(imgs) and np.allclose(cam.mean, imgs.astype(np.float64).mean(0), atol=1e-3)
    printed = capsys.readouterr().out
    assert "gazeneg train --camera-mean" in printed and "gazeneg live CHECKPOINT --camera-mean" in printed
    assert gazeneg_main(["adapt", str(tiny_dataset), "--out", str(out)]) == 2          # exists, no --force
    assert f"{out} exists" in capsys.readouterr().err
    assert gazeneg_main(["adapt", str(tmp_path / "nothing"), "--out", str(tmp_path / "c.npz")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_adapt_command_cuts_frames_like_live(tmp_path, capsys, landmark_models):
    """A folder of frames goes through the live pipeline; one real face is one strip, too few for a mean, said
    with the count."""
    import shutil

    from gazeneg.testing import astronaut_path

    frames = tmp_path / "frames" / "sub"
    frames.mkdir(parents=True)
    shutil.copy(astronaut_path(), frames / "a.png")
    assert gazeneg_main(["adapt", str(tmp_path / "frames"), "--out", str(tmp_path / "c.npz"), "--quiet"]) == 2
    assert "1 eye strips with both eyes open" in capsys.readouterr().err


def test_benchmark_tests_each_camera_on_strips_its_mean_did_not_see():
    """The camera arm's halves are disjoint (videos in blocks of consecutive strips), and a render set matched to
    a source's half has that half's mean strip."""
    dg = load_script("domain_gap", "benchmarks")
    real = {"videos": _strips(100, 3), "stills": _strips(9, 4), "astronaut": _strips(1, 5)}
    halves = dg.source_halves(real)
    assert set(halves) == {"videos", "stills"}
    a, b = halves["videos"]
    assert len(a) + len(b) == 100 and np.array_equal(a[:40], real["videos"][:40])
    assert np.array_equal(b[:40], real["videos"][40:80])
    rng = np.random.default_rng(0)
    matched = dg.camera_matched(_strips(500, 6), a, 500, rng)
    assert np.abs(matched.astype(np.float64).mean(0) - a.astype(np.float64).mean(0)).mean() < 3.0


# ------------------------------------------------------------------------------------------------------------
# The other direction: a camera's strips brought to the model's training mean at test time


def test_the_normaliser_brings_a_cameras_strips_to_the_training_mean():
    from gazeneg.data.adapt import MAX_GAIN, CameraNormaliser

    strips = _strips(300, seed=4, lo=40, hi=110)             # a dim camera
    camera = fit_camera_mean(strips, "cam")
    trained = _strips(200, seed=5, lo=90, hi=200).astype(np.float64).mean(0)
    norm = CameraNormaliser(camera, trained)
    out = norm(strips)
    assert out.dtype == np.uint8 and out.shape == strips.shape
    # the camera's mean strip becomes the model's training mean, to the rounding (nothing clips here)
    assert np.abs(out.astype(np.float64).mean(0) - trained).max() <= 0.5 + 1e-3
    # every strip multiplied by the same gain image, one strip alone as in a batch
    assert np.abs(out - strips * (trained / camera.mean)).max() <= 0.5 + 1e-3
    assert np.array_equal(norm(strips[7]), out[7])
    # a camera whose mean is the training mean changes nothing; a black camera mean gets a bounded gain
    assert np.array_equal(CameraNormaliser(camera, camera.mean)(strips), strips)
    dark = CameraMean(np.zeros_like(camera.mean), 30, "black")
    assert CameraNormaliser(dark, trained).gain.max() == MAX_GAIN


def test_training_records_the_mean_strip_it_trained_on(tiny_dataset, tmp_path, monkeypatch):
    """Every checkpoint carries the first epoch's augmented photos' mean strip (the raw photos' without
    augmentation); a checkpoint without one is one clear error."""
    import gazeneg.training.loop as loop
    from gazeneg.data.adapt import input_mean_of
    from gazeneg.model.checkpoint import read_checkpoint
    from tests.conftest import fast_config, tiny_checkpoint

    ds = load_dataset(tiny_dataset)
    firsts = _epoch_photo_means(monkeypatch)
    cfg = fast_config(ds.root, tmp_path / "aug", epochs=2, augment=True, flip=True, ema=0.0)
    run_dir = loop.run(cfg, argv=["x"])
    for name in ("best.pt", "last.pt"):
        mean = input_mean_of(read_checkpoint(run_dir / name), run_dir / name)
        assert np.abs(mean - firsts[0]).max() < 1e-3                   # epoch 0's augmented photos
    assert np.abs(firsts[1] - firsts[0]).max() > 1.0                   # (epoch 1's differ: it is epoch 0's)
    plain = loop.run(fast_config(ds.root, tmp_path / "plain"), argv=["x"])
    from gazeneg.data.splits import load_splits

    mean = input_mean_of(read_checkpoint(plain / "best.pt"), "best.pt")
    raw = load_splits(fast_config(ds.root)).train.images.astype(np.float64).mean(0)
    assert np.abs(mean - raw).max() < 1e-3                             # no augmentation: the photos' own mean
    old = tiny_checkpoint(tmp_path)
    with pytest.raises(CameraMeanError, match="does not record the mean strip .* retrain"):
        input_mean_of(read_checkpoint(old), old)


def test_live_brings_the_strip_to_the_training_mean_before_the_model(tmp_path, capsys):
    """A calibration's gain gives the model the normalised strip and keeps the cut one in the result;
    `gazeneg live --camera-mean` builds it from the checkpoint's training mean, and refuses the landmark model
    and a checkpoint without a training mean, each in one line."""
    import cv2

    from gazeneg.data.adapt import CameraNormaliser
    from gazeneg.model.checkpoint import save_checkpoint
    from gazeneg.model.networks import create_model
    from gazeneg.webcam import live as L
    from tests.conftest import face_frames, tiny_checkpoint
    from tests.test_tracker_drift import FixedDetector

    frames = face_frames(25)
    camera = fit_camera_mean(_strips(30, seed=6, lo=30, hi=90), "cam")
    norm = CameraNormaliser(camera, np.full((IMAGE_H, IMAGE_W, 3), 150.0, np.float32))
    got = []
    pipe = L.FramePipeline(predict_fn=lambda s, f: got.append(s.copy()) or np.array([[4.0, 7.5]]),
                           detector=FixedDetector(frames[0]), smoother=L.make_smoother("none"),
                           calibration=L.Calibration(gain=norm.gain))
    res = pipe.process(frames[0], 0.0)
    assert res.raw is not None and np.array_equal(got[0], norm(res.strip[None]))
    assert not np.array_equal(got[0][0], res.strip)

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), f)
    cam_file = camera.save(tmp_path / "cam.npz")
    torch.manual_seed(0)
    model = create_model("gazecnn", width=8)
    ckpt = tmp_path / "withmean.pt"
    save_checkpoint(ckpt, model, model_name="gazecnn", model_kwargs={"width": 8}, config={}, epoch=0,
                    extra={"input_mean": torch.full((IMAGE_H, IMAGE_W, 3), 150.0)})
    args = ["--source", str(folder), "--headless", "--max-frames", "5", "--camera-mean", str(cam_file)]
    assert gazeneg_main(["live", str(ckpt), *args]) == 0
    assert "eye strips brought to the model's training mean" in capsys.readouterr().out
    (tmp_path / "old").mkdir()
    old = tiny_checkpoint(tmp_path / "old")
    assert gazeneg_main(["live", str(old), *args]) == 2
    assert "does not record the mean strip its model was trained on" in capsys.readouterr().err
    from gazeneg.cli.live import camera_user
    from gazeneg.webcam.live import calibration_path

    key = camera_user("alice", str(tmp_path / "my cam.v2.npz"))   # its own calibration file, a valid user key
    assert key == "alice-cam-my_cam_v2" and calibration_path(ckpt, key).name == "withmean.pt.calib.alice-cam-my_cam_v2.json"
    lm = tmp_path / "lm.pt"
    ridge = create_model("landmarks")
    ridge.alpha.fill_(1.0)                                   # a fitted one: its penalty chosen (NaN until then)
    save_checkpoint(lm, ridge, model_name="landmarks", model_kwargs={}, config={}, epoch=0)
    assert gazeneg_main(["live", str(lm), *args]) == 2
    assert "reads no pixels" in capsys.readouterr().err


def test_live_calibration_fits_the_cameras_mean_and_keeps_it_with_the_map(tmp_path):
    """With the model's training mean, a full calibration fits the camera's mean from its own strips, predicts
    its samples again with the gain, fits the map on those, and saves the gain with the map (format 2); every
    later strip, in this session and in the next that loads the file, reaches the model brought to the mean."""
    from gazeneg.webcam import live as L
    from gazeneg.webcam.capture import FrameClock
    from tests.conftest import ListSource, face_frames
    from tests.test_tracker_drift import FixedDetector

    frames = face_frames(40)
    trained = np.full((IMAGE_H, IMAGE_W, 3), 200.0, np.float32)   # a model trained on brighter strips than these
    distort = np.array([[0.8, 0.1, 1.2], [-0.05, 1.15, -0.7]])
    inv = np.linalg.inv(np.vstack([distort, [0, 0, 1]]))[:2]

    def make(calib_path, training_mean, camera_gain=None):
        holder, seen = {}, []

        looked_at = {}   # a frame's features (the pipeline's own array, kept with the sample) -> its target

        def predict_fn(strips, feats):   # the distorted target, shifted by the strip's brightness (2 cells a 128)
            s = holder["session"]
            seen.append(float(strips.mean()))
            if s.collector is not None and s.collector.done:   # predicted again after the calibration: as then
                target = looked_at[id(feats.base)]
            else:
                target = s.collector.current if s.collector is not None and s.collector.current else (4.0, 7.5)
                looked_at[id(feats.base)] = target
            return (inv @ np.array([target[0], target[1], 1.0]) + 2.0 * (strips.mean() - 128.0) / 128.0)[None]

        pipe = L.FramePipeline(predict_fn=predict_fn, smoother=L.make_smoother("none"), detector=FixedDetector(frames[0]))
        logs = []
        session = L.LiveSession(pipe, calib_path=calib_path, samples=4, fixation_s=0.1, log=logs.append,
                                training_mean=training_mean, camera_gain=camera_gain)
        holder["session"] = session
        return session, seen, logs

    path = tmp_path / "m.pt.calib.me.json"
    session, seen, logs = make(path, trained)
    L.run_live(session, ListSource(frames * 3), clock=FrameClock(30.0))
    assert path.is_file(), (session.mode, session.error, logs)
    cal = L.Calibration.load(path)
    assert cal.gain is not None and np.allclose(cal.gain, session.pipe.calibration.gain, atol=1e-4)
    assert json.loads(path.read_text())["format_version"] == 2
    assert any("camera mean from" in m for m in logs)
    # the map was fitted on the outputs for strips brought to the mean: the accuracy check hits its targets
    assert session.report is not None and session.report.mean_error_cells < 0.2
    assert abs(seen[-1] - 200.0) < 10.0 and abs(seen[0] - 200.0) > 30.0   # as cut first, brought to the mean after
    again, seen2, _ = make(path, None)          # the next session loads the map and its gain
    again.feed(frames[0], 0.0)
    assert again.mode == L.VALIDATE and abs(seen2[-1] - 200.0) < 10.0
    # without the training mean: no gain, the map alone (format 1)
    plain, seen3, _ = make(tmp_path / "plain.json", None)
    L.run_live(plain, ListSource(frames * 3), clock=FrameClock(30.0))
    assert L.Calibration.load(tmp_path / "plain.json").gain is None
    assert json.loads((tmp_path / "plain.json").read_text())["format_version"] == 1
    # a fixed gain (live --camera-mean FILE): every strip gets it from the start, and the calibration carries it
    fixed_gain = np.full((IMAGE_H, IMAGE_W, 3), 0.75, np.float32)   # darker: nothing clips
    fixed, seen4, _ = make(tmp_path / "fixed.json", trained, camera_gain=fixed_gain)
    L.run_live(fixed, ListSource(frames * 3), clock=FrameClock(30.0))
    assert np.array_equal(L.Calibration.load(tmp_path / "fixed.json").gain, fixed_gain)
    assert fixed.report is not None and fixed.report.mean_error_cells < 0.2
    assert abs(seen4[0] / seen[0] - 0.75) < 0.01 and abs(seen4[-1] / seen[0] - 0.75) < 0.01
    # a damaged gain is one clear error
    d = json.loads(path.read_text())
    d["strip_gain"] = [[1.0]]
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(L.CalibrationError, match="strip_gain must be 32x96x3 positive numbers"):
        L.Calibration.load(tmp_path / "bad.json")


def test_live_options_choose_where_the_cameras_mean_comes_from(tmp_path, capsys):
    """--camera-mean calibration (the default) hands the model's training mean to the session, none and a
    headless run do not; a checkpoint without one is said once, not refused; the landmark model gets neither."""
    from argparse import Namespace

    from gazeneg.cli.live import camera_correction, get_args_parser
    from gazeneg.model.networks import create_model

    assert get_args_parser().parse_args(["m.pt"]).camera_mean == "calibration"
    mean = np.full((IMAGE_H, IMAGE_W, 3), 150.0, np.float32)
    ckpt = {"extra": {"input_mean": torch.from_numpy(mean)}}
    cnn = create_model("gazecnn", width=8)

    def ask(camera_mean, model=cnn, headless=False, c=ckpt):
        return camera_correction(Namespace(camera_mean=camera_mean, headless=headless, checkpoint="m.pt"), model, c)

    norm, got = ask("calibration")
    assert norm is None and np.array_equal(got, mean)
    assert ask("none") == (None, None) and ask("calibration", headless=True) == (None, None)
    assert ask("calibration", model=create_model("landmarks")) == (None, None)
    assert ask("calibration", c={"extra": {}}) == (None, None)
    assert "records no training mean strip" in capsys.readouterr().out
    cam = fit_camera_mean(_strips(25), "cam").save(tmp_path / "cam.npz")
    norm, got = ask(str(cam))
    assert got is None and np.allclose(norm.gain, np.clip(mean / CameraMean.load(cam).mean, 1 / 16, 16))
