"""The shared webcam loop: why it stops, the order of key presses, and the clock a replay runs on."""

import cv2
import numpy as np
import pytest

from gazeneg.webcam import capture, live
from gazeneg.webcam import sources as webcam
from gazeneg.webcam.sources import FrameClock, default_clock, frame_loop


class Frames:
    live = False
    fps = 10.0

    def __init__(self, n):
        self.left = n

    def read(self):
        if self.left == 0:
            return None
        self.left -= 1
        return np.zeros((4, 4, 3), np.uint8)


def test_frame_loop_stops_for_each_reason_and_presses_keys_in_order():
    log = []

    def step(frame, now):
        log.append(("frame", now))
        return ["a", "b"] if len(log) == 1 else []

    assert frame_loop(Frames(3), step, lambda k, now: log.append((k, now)), clock=FrameClock(10.0)) == "source ended"
    assert log == [("frame", 0.0), ("a", 0.0), ("b", 0.0), ("frame", 0.1), ("frame", 0.2)]
    assert frame_loop(Frames(9), lambda f, t: [], lambda k, t: None, clock=FrameClock(), max_frames=4) == "max frames"
    seen = []
    assert frame_loop(Frames(9), lambda f, t: seen.append(t) or [], lambda k, t: None, clock=FrameClock(),
                      done=lambda: len(seen) == 2) == "done"
    assert len(seen) == 2


def test_default_clock_is_wall_time_for_a_camera_and_frames_for_a_file():
    clock = default_clock(Frames(1))
    assert [clock(), clock(), clock()] == pytest.approx([0.0, 0.1, 0.2])

    class Cam:
        live = True

    import time

    assert default_clock(Cam()) is time.time


def test_capture_and_live_share_one_loop_and_window():
    # The names capture always exported still resolve, to the one implementation in webcam.py.
    for name in ("open_source", "FrameClock", "Window", "screen_size", "CaptureError", "CameraError", "GuiError"):
        assert getattr(capture, name) is getattr(webcam, name)
    assert live.frame_loop is capture.frame_loop is webcam.frame_loop
    assert live.Window is webcam.Window


def test_a_progress_source_counts_the_frames_it_hands_on(tmp_path):
    import io

    from gazeneg.webcam.sources import ImageFolderSource, ProgressSource, frame_count, open_source
    from tests.conftest import face_frames, write_folder, write_video

    frames = face_frames(5)
    folder = write_folder(tmp_path / "f", frames)
    assert frame_count(open_source(str(folder))) == 5
    assert frame_count(open_source(str(write_video(tmp_path / "v.avi", frames)))) == 5
    bar = io.StringIO()
    src = ProgressSource(ImageFolderSource(folder, fps=12.0), desc="test", file=bar)
    assert src.fps == 12.0 and not src.live and len(src.files) == 5          # the wrapped source's attributes
    got = [src.read() for _ in range(7)]
    assert [f is None for f in got] == [False] * 5 + [True] * 2 and np.array_equal(got[0], cv2.imread(str(src.files[0])))
    src.close()
    assert src.bar.n == 5 and "5/5" in bar.getvalue()
