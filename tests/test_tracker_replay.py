"""`gazeneg live --record-session DIR` then `gazeneg live --replay DIR`: the same samples for the same settings
(frames kept, or only strips and detections), other samples for another filter or calibration."""

import json

import numpy as np
import pytest

from gazeneg.cli import live as live_cli
from gazeneg.webcam import live as L
from gazeneg.webcam.record import read_samples
from gazeneg.webcam.replay import ReplaySource
from gazeneg.webcam.tracker import Tracker
from tests.conftest import face_frames, tiny_checkpoint, write_folder, write_video

SAME = ("t_source", "frame", "state", "raw_row", "raw_col", "cal_row", "cal_col", "row", "col", "x_px", "y_px",
        "yaw", "pitch", "roll")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    frames = face_frames(40)
    frames[17] = np.full_like(frames[17], 110)     # a frame without a face: replayed as one
    return tiny_checkpoint(tmp), write_video(tmp / "face.avi", frames), tmp


def _live(ckpt, *args):
    assert live_cli.main([str(ckpt), "--headless", "--screen", "1280x720", *args]) == 0


@pytest.mark.parametrize("keep", ["frames", "strips"])
def test_replay_gives_the_same_samples(setup, tmp_path, keep, capsys):
    ckpt, video, _ = setup
    session = tmp_path / "s1"
    _live(ckpt, "--source", str(video), "--record-session", str(session), "--session-keep", keep,
          "--record-gaze", str(tmp_path / "live.csv"))
    meta = json.loads((session / "session.json").read_text())
    assert meta["keep"] == keep and ("face" in meta["contains"] if keep == "frames" else "eye strips" in meta["contains"])
    assert len(list((session / keep).glob("*.bmp"))) == (40 if keep == "frames" else 39)   # both kept as BMP
    _live(ckpt, "--replay", str(session), "--record-gaze", str(tmp_path / "replay.csv"))
    a, b = read_samples(tmp_path / "live.csv"), read_samples(tmp_path / "replay.csv")
    assert len(a) == len(b) == 40 and a[17]["state"] == b[17]["state"] == "no_face"
    for ra, rb in zip(a, b, strict=True):
        assert {k: ra[k] for k in SAME} == {k: rb[k] for k in SAME}
    # another filter: the model's outputs are the same, the smoothed gaze is not
    _live(ckpt, "--replay", str(session), "--smoother", "ema", "--alpha", "0.2", "--record-gaze",
          str(tmp_path / "ema.csv"))
    c = read_samples(tmp_path / "ema.csv")
    assert [r["raw_row"] for r in c] == [r["raw_row"] for r in a]
    assert [r["row"] for r in c] != [r["row"] for r in a]
    capsys.readouterr()


def test_replay_with_a_calibration_and_through_the_api(setup, tmp_path, capsys):
    ckpt, video, _ = setup
    session = tmp_path / "s"
    _live(ckpt, "--source", str(video), "--record-session", str(session), "--max-frames", "12")
    cal = tmp_path / "cal.json"
    m = np.array([[0.9, 0.1, 0.5], [0.0, 1.1, -0.3]])
    L.Calibration(m, 9, 0.0).save(cal)
    _live(ckpt, "--replay", str(session), "--calibration", str(cal), "--record-gaze", str(tmp_path / "c.csv"))
    rows = [r for r in read_samples(tmp_path / "c.csv") if r["state"] == "ok"]
    raw = np.array([[r["raw_row"], r["raw_col"]] for r in rows])
    assert len(rows) == 12
    assert np.allclose([[r["cal_row"], r["cal_col"]] for r in rows], raw @ m[:, :2].T + m[:, 2])
    api = list(Tracker(ckpt, source=ReplaySource(session), calibration=cal, screen=(1280, 720)))
    assert np.allclose([[s.raw_row, s.raw_col] for s in api], raw)
    assert [s.t_source for s in api] == [r["t_source"] for r in rows]
    capsys.readouterr()


def test_session_errors_are_one_line(setup, tmp_path, capsys):
    ckpt, video, _ = setup
    full = write_folder(tmp_path / "full", face_frames(1))
    assert live_cli.cli([str(ckpt), "--headless", "--source", str(video), "--record-session", str(full)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert live_cli.cli([str(ckpt), "--headless", "--replay", str(full)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a recorded session" in err


def test_a_calibrations_camera_gain_reaches_the_model_in_both_replays(setup, tmp_path, capsys):
    """A calibration with the camera's gain (data.adapt): the model's outputs change, and a frames session and a
    strips session replay to the same outputs (the strip replay brings its strips to the mean the same way)."""
    ckpt, video, _ = setup
    cal = tmp_path / "cal.json"
    L.Calibration(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 9, 0.0,
                  gain=np.linspace(0.6, 1.6, 32 * 96 * 3, dtype=np.float32).reshape(32, 96, 3)).save(cal)
    raws = {}
    for keep in ("frames", "strips"):
        session = tmp_path / keep
        _live(ckpt, "--source", str(video), "--record-session", str(session), "--session-keep", keep,
              "--max-frames", "12")
        for name, extra in (("plain", []), ("gain", ["--calibration", str(cal)])):
            out = tmp_path / f"{keep}-{name}.csv"
            _live(ckpt, "--replay", str(session), "--record-gaze", str(out), *extra)
            raws[keep, name] = [(r["raw_row"], r["raw_col"]) for r in read_samples(out) if r["state"] == "ok"]
    assert raws["frames", "gain"] == raws["strips", "gain"] and len(raws["frames", "gain"]) == 12
    assert raws["frames", "gain"] != raws["frames", "plain"]
    capsys.readouterr()
