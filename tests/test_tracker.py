"""The Python API (webcam.tracker.Tracker) on a video and an image folder: the same samples as `gazeneg live`,
the calibration loaded, events marked (the helpers the tracker tests share are in tests/conftest.py)."""


import numpy as np
import pytest

from gazeneg.webcam import live as L
from gazeneg.webcam.record import SAMPLE_FIELDS, read_samples
from gazeneg.webcam.tracker import Tracker
from tests.conftest import face_frames, tiny_checkpoint, write_folder, write_video

DISTORT = np.array([[0.8, 0.1, 1.2], [-0.05, 1.15, -0.7]])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracker")
    frames = face_frames(30)
    return tiny_checkpoint(tmp), write_folder(tmp / "frames", frames), write_video(tmp / "face.avi", frames), tmp


def test_tracker_iterates_samples_like_live(setup, tmp_path, capsys):
    ckpt, folder, video, _ = setup
    out = tmp_path / "api.csv"
    samples = list(Tracker(ckpt, source=folder, smoother="ema", smoother_kwargs={"alpha": 0.5},
                           screen=(1920, 1080), record_gaze=out))
    assert len(samples) == 30 and [s.frame for s in samples] == list(range(30))
    assert all(s.state == "ok" and s.valid for s in samples)
    assert all(0 <= s.x_px <= 1920 and 0 <= s.y_px <= 1080 for s in samples)
    t = [s.t_source for s in samples]
    assert np.allclose(np.diff(t), 1 / 30)          # a file source runs on its frame clock
    # The same frames through `gazeneg live --headless` give the same samples.
    from gazeneg.cli import live as live_cli

    cli_out = tmp_path / "cli.csv"
    assert live_cli.main([str(ckpt), "--source", str(folder), "--headless", "--smoother", "ema", "--alpha", "0.5",
                          "--screen", "1920x1080", "--record-gaze", str(cli_out)]) == 0
    capsys.readouterr()
    a, b = read_samples(out), read_samples(cli_out)
    assert len(a) == len(b) == 30
    for k in ("raw_row", "raw_col", "row", "col", "x_px", "y_px", "yaw"):
        assert np.allclose([r[k] for r in a], [r[k] for r in b]), k
    assert list(a[0]) == list(SAMPLE_FIELDS)


def test_tracker_loads_the_saved_calibration_and_marks_events(setup, tmp_path):
    ckpt, _, video, _ = setup
    plain = list(Tracker(ckpt, source=video, smoother="none", calibration=None, max_frames=10))
    cal_path = tmp_path / "user.calib.json"
    L.Calibration(DISTORT.copy(), 9, 0.0).save(cal_path)
    tr = Tracker(ckpt, source=video, smoother="none", calibration=cal_path, max_frames=10)
    got = []
    for s in tr:
        got.append(s)
        if s.frame == 3:
            tr.mark("stimulus on")
    raw = np.array([[s.raw_row, s.raw_col] for s in plain])
    assert np.allclose([[s.raw_row, s.raw_col] for s in got], raw)
    assert np.allclose([[s.cal_row, s.cal_col] for s in got], raw @ DISTORT[:, :2].T + DISTORT[:, 2])
    assert [s.event for s in got] == [""] * 4 + ["stimulus on"] + [""] * 5
    assert tr.closed
    # "auto" finds <checkpoint>.calib.json, as `gazeneg live` saves it
    L.Calibration(DISTORT.copy(), 9, 0.0).save(L.calibration_path(ckpt))
    try:
        auto = Tracker(ckpt, source=video, max_frames=1)
        assert np.allclose(auto.calibration.matrix, DISTORT)
        assert auto.run(lambda s: None) == 1
    finally:
        L.calibration_path(ckpt).unlink()


def test_tracker_callback_stops_when_told(setup):
    ckpt, folder, _, _ = setup
    seen = []
    n = Tracker(ckpt, source=folder).run(lambda s: seen.append(s.frame) or s.frame < 4)
    assert n == 5 and seen == [0, 1, 2, 3, 4]


def test_tracker_bad_source_is_one_line(setup):
    from gazeneg.webcam.sources import CaptureError

    with pytest.raises(CaptureError, match="not a camera index, a video file or an image folder"):
        Tracker(setup[0], source="/nonexistent/video.mp4")
