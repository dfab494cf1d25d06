"""gazeneg/training/runfiles.py: a fresh folder per run, metrics.csv rows appended and cut back on resume,
predictions.csv, config.json read back with every fault named, the resume checks, the summary a run prints."""

import csv
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from gazeneg.config import ConfigError, TrainConfig, from_dict
from gazeneg.data.dataset import DatasetError
from gazeneg.training.loop import run
from gazeneg.training.runfiles import (
    METRICS_FIELDS,
    append_metrics,
    check_resume,
    lock_run,
    new_run_dir,
    read_run_config,
    summary_lines,
    truncate_metrics,
    write_predictions,
)
from tests.conftest import fast_config, train_losses


def test_each_run_gets_a_new_folder(tmp_path):
    a, b = new_run_dir(str(tmp_path), "mlp"), new_run_dir(str(tmp_path), "mlp")
    assert a != b and a.is_dir() and b.is_dir() and a.name.endswith("-mlp") and b.name.startswith(a.name)


def test_one_process_per_run_folder(tmp_path):
    with lock_run(tmp_path), pytest.raises(ConfigError, match="in use by another training process"):
        with lock_run(tmp_path):
            pass
    with lock_run(tmp_path):   # released: free again
        pass


def test_metrics_rows_append_and_truncate(tmp_path):
    path = tmp_path / "metrics.csv"
    for e in range(4):
        append_metrics(path, {"epoch": e, "lr": 0.1, "train_loss": 1.0 / (e + 1)})
    truncate_metrics(path, 1)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1] and list(rows[0]) == METRICS_FIELDS
    truncate_metrics(tmp_path / "none.csv", 0)   # nothing to cut
    assert not (tmp_path / "none.csv").exists()


def test_predictions_csv(tmp_path):
    ds = SimpleNamespace(paths=["a.png", "b.png"], subjects=["s1", "s1"], sessions=["t", "t"],
                         targets=np.array([[0.0, 0.0], [4.0, 7.5]]))
    write_predictions(tmp_path / "p.csv", ds, np.array([[3.0, 4.0], [4.0, 7.5]]))
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["error_cells"] for r in rows] == ["5.0000", "0.0000"] and rows[1]["pred_col"] == "7.5000"


@pytest.mark.parametrize("content, culprit", [
    (None, "not a run folder (no config.json)"), ("{oops", "not a readable run config"),
    ("[1, 2]", "must hold a JSON object of settings, not a list"), ('{"lr": "x"}', "'lr' must be a number"),
    ('{"colour": 1}', "unknown config key(s): colour")])
def test_a_run_config_fault_names_the_file(tmp_path, content, culprit):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError) as e:
        read_run_config(tmp_path)
    assert culprit in str(e.value) and str(tmp_path) in str(e.value)


def test_read_run_config_round_trip(tmp_path):
    cfg = TrainConfig(model="mlp", epochs=3, lr=0.01)
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    assert read_run_config(tmp_path) == cfg


@pytest.mark.parametrize("ckpt, resume_epochs, culprit", [
    ({"model_name": "gazecnn", "epoch": 0, "extra": {}}, None, "holds a 'gazecnn' model"),
    ({"model_name": "mlp", "epoch": 5, "extra": {}}, None, "epoch 5 is not an epoch of this 4-epoch run"),
    ({"model_name": "mlp", "epoch": -1, "extra": {}}, None, "epoch -1"),
    ({"model_name": "mlp", "epoch": 1, "extra": {}}, 2, "--epochs 2 would shorten"),
    ({"model_name": "mlp", "epoch": 1, "extra": 3}, None, "no training state"),
    ({"model_name": "mlp", "epoch": 1, "extra": {"history": 5}}, None, "'history' is 5"),
    ({"model_name": "mlp", "epoch": 1, "extra": {"best_err": float("nan")}}, None, "'best_err' is nan"),
    ({"model_name": "mlp", "epoch": 1, "extra": {"best_epoch": 3}}, None, "do not fit epoch 1")])
def test_resume_refuses_a_checkpoint_that_cannot_continue_the_run(tmp_path, ckpt, resume_epochs, culprit):
    with pytest.raises(ConfigError, match=re.escape(culprit)):
        check_resume(tmp_path / "last.pt", ckpt, TrainConfig(model="mlp", epochs=4), resume_epochs)


def test_resume_accepts_a_sound_state(tmp_path):
    ok = {"model_name": "mlp", "epoch": 1, "extra": {"history": [], "lam": 0.5, "best_err": "inf", "best_epoch": 1,
                                                      "step": 10}}
    check_resume(tmp_path / "last.pt", ok, TrainConfig(model="mlp", epochs=4), 6)


def _metrics(**kw) -> dict:
    m = {"split_kind": "subject/session groups", "split_groups": {"test": ["me/s3"], "val": ["me/s2"]}, "n_test": 20,
         "test_mean_error_cells": 1.5, "test_median_error_cells": 1.2, "test_cell_accuracy": 0.3,
         "test_within1_accuracy": 0.8, "ridge_mean_error_cells": 2.0, "centre_guess_error_cells": 4.0,
         "train_seconds": 3.0, "samples_per_second": 500.0, "outcome": "ok"}
    return {**m, **kw}


def test_the_summary_says_what_was_held_out_and_the_outcome_first(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    lines = summary_lines(tmp_path)
    assert lines[0] == "held-out test sessions ['me/s3'] (20 images):" and "1.500 cells" in lines[1]
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics(test_mean_error_cm=1.25, test_mean_error_degrees=1.5)))
    assert "  mean error on the screen 1.25 cm, 1.50 degrees of visual angle" in summary_lines(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics(outcome="collapsed", data_warnings=["few cells"])))
    lines = summary_lines(tmp_path)
    assert lines[0].startswith("OUTCOME: COLLAPSED") and lines[-1] == "warning: few cells"


def test_run_folder_contents(tiny_dataset, tmp_path):
    rd = run(fast_config(tiny_dataset, tmp_path / "runs", epochs=4, flip=True), argv=["x"])
    for f in ("config.json", "argv.json", "metrics.csv", "metrics.json", "predictions.csv", "best.pt", "last.pt"):
        assert (rd / f).is_file(), f
    m = json.loads((rd / "metrics.json").read_text())
    for k in ("test_mean_error_cells", "test_median_error_cells", "test_cell_accuracy", "test_within1_accuracy",
              "ridge_mean_error_cells", "train_seconds", "samples_per_second"):
        assert np.isfinite(m[k]), k
    assert len(train_losses(rd)) == 4
    # Never overwrite: a second run gets its own folder.
    rd2 = run(fast_config(tiny_dataset, tmp_path / "runs", epochs=4, flip=True), argv=["x"])
    assert rd2 != rd


@pytest.mark.parametrize("kw, err, culprit", [
    (dict(data="no_such_dir"), DatasetError, "no_such_dir"),
    (dict(model="nosuch"), ValueError, "nosuch"),
    (dict(model="mlp", model_kwargs={"nonsense": 1}), ValueError, "bad hyperparameters"),
])
def test_a_failed_training_start_leaves_no_run_folder(tiny_dataset, tmp_path, kw, err, culprit):
    base = dict(data=str(tiny_dataset), epochs=1, out=str(tmp_path / "runs"), progress=False, val_subjects=1,
                test_subjects=1)
    cfg = from_dict({**base, **kw})
    with pytest.raises(err, match=culprit):
        run(cfg, argv=["x"])
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
