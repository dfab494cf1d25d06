"""`gazeneg import`: photos plus a CSV of cells or screen pixels into the data-set format."""

import cv2
import numpy as np
import pytest

from gazeneg import grid
from gazeneg.cli import main as console
from gazeneg.data.dataset import DatasetError, load_dataset
from gazeneg.webcam.importer import decide_crop, eye_strip, import_photos, read_labels
from tests.own_data import SCREEN, make_photo_folder, write_face_frames


@pytest.fixture
def folder(tmp_path):
    return make_photo_folder(tmp_path / "raw", per_session=8)


def test_one_eye_photos_in_pixels_with_corners_all_import(folder, tmp_path, capsys):
    photos, labels = folder
    assert console.main(["import", str(photos), str(labels), "--screen", "1440x900", "--out",
                         str(tmp_path / "me"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "crop eye (auto:" in out and "one-eye" in out and "imported 24 photo(s)" in out
    assert "me/s1: 8" in out and "me/s3: 8" in out and "skipped" not in out
    ds = load_dataset(tmp_path / "me")
    assert len(ds) == 24 and set(ds.sessions.tolist()) == {"s1", "s2", "s3"} and set(ds.subjects) == {"me"}
    # The corners (0, 0), (W, 0), (0, H), (W, H) px are the screen's corner points in cells.
    corners = {tuple(t) for t in ds.targets[ds.sessions == "s2"][:4].tolist()}
    assert corners == {(-0.5, -0.5), (-0.5, 15.5), (8.5, -0.5), (8.5, 15.5)}


def test_pixels_convert_with_the_grid_convention(tmp_path):
    # Non-symmetric: x = 1035 px on 1440 is col 11, y = 250 px on 900 is row 2 (cell centres at integers).
    (tmp_path / "l.csv").write_text("a.png,1035,250\n")
    (e,) = read_labels(tmp_path / "l.csv", screen=SCREEN)
    assert (e.row, e.col) == pytest.approx((2.0, 11.0))
    x, y = grid.to_pixels(e.row, e.col, *SCREEN)
    assert (float(x), float(y)) == pytest.approx((1035, 250))
    (tmp_path / "c.csv").write_text("file,col,row,session\na.png,11,2,s9\n")
    (e,) = read_labels(tmp_path / "c.csv", subject="me")
    assert (e.row, e.col, e.subject, e.session) == (2.0, 11.0, "me", "s9")


@pytest.mark.parametrize("text, screen, culprit", [
    ("a.png,1441,10\n", SCREEN, r"l\.csv line 1: pixel \(1441, 10\) is off the 1440x900 screen"),
    ("filename,row,col\na.png,2,1\nb.png,9.2,3\n", None, r"l\.csv line 3: target \(9\.2, 3\) is off the screen"),
    ("filename,row,col\na.png,2,x\n", None, r"l\.csv line 2: .*'col'"),
    ("filename,x,y\na.png,2,3\n", None, r"--screen WIDTHxHEIGHT"),
    ("filename,row,col,session\na.png,2,3,s/1\n", None, r"l\.csv line 2: session 's/1'"),
    ("filename,row,col\n", None, r"no rows"),
])
def test_bad_labels_name_file_line_and_value(tmp_path, text, screen, culprit):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(DatasetError, match=culprit):
        read_labels(tmp_path / "l.csv", screen=screen)


def test_missing_photo_is_named_before_anything_is_written(folder, tmp_path):
    photos, labels = folder
    (photos / "s1_003.png").unlink()
    with pytest.raises(DatasetError, match=r"labels\.csv line 5: photo 's1_003\.png' is missing"):
        import_photos(photos, labels, tmp_path / "me", screen=SCREEN)
    assert not (tmp_path / "me").exists()


def test_auto_decides_per_folder_and_says_why(tmp_path, folder):
    photos, labels = folder
    entries = read_labels(labels, screen=SCREEN)
    assert decide_crop(photos, entries, labels)[0] == "eye"
    strips = tmp_path / "strips"
    strips.mkdir()
    for e in entries[:3]:
        cv2.imwrite(str(strips / e.filename), np.full((40, 120, 3), 90, np.uint8))
    mode, why = decide_crop(strips, entries[:3], labels)
    assert mode == "resize" and "3:1" in why
    # Whole frames with no face anywhere: auto refuses, rather than skipping every photo.
    frames = tmp_path / "frames"
    frames.mkdir()
    for e in entries[:3]:
        cv2.imwrite(str(frames / e.filename), np.full((480, 640, 3), 90, np.uint8))
    with pytest.raises(DatasetError, match=r"no face and eyes were found in any of the 3 sampled.*--crop eye"):
        decide_crop(frames, entries[:3], labels)


def test_face_crop_that_finds_nothing_is_an_error_with_the_reason(tmp_path, folder):
    photos, labels = folder
    with pytest.raises(DatasetError, match=r"none of the 24 photos could be imported \(24 no face"):
        import_photos(photos, labels, tmp_path / "me", screen=SCREEN, crop="face")
    assert not (tmp_path / "me").exists()   # no empty data set left behind


def test_eye_strip_puts_the_eye_in_both_slots_unmirrored():
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, :16] = (0, 0, 255)   # red on the photo's left (BGR)
    s = eye_strip(img)
    assert s.shape == (32, 96, 3)
    assert s[16, 2].tolist() == [255, 0, 0] and s[16, 50].tolist() == [255, 0, 0]   # RGB red, both slots
    assert s[16, 40].tolist() == [0, 0, 0] and s[16, 90].tolist() == [0, 0, 0]


def test_resume_adds_a_session_and_skips_what_is_there(folder, tmp_path):
    photos, labels = folder
    first = import_photos(photos, labels, tmp_path / "me", screen=SCREEN, log=lambda *_: None)
    again = import_photos(photos, labels, tmp_path / "me", screen=SCREEN, resume=True, log=lambda *_: None)
    assert first.imported == 24 and again.imported == 0 and again.skipped["already imported (resume)"] == 24
    assert len(load_dataset(tmp_path / "me")) == 24


def test_whole_frames_auto_finds_faces_and_cuts_the_eye_strip(tmp_path):
    photos = tmp_path / "frames"
    names = write_face_frames(photos, 6, name="f{i}.jpg")
    lines = ["filename,row,col,session"] + [f"{n},{i % 9},{(3 * i) % 16},s{1 + i % 2}" for i, n in enumerate(names)]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    msgs = []
    s = import_photos(photos, tmp_path / "l.csv", tmp_path / "ds", subject="astro", log=msgs.append)
    assert s.crop == "face" and "a face found in 6 of 6 sampled" in msgs[0]
    assert s.imported == 6 and s.per_session == {"astro/s1": 3, "astro/s2": 3}
    ds = load_dataset(tmp_path / "ds")
    assert ds.images.shape == (6, 32, 96, 3) and (ds.face[:, 2] > 0).all()   # the face box was kept


def test_data_no_longer_imports_face():
    """The importer lives in importer.py: data.py (and what it imports) never loads face.py, so
    data -> face -> landmarks -> models_cache -> data is no longer a cycle."""
    import subprocess
    import sys

    code = "import sys, gazeneg.data.dataset; print('gazeneg.webcam.detect' in sys.modules, 'gazeneg.webcam.landmarks' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], r.stderr
    import gazeneg.data.dataset

    src = open(gazeneg.data.dataset.__file__, encoding="utf-8").read()
    assert "from .face" not in src and "gazeneg.webcam.detect" not in src   # not even lazily, inside a function


def test_a_huge_photo_is_refused_before_decoding(folder, tmp_path, monkeypatch):
    import gazeneg.webcam.importer as imp

    photos, labels = folder
    monkeypatch.setattr(imp, "MAX_PIXELS", 1000)   # the 64x32 photos are 2048 pixels
    with pytest.raises(DatasetError, match=r"labels\.csv line 2: photo 's1_000\.png' is 64x32 pixels \(PNG\), more "
                                           r"than 1000 pixels; not decoded"):
        import_photos(photos, labels, tmp_path / "me", screen=SCREEN, crop="eye")
