import json

import cv2
import numpy as np
import pytest

from gazeneg.data.dataset import DatasetError, DatasetWriter, face_features, load_dataset, new_meta
from gazeneg.webcam.importer import import_photos
from tests.conftest import make_tiny_dataset, rewrite_labels


@pytest.fixture
def ds_dir(tmp_path):
    return make_tiny_dataset(tmp_path / "ds", subjects=2, cells=[0, 43, 100])


def test_loads_valid_dataset(ds_dir):
    ds = load_dataset(ds_dir)
    assert len(ds) == 6
    assert ds.images.shape == (6, 32, 96, 3) and ds.images.dtype == np.uint8
    assert ds.targets[1].tolist() == [2.0, 11.0]
    assert set(ds.subjects) == {"s00", "s01"}
    assert ds.face.shape == (6, 13)   # box 4, pose 3, eye landmarks 6


def test_missing_image_names_file_and_line(ds_dir):
    (ds_dir / "images" / "s00_043_0.png").unlink()
    with pytest.raises(DatasetError, match=r"labels\.csv line 3: image 'images/s00_043_0\.png' is missing"):
        load_dataset(ds_dir)


def test_corrupt_image(ds_dir):
    (ds_dir / "images" / "s01_100_0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"line 7: image 'images/s01_100_0\.png' is not a PNG, JPEG"):
        load_dataset(ds_dir)


def test_nan_row(ds_dir):
    def bad(rows):
        rows[2][1] = "nan"
        return rows
    rewrite_labels(ds_dir, bad)
    with pytest.raises(DatasetError, match=r"line 3: column 'row' is 'nan'"):
        load_dataset(ds_dir)


def test_out_of_range_col(ds_dir):
    def bad(rows):
        rows[4][2] = "16.5"
        return rows
    rewrite_labels(ds_dir, bad)
    with pytest.raises(DatasetError, match=r"line 5: col 16.5 is off the screen \(cols -0.5..15.5\)"):
        load_dataset(ds_dir)


def test_duplicate_path(ds_dir):
    def bad(rows):
        rows[3][0] = rows[2][0]
        return rows
    rewrite_labels(ds_dir, bad)
    with pytest.raises(DatasetError, match=r"line 4: duplicate path 'images/s00_043_0\.png' \(first on line 3\)"):
        load_dataset(ds_dir)


def test_missing_column(ds_dir):
    def bad(rows):
        return [r[:3] + r[4:] for r in rows]  # drop "subject"
    rewrite_labels(ds_dir, bad)
    with pytest.raises(DatasetError, match=r"labels\.csv line 1: missing column\(s\) subject"):
        load_dataset(ds_dir)


def test_empty_set(ds_dir):
    rewrite_labels(ds_dir, lambda rows: rows[:1])
    with pytest.raises(DatasetError, match="no data rows: the dataset is empty"):
        load_dataset(ds_dir)


def test_missing_meta_and_folder(ds_dir, tmp_path):
    (ds_dir / "meta.json").unlink()
    with pytest.raises(DatasetError, match=r"meta\.json: missing"):
        load_dataset(ds_dir)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_dataset(tmp_path / "nope")


def test_bad_meta_grid(ds_dir):
    meta = json.loads((ds_dir / "meta.json").read_text())
    meta["grid"] = [16, 9]
    (ds_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"grid is \[16, 9\]"):
        load_dataset(ds_dir)


def test_writer_refuses_existing_and_resumes(ds_dir):
    with pytest.raises(DatasetError, match="already holds a dataset"):
        DatasetWriter(ds_dir, new_meta("x"))
    # A crash mid-row leaves a partial last line: resume drops it and appends cleanly.
    with open(ds_dir / "labels.csv", "a") as f:
        f.write("images/half_written.png,1.0,")
    (ds_dir / "images" / ".x.png.123.tmp").write_bytes(b"partial")
    with DatasetWriter(ds_dir, new_meta("x"), resume=True) as wr:
        assert len(wr) == 6
        wr.add(np.zeros((32, 96, 3), np.uint8), 3.0, 4.0, subject="s09", session="t")
    ds = load_dataset(ds_dir)
    assert len(ds) == 7
    assert not list((ds_dir / "images").glob(".*.tmp"))


def test_face_features_centre_is_zero():
    f = face_features(220, 140, 200, 200, 640, 480)
    assert f.tolist() == pytest.approx([0.0, 0.0, 200 / 640, 200 / 480, 0.0, 0.0, 0.0] + [0.0] * 6)
    assert face_features(0, 0, 100, 100, 640, 480)[0] < 0  # face left of centre -> negative x


def test_import_photos(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"p{i}.jpg"), np.full((64, 192, 3), 40 * i, np.uint8))
    (tmp_path / "labels.csv").write_text("filename,row,col\np0.jpg,2,11\np1.jpg,0,0\np2.jpg,8,15\n")
    out = import_photos(photos, tmp_path / "labels.csv", tmp_path / "out", crop="resize").out
    ds = load_dataset(out)
    assert len(ds) == 3 and ds.targets[0].tolist() == [2.0, 11.0]
    (tmp_path / "bad.csv").write_text("p0.jpg,2,11\nmissing.jpg,1,1\n")
    with pytest.raises(DatasetError, match=r"bad\.csv line 2: photo 'missing\.jpg' is missing"):
        import_photos(photos, tmp_path / "bad.csv", tmp_path / "out2", crop="resize")
