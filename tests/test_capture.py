"""Headless capture from video files and image folders built from the test photo: the dataset it writes,
crash safety and --resume, the attention check, pause/Esc, rejections and the clear error messages."""

import errno
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gazeneg import grid
from gazeneg.data.dataset import DatasetError, DatasetWriter, face_features, load_dataset
from gazeneg.testing import moving_face_frames
from gazeneg.units import SizeError
from gazeneg.webcam import capture as C
from gazeneg.webcam.detect import crop_eyes
from tests.conftest import ListSource, fast_config, load_script

FRAMES = 3      # per target
FIX = 0.1       # s: 3 frames at 30 fps


@pytest.fixture(scope="module")
def frame_list(photo):
    return [f for f, _ in moving_face_frames(photo, 120)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, frame_list):
    d = tmp_path_factory.mktemp("frames")
    for i, f in enumerate(frame_list):
        cv2.imwrite(str(d / f"{i:04d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return d


def _settings(**kw):
    return C.CaptureSettings(**{"frames_per_target": FRAMES, "fixation_s": FIX, **kw})


def _plan(cells=(37, 0, 143), arrows=False):
    plan = C.make_plan(cells=list(cells), order="rowmajor")
    return [C.Target(t.row, t.col, "left" if arrows else None) for t in plan]


def _assert_consistent(root):
    """Loadable; no temp files; every row has its image; no image without a row."""
    ds = load_dataset(root)
    assert not list((Path(root) / "images").glob("*.tmp")) and not list((Path(root) / "images").glob(".*"))
    on_disk = {f"images/{p.name}" for p in (Path(root) / "images").iterdir()}
    assert on_disk == set(ds.paths.tolist())
    return ds


def test_capture_from_video_file_writes_a_valid_dataset(tmp_path, frame_list):
    video = tmp_path / "face.avi"
    wr = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    assert wr.isOpened()
    for f in frame_list[:60]:
        wr.write(f)
    wr.release()
    out = tmp_path / "ds"
    s = C.capture(out, str(video), subject="astro", session="s1", plan=_plan(), settings=_settings(),
                  headless=True, log=lambda *_: None)
    assert s.complete and s.frames_kept == 3 * FRAMES and s.rejected_no_face == 0
    assert s.per_cell == {37: FRAMES, 0: FRAMES, 143: FRAMES}
    ds = _assert_consistent(out)
    assert len(ds) == 3 * FRAMES and ds.images.shape[1:] == (32, 96, 3)
    assert set(map(tuple, ds.targets.tolist())) == {(2.0, 5.0), (0.0, 0.0), (8.0, 15.0)}
    # The face features training sees are the ones crop_eyes gave the model (mirrored box).
    assert np.all(np.isfinite(ds.face)) and np.all(ds.face[:, 2] > 0.15)
    assert np.all(ds.face[:, 0] < 0.1)  # the head sits left of centre in the selfie view of these frames
    plan = json.loads((out / "capture" / "s1.json").read_text())
    assert plan["frames_per_target"] == FRAMES and len(plan["plan"]) == 3
    assert "format_version" in json.loads((out / "meta.json").read_text())


def test_captured_folder_is_accepted_by_training(tmp_path, folder):
    from gazeneg.training.loop import run

    out = tmp_path / "ds"
    for k, session in enumerate(("a", "b", "c")):  # three sessions: train / val / test groups
        C.capture(out, str(folder), subject="astro", session=session, plan=_plan(cells=(3, 70, 140)),
                  settings=_settings(), headless=True, resume=k > 0, log=lambda *_: None)
    ds = _assert_consistent(out)
    assert sorted(set(ds.sessions.tolist())) == ["a", "b", "c"] and len(ds) == 27
    cfg = fast_config(out, tmp_path / "runs", batch_size=8)
    run_dir = run(cfg, argv=["test"], log=lambda *_: None)
    assert (run_dir / "metrics.json").is_file()


def test_features_in_csv_equal_crop_features(tmp_path, frame_list):
    out = tmp_path / "ds"
    frames = frame_list[:20]
    C.capture(out, ListSource(frames), subject="a", session="s", plan=_plan(cells=(5,)), headless=True,
              settings=_settings(fixation_s=0.0), log=lambda *_: None)
    ds = load_dataset(out)
    from gazeneg.webcam.detect import make_detector

    det = make_detector()  # capture's own default: landmarks when the models are cached, else Haar
    feats = [crop_eyes(f, det.detect(f))[1] for f in frames[:FRAMES]]
    # CSV rounds the box to 0.01 px; the loader hands the model the pose relative to the person's (strip.relative_pose)
    from gazeneg.strip import relative_pose_by_group

    expected, _ = relative_pose_by_group(np.array(feats), np.zeros(len(feats)))
    assert np.allclose(ds.face, expected, atol=1e-4)
    strip0 = crop_eyes(frames[0], make_detector().detect(frames[0]))[0]
    assert np.abs(ds.images[0].astype(int) - strip0.astype(int)).max() <= 1


def test_crash_mid_session_leaves_a_loadable_dataset_and_resume_completes_it(tmp_path, frame_list, folder, capsys):
    out = tmp_path / "ds"
    plan = _plan(cells=(0, 20, 40, 60))
    with pytest.raises(RuntimeError, match="simulated crash"):
        C.capture(out, ListSource(frame_list, fail_at=15), subject="astro", session="s1", plan=plan,
                  settings=_settings(), headless=True, log=lambda *_: None)
    ds = _assert_consistent(out)
    assert 0 < len(ds) < 4 * FRAMES
    # Re-running without --resume refuses to touch it.
    with pytest.raises(DatasetError, match="--resume"):
        C.capture(out, str(folder), subject="astro", session="s1", plan=plan, settings=_settings(), headless=True,
                  log=lambda *_: None)
    # The script with --resume completes it from the saved plan (its own plan options are ignored).
    script = load_script("capture")
    rc = script.main(["--out", str(out), "--subject", "astro", "--session", "s1", "--resume", "--headless",
                      "--source", str(folder), "--frames", str(FRAMES), "--fixation", str(FIX), "--cells", "99"])
    assert rc == 0
    assert "capture --headless" in capsys.readouterr().err   # a progress bar through the file (none for 48 s before)
    ds = _assert_consistent(out)
    assert len(ds) == 4 * FRAMES
    cells = grid.nearest_cell(ds.targets[:, 0], ds.targets[:, 1])
    assert sorted(np.bincount(cells, minlength=grid.N_CELLS)[[0, 20, 40, 60]].tolist()) == [FRAMES] * 4
    # Resuming a complete session writes nothing more.
    s = C.capture(out, str(folder), subject="astro", session="s1", plan=plan, settings=_settings(), headless=True,
                  resume=True, log=lambda *_: None)
    assert s.targets_already_done == 4 and s.frames_kept == 0 and len(load_dataset(out)) == 4 * FRAMES


def test_ctrl_c_while_an_image_is_written_loses_only_that_frame(tmp_path, frame_list, monkeypatch):
    out = tmp_path / "ds"
    import gazeneg.data.dataset as D

    real = D.os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):
        if str(dst).endswith(".png"):
            calls["n"] += 1
            if calls["n"] == 4:  # Ctrl-C after the 4th image's bytes are written, before its rename
                assert list(Path(src).parent.glob(".*.tmp"))
                raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(D.os, "replace", flaky_replace)
    with pytest.raises(KeyboardInterrupt):
        C.capture(out, ListSource(frame_list), subject="a", session="s", plan=_plan(), settings=_settings(),
                  headless=True, log=lambda *_: None)
    monkeypatch.setattr(D.os, "replace", real)
    ds = _assert_consistent(out)
    assert len(ds) == 3
    s = C.capture(out, ListSource(frame_list), subject="a", session="s", plan=_plan(), settings=_settings(),
                  headless=True, resume=True, log=lambda *_: None)
    assert s.complete and len(_assert_consistent(out)) == 3 * FRAMES


def test_wrong_attention_answer_discards_frames_and_requeues(tmp_path, frame_list):
    w = DatasetWriter(tmp_path / "ds", {"format_version": 1, "grid": [9, 16], "image_size": [32, 96]}, fsync=False)
    plan = _plan(cells=(0, 143), arrows=True)
    sess = C.CaptureSession(w, plan, subject="a", session="s", settings=_settings())
    summary = C.run_capture(sess, ListSource(frame_list), keys=C.AutoAnswer(wrong={0}))
    w.close()
    assert summary.wrong_answers == 1 and summary.discarded_attention == FRAMES
    assert summary.complete and summary.frames_kept == 2 * FRAMES
    ds = _assert_consistent(tmp_path / "ds")
    # Cell 0 was answered wrongly first, so it went to the back: cell 143's rows come first.
    assert ds.targets[:FRAMES].tolist() == [[8.0, 15.0]] * FRAMES
    assert ds.targets[FRAMES:].tolist() == [[0.0, 0.0]] * FRAMES


def test_attention_state_machine_step_by_step(tmp_path, frame_list):
    w = DatasetWriter(tmp_path / "ds", {"format_version": 1, "grid": [9, 16], "image_size": [32, 96]}, fsync=False)
    sess = C.CaptureSession(w, [C.Target(2.0, 11.0, "up")], subject="a", session="s",
                            settings=_settings(fixation_s=0.5, answer_timeout_s=1.0))
    t = 0.0
    sess.feed(frame_list[0], t)
    assert sess.phase == C.FIXATE and sess.arrow_visible
    sess.feed(frame_list[1], 0.4)
    assert sess.phase == C.FIXATE
    for i in range(FRAMES):
        sess.feed(frame_list[2 + i], 0.5 + i * 0.1)
    assert sess.phase == C.ANSWER and not sess.arrow_visible and len(w) == 0  # held until the answer
    sess.press("left", 0.9)  # wrong
    assert sess.phase == C.FIXATE and sess.current.row == 2.0 and sess.current.col == 11.0 and len(w) == 0
    # Now let the answer time out: counts as wrong as well.
    for i in range(FRAMES + 1):
        sess.feed(frame_list[10 + i], 1.5 + i * 0.1)
    assert sess.phase == C.ANSWER
    sess.feed(frame_list[20], 5.0)
    assert sess.summary.wrong_answers == 2 and sess.phase == C.FIXATE
    for i in range(FRAMES + 1):
        sess.feed(frame_list[30 + i], 6.0 + i * 0.1)
    sess.press(sess.current.arrow, 6.5)
    assert sess.done and len(w) == FRAMES
    w.close()


def test_pause_and_escape(tmp_path, frame_list):
    out = tmp_path / "ds"
    # space after frame 2 (during the first fixation), space again after frame 30, Esc after frame 45
    keys = C.AutoAnswer(script={2: ["space"], 30: ["space"], 45: ["esc"]})
    plan = _plan(cells=range(0, 144, 10))
    s = C.capture(out, ListSource(frame_list), subject="a", session="s", plan=plan,
                  settings=_settings(fixation_s=0.05), headless=True, keys=keys, log=lambda *_: None)
    assert s.stopped_early and not s.complete
    # The 28 paused frames are ignored. At 30 fps a 0.05 s fixation skips one frame, so frames 31..45 are
    # three targets of 1 + 3 frames, then 1 + 2 frames of the fourth when Esc comes.
    assert s.targets_done == 3 and s.frames_kept == 3 * FRAMES + 2
    _assert_consistent(out)
    assert any("INCOMPLETE" in line for line in s.lines())


@pytest.mark.parametrize("backend", ["haar", "landmarks"])
def test_frames_without_a_face_or_with_closed_eyes_are_rejected(tmp_path, frame_list, photo, backend):
    from tests.test_face import closed_eyes

    if backend == "landmarks":
        from gazeneg.webcam import model_files as models_cache

        try:
            models_cache.fetch(quiet=True)
        except models_cache.ModelFileError as e:
            pytest.skip(f"landmark model files unavailable and could not be fetched: {e}")
    blank = np.full_like(frame_list[0], 110)
    shut = [f for f, _ in moving_face_frames(closed_eyes(photo), 6)]
    frames = [blank, blank] + shut + frame_list[:30]
    s = C.capture(tmp_path / "ds", ListSource(frames), subject="a", session="s", plan=_plan(cells=(7,)),
                  settings=_settings(fixation_s=0.0), headless=True, log=lambda *_: None, face_backend=backend)
    assert s.rejected_no_face == 2 and s.rejected_closed >= 5 and s.complete
    assert s.frames_kept == FRAMES


def test_no_face_for_n_seconds_is_a_clear_error(tmp_path, frame_list):
    blank = [np.full((480, 640, 3), 100, np.uint8)] * 90
    with pytest.raises(C.NoFaceError, match="no face seen for 2 s"):
        C.capture(tmp_path / "ds", ListSource(frame_list[:8] + blank), subject="a", session="s",
                  plan=_plan(), settings=_settings(no_face_timeout_s=2.0), headless=True, log=lambda *_: None)
    _assert_consistent(tmp_path / "ds")


def test_disk_full_is_a_clear_error(tmp_path, frame_list, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DatasetWriter, "add", full)
    with pytest.raises(C.DiskFullError, match=r"disk full while writing to .*--resume"):
        C.capture(tmp_path / "ds", ListSource(frame_list), subject="a", session="s", plan=_plan(),
                  settings=_settings(), headless=True, log=lambda *_: None)


def test_missing_gui_support_is_a_clear_error(monkeypatch):
    def no_gui(*a, **k):
        raise cv2.error("OpenCV(4.14.0) window.cpp:1301: error: (-2:Unspecified error) The function is not "
                        "implemented. Rebuild the library with Windows, GTK+ 2.x or Cocoa support.")

    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cv2, "namedWindow", no_gui)
    with pytest.raises(C.GuiError, match=r"install.*opencv-python.*--headless"):
        C.Window("x")


def test_no_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("DISPLAY check is Linux-only")
    with pytest.raises(C.GuiError, match="--headless"):
        C.Window("x")


class FakeCapture:
    def __init__(self, reads):
        self.reads = list(reads)

    def isOpened(self):
        return True

    def set(self, *a):
        return True

    def get(self, *a):
        return 30.0

    def read(self):
        return self.reads.pop(0) if self.reads else (False, None)

    def release(self):
        pass


def test_camera_errors(monkeypatch, frame_list, tmp_path):
    class Closed(FakeCapture):
        def isOpened(self):
            return False

    monkeypatch.setattr(C.cv2, "VideoCapture", lambda i: Closed([]))
    with pytest.raises(C.CameraError, match="no camera at index 7"):
        C.open_source("7")
    # Opens but never delivers a frame: busy.
    monkeypatch.setattr(C.cv2, "VideoCapture", lambda i: FakeCapture([]))
    with pytest.raises(C.CameraError, match="busy"):
        C.open_source(0)
    # Delivers 12 frames then stops: unplugged mid-session; what was captured is kept.
    monkeypatch.setattr(C.cv2, "VideoCapture", lambda i: FakeCapture([(True, f) for f in frame_list[:12]]))
    clock = C.FrameClock(30.0)
    with pytest.raises(C.CameraError, match="stopped delivering frames.*--resume"):
        _run_camera(tmp_path / "ds", clock)
    ds = _assert_consistent(tmp_path / "ds")
    assert len(ds) == 2 * FRAMES


def _run_camera(out, clock):
    # The windowed path needs a display; drive the same camera source headlessly through the library.
    src = C.open_source(0)
    writer, plan, done, _ = C.open_capture(out, plan=_plan(), subject="a", session="s", frames=FRAMES,
                                           log=lambda *_: None)
    with writer:
        sess = C.CaptureSession(writer, plan, subject="a", session="s", settings=_settings(), done=done)
        C.run_capture(sess, src, clock=clock)


def test_headless_refuses_a_camera(monkeypatch, tmp_path, frame_list):
    monkeypatch.setattr(C.cv2, "VideoCapture", lambda i: FakeCapture([(True, frame_list[0])]))
    with pytest.raises(C.CaptureError, match="--headless needs a video file or image folder"):
        C.capture(tmp_path / "ds", 0, subject="a", session="s", headless=True, log=lambda *_: None)


def test_bad_sources():
    with pytest.raises(C.CaptureError, match="not a camera index, a video file or an image folder"):
        C.open_source("/no/such/thing.mp4")


def test_empty_image_folder(tmp_path):
    with pytest.raises(C.CaptureError, match="no images"):
        C.ImageFolderSource(tmp_path)


def test_keep_raw_frames(tmp_path, frame_list):
    out = tmp_path / "ds"
    C.capture(out, ListSource(frame_list), subject="a", session="s", plan=_plan(cells=(1,)), settings=_settings(),
              headless=True, keep_raw=True, log=lambda *_: None)
    ds = _assert_consistent(out)
    raw = sorted((out / "raw" / "s").glob("*.jpg"))
    assert [p.stem for p in raw] == sorted(Path(p).stem for p in ds.paths)
    assert cv2.imread(str(raw[0])).shape == (480, 640, 3)


def test_validation_goes_to_its_own_folder(tmp_path, folder):
    script = load_script("capture")
    rc = script.main(["--out", str(tmp_path / "me"), "--session", "s1", "--validation", "--headless", "--source",
                      str(folder), "--frames", "2", "--fixation", "0", "--n-cells", "3"])
    assert rc == 0
    assert not (tmp_path / "me").exists()
    ds = load_dataset(tmp_path / "me-val")
    assert set(ds.sessions.tolist()) == {"s1-val"} and len(ds) == 6


def test_make_plan():
    p = C.make_plan()
    assert len(p) == grid.N_CELLS and all(t.arrow is None for t in p)
    # serpentine: row 0 left to right, row 1 right to left (non-symmetric check: 2nd row starts at col 15)
    assert [(t.row, t.col) for t in p[14:18]] == [(0, 14), (0, 15), (1, 15), (1, 14)]
    rm = C.make_plan(order="rowmajor")
    assert [(t.row, t.col) for t in rm[15:17]] == [(0, 15), (1, 0)]
    a = C.make_plan(order="shuffle", seed=1)
    b = C.make_plan(order="shuffle", seed=1)
    assert a == b and a != C.make_plan(order="shuffle", seed=2)
    assert sorted((t.row, t.col) for t in a) == sorted((t.row, t.col) for t in p)
    sub = C.make_plan(cells=[27, 5], repeats=3)
    assert [(t.row, t.col) for t in sub] == [(0, 5), (1, 11)] * 3
    nine = C.make_plan(layout="nine")
    assert len(nine) == 9 and (4.0, 7.5) in [(t.row, t.col) for t in nine]
    assert all(t.arrow in C.ARROWS for t in C.make_plan(attention_rate=1.0))
    assert len(C.make_plan(n_cells=12, seed=3)) == 12


@pytest.mark.parametrize("kw, culprit", [
    (dict(layout="spiral"), "layout"), (dict(order="zigzag"), "order"), (dict(repeats=0), "repeats"),
    (dict(attention_rate=1.5), "attention_rate"), (dict(cells=[144]), "144"), (dict(n_cells=200), "n_cells"),
])
def test_make_plan_bad_options_name_the_culprit(kw, culprit):
    with pytest.raises(ValueError, match=culprit):
        C.make_plan(**kw)


def test_screen_size(monkeypatch):
    assert C.screen_size("2560x1440") == (2560, 1440)
    with pytest.raises(SizeError, match="--screen 'big'"):
        C.screen_size("big")
    import tkinter

    def no_display():
        raise tkinter.TclError("no display name and no $DISPLAY environment variable")

    monkeypatch.setattr(tkinter, "Tk", no_display)
    assert C.screen_size() == (1920, 1080)


def test_render_capture_draws_without_a_window(tmp_path, frame_list):
    w = DatasetWriter(tmp_path / "ds", {"format_version": 1, "grid": [9, 16], "image_size": [32, 96]}, fsync=False)
    sess = C.CaptureSession(w, [C.Target(2.0, 11.0, "down")], subject="a", session="s", settings=_settings())
    sess.feed(frame_list[0], 0.0)
    img = C.render_capture(sess, 800, 450)
    assert img.shape == (450, 800, 3)
    x, y = (int(v) for v in grid.to_pixels(2.0, 11.0, 800, 450))
    assert img[y - 20:y + 20, x - 20:x + 20].max() > 150  # the target is drawn where the grid says
    w.close()


def test_face_features_match_data_module(frame_list, tmp_path):
    # One row's face columns must reproduce what crop_eyes fed the model: pin through face_features.
    from gazeneg.webcam.detect import FaceEyeDetector, mirror_box

    det = FaceEyeDetector().detect(frame_list[0])
    _, feats = crop_eyes(frame_list[0], det)
    assert np.allclose(face_features(*mirror_box(det.face, 640), 640, 480), feats)


# ----------------------------------------------------------------------------------------------
# Hardening: frames, one writer, no display, extending a session


@pytest.mark.parametrize("frames", [0, -3])
def test_frames_below_one_are_refused_before_anything_is_written(tmp_path, frame_list, frames):
    with pytest.raises(C.CaptureError, match="--frames must be a whole number >= 1"):
        C.capture(tmp_path / "ds", ListSource(frame_list), subject="a", session="s1", plan=_plan(),
                  settings=_settings(frames_per_target=frames), headless=True, log=lambda *_: None)
    assert not (tmp_path / "ds").exists()


def test_resume_with_more_frames_extends_the_session_and_fewer_is_refused(tmp_path, frame_list):
    out = tmp_path / "ds"
    C.capture(out, ListSource(frame_list), subject="a", session="s1", plan=_plan(), settings=_settings(),
              headless=True, log=lambda *_: None)
    s = C.capture(out, ListSource(frame_list), subject="a", session="s1", plan=_plan(),
                  settings=_settings(frames_per_target=FRAMES + 2), headless=True, resume=True, extend_frames=True,
                  log=lambda *_: None)
    assert s.complete and s.per_cell == {37: FRAMES + 2, 0: FRAMES + 2, 143: FRAMES + 2}
    with pytest.raises(C.CaptureError, match="would not extend"):
        C.capture(out, ListSource(frame_list), subject="a", session="s1", plan=_plan(),
                  settings=_settings(frames_per_target=1), headless=True, resume=True, extend_frames=True,
                  log=lambda *_: None)
    _assert_consistent(out)


def test_a_second_capture_on_the_same_folder_is_refused(tmp_path, frame_list):
    from filelock import FileLock

    out = tmp_path / "ds"
    out.mkdir()
    with FileLock(out / ".capture.lock"):
        with pytest.raises(C.CaptureError, match="in use by another capture"):
            C.capture(out, ListSource(frame_list), subject="a", session="s1", plan=_plan(), settings=_settings(),
                      headless=True, log=lambda *_: None)
    assert not (out / "labels.csv").exists()


def test_no_display_leaves_no_empty_dataset(tmp_path, frame_list, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("DISPLAY check is Linux-only")
    with pytest.raises(C.GuiError):
        C.capture(tmp_path / "ds", ListSource(frame_list), subject="a", session="s1", plan=_plan(),
                  settings=_settings(), headless=False, log=lambda *_: None)
    assert not (tmp_path / "ds").exists()
