"""Drift and accuracy: the one-target recentre (API and key r) removes a constant offset; calibration targets
with too few good samples are shown again and never fitted silently; the accuracy check's per-target and
per-region report and its PNG beside the calibration, refused when a target got no samples."""

import numpy as np
import pytest

from gazeneg import grid
from gazeneg.webcam import live as L
from gazeneg.webcam.accuracy import AccuracyError, recentre_offset, report_paths, target_report
from gazeneg.webcam.capture import FrameClock
from gazeneg.webcam.tracker import SampleTap, Tracker
from tests.conftest import ListSource, face_frames


class FixedDetector:
    """The astronaut's detection in the first frame, every frame: these tests are about the session's logic
    over hundreds of frames (5 s target timeouts), not about finding the face (tests/test_live.py does)."""

    def __init__(self, frame):
        from gazeneg.webcam.detect import make_detector

        self.det = make_detector("haar", track=False).detect(frame)
        assert self.det is not None

    def detect(self, frame):
        return self.det


@pytest.fixture(scope="module")
def frames():
    return face_frames(40)


@pytest.fixture(scope="module")
def detector(frames):
    return FixedDetector(frames[0])


def test_recentre_removes_a_constant_offset_api(frames, detector):
    rng = np.random.default_rng(0)
    offset = np.array([0.8, -1.1])          # the model drifted: everything 0.8 rows down, 1.1 cols left
    looking_at = {"p": np.array([5.0, 3.0])}

    def predict_fn(strips, feats):
        return (looking_at["p"] + offset + rng.normal(0, 0.05, 2))[None]

    pipe = L.FramePipeline(predict_fn=predict_fn, smoother=L.make_smoother("none"), detector=detector)
    seen = []

    class ListSink:
        def write(self, sample, frame, res=None):
            seen.append(sample)

        def close(self):
            pass

    tr = Tracker(None, source=ListSource(frames * 3), pipeline=pipe, screen=(1920, 1080), sinks=[ListSink()])
    before = [tr.step() for _ in range(5)]
    err_before = np.mean([np.hypot(s.row - 5.0, s.col - 3.0) for s in before])
    looking_at["p"] = np.array(grid.CENTRE)           # the person looks at the recentre dot
    got = tr.recentre(samples=10, fixation_s=0.1)
    assert np.allclose(got, -offset, atol=0.05)
    looking_at["p"] = np.array([2.0, 11.0])           # and then anywhere else
    after = [tr.step() for _ in range(5)]
    err_after = np.mean([np.hypot(s.row - 2.0, s.col - 11.0) for s in after])
    assert err_before > 1.3 and err_after < 0.1
    # the correction is in the record: the event column of the frame that finished it
    marked = [s for s in seen if s.event.startswith("recentre ")]
    assert len(marked) == 1 and marked[0].frame == after[0].frame - 1


def test_recentre_by_key_saves_the_calibration_and_refuses_without_samples(frames, detector, tmp_path):
    offset = np.array([-0.5, 0.7])
    answer = {"p": np.array(grid.CENTRE) + offset}
    pipe = L.FramePipeline(predict_fn=lambda s, f: np.full((1, 2), np.nan) if answer["p"] is None else answer["p"][None],
                           smoother=L.make_smoother("none"), detector=detector)
    calib = tmp_path / "m.pt.calib.json"
    gain = np.full((32, 96, 3), 1.25, np.float32)   # a calibration with the camera's gain (data.adapt) keeps it
    L.Calibration(gain=gain).save(calib)
    logs = []
    session = L.LiveSession(pipe, calib_path=calib, calibrate="auto", validate=False, samples=6, fixation_s=0.1,
                            log=logs.append)
    tap = SampleTap(session, screen=(1920, 1080))
    pressed = iter([["r"]])
    L.run_live(tap, ListSource(frames), clock=FrameClock(30.0), keys=lambda s, now: next(pressed, []))
    assert np.allclose(L.Calibration.load(calib).matrix[:, 2], -offset)
    assert np.array_equal(L.Calibration.load(calib).gain, gain) and np.array_equal(session.pipe.calibration.gain, gain)
    assert any(m.startswith("recentred: offset") for m in logs)
    # no answer (a NaN output counts as no prediction): refused, calibration unchanged
    answer["p"] = None
    before = L.Calibration.load(calib).matrix.copy()
    pressed = iter([["r"]])
    L.run_live(tap, ListSource(frames * 9), clock=FrameClock(30.0), keys=lambda s, now: next(pressed, []))
    assert "recentre failed: 0 good samples" in session.error
    assert np.array_equal(L.Calibration.load(calib).matrix, before)
    with pytest.raises(AccuracyError, match="no samples"):
        recentre_offset(np.zeros((0, 2)), (4.0, 7.5))


def _fake_session(tmp_path, detector, *, broken=(), flaky=(), calibrate="never", samples=4):
    """A session whose model answers the shown target + noise; no answer (NaN) on `broken` targets, and on
    `flaky` targets the first time they are shown."""
    rng = np.random.default_rng(1)
    holder, shown = {}, []

    def predict_fn(strips, feats):
        s = holder["tap"].session
        c = s.collector
        t = c.current if c is not None and c.current else (4.0, 7.5)
        if c is not None and (c.i, t) not in shown:
            shown.append((c.i, t))
        first_time = sum(1 for _, x in shown if x == t) == 1
        if t in broken or (t in flaky and first_time):
            return np.array([[np.nan, np.nan]])
        return (np.array(t) + rng.normal(0, 0.05, 2))[None]

    pipe = L.FramePipeline(predict_fn=predict_fn, smoother=L.make_smoother("none"), detector=detector)
    logs = []
    session = L.LiveSession(pipe, calib_path=tmp_path / "m.pt.calib.json", calibrate=calibrate, samples=samples,
                            fixation_s=0.1, screen_cm=(34.4, 19.3), distance_cm=60.0, log=logs.append)
    tap = SampleTap(session, screen=(1600, 900))
    holder["tap"] = tap
    return tap, logs


def test_accuracy_report_per_target_and_region_with_its_png(frames, detector, tmp_path):
    tap, logs = _fake_session(tmp_path, detector)
    L.run_live(tap, ListSource(frames * 3), clock=FrameClock(30.0))
    rep = tap.report
    assert rep is not None and len(rep.targets) == len(L.VALIDATION_POINTS)
    assert all(t.n == 4 and t.mean_cells < 0.2 and t.precision_cells < 0.2 for t in rep.targets)
    t0 = rep.targets[0]
    assert t0.mean_px == pytest.approx(t0.mean_cells * 100, rel=0.2)   # 1600x900: a cell is 100 px
    assert t0.mean_cm > 0 and t0.mean_deg > 0
    assert {r["region"] for r in rep.regions} == {"all", "row 2", "row 6", "col 2", "col 6", "col 9", "col 13"}
    png, md = report_paths(tmp_path / "m.pt.calib.json")
    assert png.name == "m.pt.calib.accuracy.png" and png.stat().st_size > 10_000
    text = md.read_text()
    assert "| (2, 13) | 4 |" in text and "| row 6 | 16 |" in text
    # every figure's column says what it is and in which unit (the cm/deg columns were bare twice)
    assert "| mean error cm | mean error deg |" in text and "| precision cm | precision deg |" in text
    assert any("accuracy per target and region" in m for m in logs)


def test_a_target_without_samples_refuses_the_summary(frames, detector, tmp_path):
    tap, logs = _fake_session(tmp_path, detector, broken=[(6.0, 9.0)])
    L.run_live(tap, ListSource(frames * 16), clock=FrameClock(30.0))   # 5 s timeouts, shown 3 times
    assert tap.report is None and not report_paths(tmp_path / "m.pt.calib.json")[0].exists()
    assert "no validation samples for 1 of 8 targets ((6, 9))" in tap.session.error
    assert any(m.startswith("accuracy report refused") for m in logs)
    with pytest.raises(AccuracyError, match=r"\(6, 9\)"):
        target_report([((2.0, 2.0), np.ones((3, 2))), ((6.0, 9.0), np.zeros((0, 2)))])


def test_calibration_targets_with_too_few_samples_are_redone(frames, detector, tmp_path):
    tap, logs = _fake_session(tmp_path, detector, flaky=[(0.0, 15.0)], calibrate="always")
    L.run_live(tap, ListSource(frames * 6), clock=FrameClock(30.0))
    assert (tmp_path / "m.pt.calib.json").exists() and tap.session.error is None
    assert any("calibration saved" in m for m in logs)
    # a target that never gets samples: the calibration is refused, not fitted on the other eight
    tap2, logs2 = _fake_session(tmp_path / "b", detector, broken=[(8.0, 0.0)], calibrate="always")
    (tmp_path / "b").mkdir()
    L.run_live(tap2, ListSource(frames * 16), clock=FrameClock(30.0))
    assert "too few good samples even when shown again ((8, 0))" in tap2.session.error
    assert not (tmp_path / "b" / "m.pt.calib.json").exists()


def test_target_collector_redoes_a_short_target():
    c = L.TargetCollector([(0.0, 0.0), (8.0, 15.0)], samples=3, fixation_s=0.0, timeout_s=1.0, min_samples=2)
    c.feed([0.0, 0.0], 0.0)
    c.feed(None, 1.0)                          # (0, 0) timed out with 1 sample: shown again at the end
    assert c.redone == [(0.0, 0.0)] and c.current == (8.0, 15.0)
    for t in (1.1, 1.2, 1.3):
        c.feed([8.0, 15.0], t)
    assert c.current == (0.0, 0.0)
    for t in (1.4, 1.5, 1.6):
        c.feed([0.1, 0.0], t)
    assert c.done and [t for t, _ in c.results] == [(8.0, 15.0), (0.0, 0.0)]
    assert all(len(p) == 3 for _, p in c.results)
