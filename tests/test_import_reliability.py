"""The importer under bad input, edits and a second writer (issue 24 items 4, 8-11, 16, 17; issue 21 point 5):
resume by source file and content, one writer per folder, all or nothing, the bomb guard with the decoder
that decodes, CSV quoting, duplicates, off-screen rows, and the crop of capture and live."""

import csv
import os

import cv2
import numpy as np
import pytest
from filelock import FileLock

from gazeneg.cli import main as console
from gazeneg.data.dataset import DatasetError, load_dataset
from gazeneg.webcam.importer import import_photos, read_labels
from tests.own_data import SCREEN, make_photo_folder, write_face_frames


def quiet(*_a):
    pass


@pytest.fixture
def folder(tmp_path):
    return make_photo_folder(tmp_path / "raw", per_session=8)


def _lines(path):
    return path.read_text().splitlines(keepends=True)


def test_resume_matches_photos_by_file_and_content_not_by_line(folder, tmp_path):
    """Item 8: delete one CSV line and resume: nothing is imported twice (it was 118 rows for 60 photos)."""
    photos, labels = folder
    import_photos(photos, labels, tmp_path / "me", screen=SCREEN, log=quiet)
    lines = _lines(labels)
    labels.write_text("".join(lines[:3] + lines[4:]))   # a row near the top gone: every later line moves up
    again = import_photos(photos, labels, tmp_path / "me", screen=SCREEN, resume=True, log=quiet)
    assert again.imported == 0 and again.skipped["already imported (resume)"] == 23
    ds = load_dataset(tmp_path / "me")
    assert len(ds) == 24 and len(set(ds.paths.tolist())) == 24
    # A photo whose content changed is a new photo (its hash differs), imported once.
    cv2.imwrite(str(photos / "s2_005.png"), np.full((32, 64, 3), 77, np.uint8))
    third = import_photos(photos, labels, tmp_path / "me", screen=SCREEN, resume=True, log=quiet)
    assert third.imported == 1 and len(load_dataset(tmp_path / "me", load_images=False)) == 25


def test_a_second_import_into_the_same_folder_is_refused(folder, tmp_path):
    """Item 9: one writer per folder: an import while another holds the folder's lock is refused, new or resumed."""
    photos, labels = folder
    out = tmp_path / "me"
    with FileLock(tmp_path / ".me.import.lock"), \
            pytest.raises(DatasetError, match=r"being written by another import"):
        import_photos(photos, labels, out, screen=SCREEN, log=quiet)
    assert not out.exists()
    import_photos(photos, labels, out, screen=SCREEN, log=quiet)
    before = (out / "labels.csv").read_bytes()
    with FileLock(out / ".capture.lock"), pytest.raises(DatasetError, match=r"being written by another"):
        import_photos(photos, labels, out, screen=SCREEN, resume=True, log=quiet)
    assert (out / "labels.csv").read_bytes() == before


@pytest.mark.parametrize("bad", ["outside", "undecodable", "not_an_image_format"])
def test_a_bad_row_late_in_the_csv_leaves_nothing_and_the_rerun_works(folder, tmp_path, bad):
    """Item 10: a bad last row is one error naming its line; no folder is left (so the rerun needs no --resume),
    and adding to an existing data set leaves it byte for byte as it was."""
    photos, labels = folder
    if bad == "outside":
        (tmp_path / "raw" / "evil.png").write_bytes((photos / "s1_000.png").read_bytes())
        name = "../evil.png"
    elif bad == "undecodable":
        name = "broken.png"
        (photos / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    else:
        name = "float.png"   # a Radiance HDR under a .png name: cv2 decodes it, PIL does not read its size
        assert cv2.imwrite(str(photos / "float.hdr"), np.ones((32, 64, 3), np.float32))
        os.replace(photos / "float.hdr", photos / name)
    with open(labels, "a", newline="") as f:
        csv.writer(f).writerow([name, "100", "100", "me", "s9"])
    n = len(_lines(labels))
    with pytest.raises(DatasetError, match=rf"labels\.csv line {n}: photo '{name.replace('.', '[.]')}'"):
        import_photos(photos, labels, tmp_path / "me", screen=SCREEN, crop="eye", log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["raw"]
    # Adding the same CSV to an existing data set: refused whole, the data set unchanged.
    good = tmp_path / "good.csv"
    good.write_text("".join(_lines(labels)[:5]))
    import_photos(photos, good, tmp_path / "me", screen=SCREEN, crop="eye", log=quiet)
    def files():
        return {p.name: p.read_bytes() for p in (tmp_path / "me").rglob("*") if p.is_file() and p.suffix != ".lock"}

    snapshot = files()
    with pytest.raises(DatasetError, match=rf"line {n}"):
        import_photos(photos, labels, tmp_path / "me", screen=SCREEN, crop="eye", resume=True, log=quiet)
    assert files() == snapshot


def test_a_long_file_name_imports(folder, tmp_path):
    """Item 10/17: a 240-character photo name is imported (its image name keeps a short stem and a hash),
    not an error naming an internal .tmp path."""
    photos, _ = folder
    long = "p" * 236 + ".png"
    os.replace(photos / "s1_001.png", photos / long)
    (tmp_path / "l.csv").write_text(f"filename,row,col\n{long},3,4\ns1_002.png,1,1\n")
    s = import_photos(photos, tmp_path / "l.csv", tmp_path / "me", crop="eye", log=quiet)
    assert s.imported == 2
    assert all(len(os.path.basename(p)) < 100 for p in load_dataset(tmp_path / "me").paths)


def test_the_bomb_guard_uses_the_bytes_the_decoder_decodes(folder, tmp_path):
    """Item 11: a format PIL cannot size (Radiance HDR, named .png) is refused before cv2 decodes it; a huge
    header is refused with its real size (item 17: not 64000000x64000000)."""
    photos, _ = folder
    assert cv2.imwrite(str(photos / "x.hdr"), np.ones((40, 50, 3), np.float32))
    os.replace(photos / "x.hdr", photos / "x.png")
    (tmp_path / "l.csv").write_text("x.png,1,1\n")
    with pytest.raises(DatasetError, match=r"l\.csv line 1: photo 'x\.png' is not a PNG, JPEG, BMP, TIFF or WebP image "
                                           r"\(its size cannot be checked before decoding\); not decoded"):
        import_photos(photos, tmp_path / "l.csv", tmp_path / "me", crop="resize", log=quiet)
    # A PNG whose header says 20000 x 20000: refused undecoded, the real size in the message.
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    big = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    (photos / "big.png").write_bytes(big)
    (tmp_path / "b.csv").write_text("big.png,1,1\n")
    with pytest.raises(DatasetError, match=r"photo 'big\.png' is 20000x20000 pixels \(PNG\), more than 64 megapixels"):
        import_photos(photos, tmp_path / "b.csv", tmp_path / "me", crop="resize", log=quiet)


def test_quoted_names_may_hold_newlines_and_unicode_line_separators(folder, tmp_path):
    """Item 16: the CSV goes to csv.reader whole (no splitlines first)."""
    photos, _ = folder
    odd = "odd\u2028name.png"
    os.replace(photos / "s1_001.png", photos / odd)
    nl = "two\nlines.png"
    os.replace(photos / "s1_002.png", photos / nl)
    (tmp_path / "l.csv").write_text(f'filename,row,col\n"{odd}",3,4\n"{nl}",5,6\ns1_003.png,1,2\n', newline="")
    entries = read_labels(tmp_path / "l.csv")
    assert [(e.filename, e.row, e.col, e.line) for e in entries] == [(odd, 3, 4, 2), (nl, 5, 6, 3), ("s1_003.png", 1, 2, 5)]
    assert import_photos(photos, tmp_path / "l.csv", tmp_path / "me", crop="eye", log=quiet).imported == 3


def test_an_unmatched_quote_in_a_big_csv_names_the_line(tmp_path):
    """Item 14: a stray double quote in a CSV over 128 KB is one error naming the line, not _csv.Error."""
    rows = ["filename,row,col", 'a.png,1,2', '"b.png,1,2'] + [f"c{i}.png,1,2" for i in range(12000)]
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"l\.csv line 3: not a readable CSV row.*unmatched double quote"):
        read_labels(tmp_path / "l.csv")


def test_the_same_photo_twice_is_an_error_naming_both_lines(tmp_path):
    """Item 16: one photo on two lines with different targets was imported twice without a word."""
    (tmp_path / "l.csv").write_text("filename,row,col\na.png,1,2\nb.png,1,2\n./a.png,3,4\n")
    with pytest.raises(DatasetError, match=r"l\.csv line 4: photo './a\.png' is listed again \(first on line 2 with "
                                           r"target \(1, 2\), here \(3, 4\)\)"):
        read_labels(tmp_path / "l.csv")


def test_skip_offscreen_counts_and_lists_the_rows_left_out(folder, tmp_path, capsys):
    """Item 4: targets on a second monitor stop the import unless --skip-offscreen, which lists them; the
    refusal to reuse a folder names only the option."""
    photos, labels = folder
    rows = _lines(labels)
    rows[2] = rows[2].replace(rows[2].split(",")[1], "2400", 1)          # line 3: x = 2400 on a 1440-wide screen
    rows[7] = "s1_006.png,-300,40,me,s1\n"                               # line 8
    labels.write_text("".join(rows))
    with pytest.raises(DatasetError, match=r"labels\.csv line 3: pixel \(2400, .*--skip-offscreen"):
        import_photos(photos, labels, tmp_path / "me", screen=SCREEN, log=quiet)
    args = ["import", str(photos), str(labels), "--screen", "1440x900", "--out", str(tmp_path / "me"), "--quiet"]
    assert console.main(args + ["--skip-offscreen"]) == 0
    out = capsys.readouterr().out
    assert "imported 22 photo(s)" in out and "skipped 2 with the target off the screen (--skip-offscreen):" in out
    assert "line 3 s1_001.png: pixel (2400," in out and "line 8 s1_006.png: pixel (-300, 40)" in out
    assert console.main(args + ["--skip-offscreen"]) == 2   # the folder holds a data set now
    err = capsys.readouterr().err
    assert "add --resume" in err and "resume=True" not in err


@pytest.mark.parametrize("backend", ["haar", "landmarks"])
def test_the_importers_face_crop_is_lives_crop_of_a_first_frame(tmp_path, backend):
    """Issue 21 point 5: crop face cuts each photo with capture's and live's face finder, strip and features,
    as a first frame (no tracking across separate photos); meta.json names the backend."""
    from gazeneg.strip import EYE_SLICE
    from gazeneg.webcam.detect import crop_eyes, face_columns, make_detector
    from gazeneg.webcam.live import FramePipeline
    from gazeneg.webcam.model_files import missing_models

    if backend == "landmarks" and missing_models():
        pytest.skip("landmark model files are not cached")
    photos = tmp_path / "frames"
    names = write_face_frames(photos, 5, name="f{i}.png")
    (tmp_path / "l.csv").write_text("filename,row,col\n" + "".join(f"{n},{i},{i}\n" for i, n in enumerate(names)))
    s = import_photos(photos, tmp_path / "l.csv", tmp_path / "ds", crop="face", face_backend=backend, log=quiet)
    assert s.imported == 5 and s.face_backend == backend
    ds = load_dataset(tmp_path / "ds")
    assert ds.meta["face_backend"] == backend
    with open(tmp_path / "ds" / "labels.csv", newline="") as f:
        rows = {r["path"].split("_")[2]: r for r in csv.DictReader(f)}
    by_name = {p.split("_")[2]: i for i, p in enumerate(ds.paths)}
    for n in names:
        frame = cv2.imread(str(photos / n))
        live = FramePipeline(predict_fn=lambda s_, f_: np.zeros((1, 2)), detector=make_detector(backend))
        res = live.process(frame, 0.0)
        stem = n.split(".")[0]
        assert np.array_equal(ds.images[by_name[stem]], res.strip), n
        box, wh, pose = face_columns(res.det, frame.shape[1], frame.shape[0])
        written = [float(rows[stem][k]) for k in ("face_x", "face_y", "face_w", "face_h", "frame_w", "frame_h",
                                                  "yaw", "pitch", "roll")]
        assert written == pytest.approx([*box, *wh, *pose], abs=0.01), n
        # and the eye landmark features live hands the model (none from Haar, which has no landmarks)
        eyes = [rows[stem][k] for k in ("eye_lx", "eye_ly", "eye_lopen", "eye_rx", "eye_ry", "eye_ropen")]
        if backend == "haar":
            assert eyes == [""] * 6, n
        else:
            assert [float(v) for v in eyes] == pytest.approx(list(crop_eyes(frame, res.det)[1][EYE_SLICE]), abs=1e-3)
            assert any(abs(float(v)) > 1e-3 for v in eyes), n


def test_the_writers_refusal_to_reuse_a_folder_names_only_the_option(tmp_path):
    """Item 4: 'pass resume=True (--resume)' spoke of the Python argument; the user has the option."""
    from gazeneg.data.dataset import DatasetWriter, new_meta

    DatasetWriter(tmp_path / "ds", new_meta("test")).close()
    with pytest.raises(DatasetError, match=r"already holds a dataset; add --resume to continue it") as e:
        DatasetWriter(tmp_path / "ds", new_meta("test"))
    assert "resume=True" not in str(e.value)


def test_the_import_summary_warns_about_targets_that_teach_little(folder, tmp_path):
    """Item 2 at import time: a real import had 34 of its 90 photos on one point, over 16 cells."""
    photos, _ = folder
    names = sorted(p.name for p in photos.iterdir())[:20]
    (tmp_path / "l.csv").write_text("filename,row,col\n" + "".join(
        f"{n},{2 if i < 12 else i % 9},{3 if i < 12 else i % 16}\n" for i, n in enumerate(names)))
    s = import_photos(photos, tmp_path / "l.csv", tmp_path / "me", crop="eye", log=quiet)
    text = "\n".join(s.lines())
    assert "warning: the targets cover only 9 of the 144 cells" in text
    assert "warning: one target, (row 2, col 3), holds 12 of the 20 photos (60%)" in text
