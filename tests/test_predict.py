"""`gazeneg predict`: on a labelled data-set folder it agrees with `gazeneg train`'s evaluation of the same
checkpoint (predictions, metrics) and writes the error table and heatmap; on a video or image folder it
writes the live pipeline's samples."""

import csv
import json

import numpy as np
import pytest

from gazeneg.cli import main as gazeneg_main
from gazeneg.training.loop import run
from gazeneg.webcam.accuracy import cell_error_grid, region_table
from gazeneg.webcam.record import SAMPLE_FIELDS
from tests.conftest import face_frames, fast_config, tiny_checkpoint, write_folder, write_video


def _rows(path):
    return list(csv.DictReader(open(path, newline="")))


def test_predict_on_a_dataset_agrees_with_train(tiny_dataset, tmp_path, monkeypatch, capsys):
    cfg = fast_config(tiny_dataset, tmp_path / "runs", epochs=3)
    rd = run(cfg, argv=["x"], log=lambda *a: None)
    m = json.loads((rd / "metrics.json").read_text())
    test_subjects = m["split_groups"]["test"]
    monkeypatch.chdir(tmp_path)
    assert gazeneg_main.main(["predict", str(rd / "best.pt"), str(tiny_dataset), "--out", "test.csv",
                              "--subjects", ",".join(test_subjects)]) == 0
    out = capsys.readouterr().out
    got = json.loads((tmp_path / "test_errors.json").read_text())
    for k in ("mean_error_cells", "median_error_cells", "cell_accuracy", "within1_accuracy", "n"):
        assert got[k] == pytest.approx(m["test_" + k], abs=1e-6), k
    # the same predictions, image by image, as train's predictions.csv
    ours = {r["path"]: r for r in _rows(tmp_path / "test.csv")}
    theirs = _rows(rd / "predictions.csv")
    assert len(ours) == len(theirs) == m["n_test"]
    for r in theirs:
        assert (ours[r["path"]]["pred_row"], ours[r["path"]]["pred_col"]) == (r["pred_row"], r["pred_col"])
    table = _rows(tmp_path / "test_errors.csv")
    assert table[0]["region"] == "all" and float(table[0]["mean_cells"]) == pytest.approx(m["test_mean_error_cells"])
    assert [r["region"] for r in table[1:10]] == [f"row {i}" for i in range(9)]
    assert [r["region"] for r in table[10:]] == [f"col {i}" for i in range(16)]
    assert (tmp_path / "test_heatmap.png").stat().st_size > 10_000
    assert "| all |" in out and "cell accuracy" in out
    # the whole folder, and refusing to overwrite
    assert gazeneg_main.main(["predict", str(rd / "best.pt"), str(tiny_dataset), "--out", "test.csv"]) == 2
    assert "exists" in capsys.readouterr().err


def test_region_table_on_known_errors():
    true = np.array([[2.0, 11.0], [2.0, 11.0], [5.0, 3.0], [5.0, 3.0]])
    pred = true + np.array([[0.0, 0.3], [0.0, 0.5], [1.2, 0.0], [np.nan, 0.0]])
    t = {r["region"]: r for r in region_table(pred, true, screen_px=(1600, 900))}
    assert t["all"]["n"] == 4 and t["all"]["mean_cells"] == np.inf            # a non-finite output is a miss
    assert t["row 2"]["mean_cells"] == pytest.approx(0.4) and t["row 2"]["cell_accuracy"] == 0.5
    assert t["row 2"]["mean_px"] == pytest.approx(0.4 * 100)                  # a cell is 100 px wide here
    assert t["col 3"]["within1_accuracy"] == 0.5 and t["col 3"]["cell_accuracy"] == 0.0
    assert set(t) == {"all", "row 2", "row 5", "col 11", "col 3"}
    mean, count = cell_error_grid(pred[:3], true[:3])
    assert mean[2, 11] == pytest.approx(0.4) and count[5, 3] == 1 and np.isnan(mean[0, 0])


def test_predict_on_a_video_and_an_image_folder(tmp_path, monkeypatch, capsys):
    ckpt = tiny_checkpoint(tmp_path)
    frames = face_frames(12)
    video = write_video(tmp_path / "clip.avi", frames)
    folder = write_folder(tmp_path / "imgs", frames)
    monkeypatch.chdir(tmp_path)
    assert gazeneg_main.main(["predict", str(ckpt), str(folder)]) == 0
    assert gazeneg_main.main(["predict", str(ckpt), str(video), "--out", "v.csv"]) == 0
    rows = _rows(tmp_path / "imgs_gaze.csv")
    assert list(rows[0]) == ["path", *SAMPLE_FIELDS]
    assert [r["path"] for r in rows] == [f"{i:04d}.png" for i in range(12)]
    assert all(r["state"] == "ok" and r["row"] != "" for r in rows)
    # no smoothing by default: the gaze is the model's own output (no calibration saved)
    assert all(float(r["row"]) == float(r["raw_row"]) for r in rows)
    vrows = _rows(tmp_path / "v.csv")
    assert len(vrows) == 12 and vrows[3]["path"] == "clip.avi#3"
    assert "12 frames, 12 with a gaze point" in capsys.readouterr().out


def test_predict_bad_input_is_one_line(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path)
    assert gazeneg_main.main(["predict", str(ckpt), str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing: no such video" in err
