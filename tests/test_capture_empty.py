"""A capture that keeps no frame (issue 24 item 16): an error, not exit 0, and no empty data-set skeleton that
would make the next capture need --resume."""

import cv2
import numpy as np
import pytest

from gazeneg.webcam import capture as C
from tests.own_data import write_face_frames


def _plan():
    return [C.Target(t.row, t.col) for t in C.make_plan(cells=[3, 70], order="rowmajor")]


@pytest.mark.parametrize("n_blank", [20, 400])   # the source ends first / the no-face timeout ends it first
def test_a_folder_without_faces_is_an_error_and_leaves_nothing(tmp_path, n_blank):
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(n_blank):
        cv2.imwrite(str(blank / f"{i:04d}.png"), np.full((48, 64, 3), 100, np.uint8))
    out = tmp_path / "ds"
    settings = C.CaptureSettings(frames_per_target=2, fixation_s=0.1)
    with pytest.raises(C.CaptureError, match=r"no face|no frame was kept"):
        C.capture(out, str(blank), subject="me", session="s1", plan=_plan(), settings=settings, headless=True,
                  log=lambda *_: None)
    assert not out.exists()
    # The next capture into the same folder needs no --resume.
    faces = tmp_path / "faces"
    write_face_frames(faces, 40)
    s = C.capture(out, str(faces), subject="me", session="s1", plan=_plan(), settings=settings, headless=True,
                  log=lambda *_: None)
    assert s.frames_kept == 4
