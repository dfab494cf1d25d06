"""A newcomer's first data (issue 24 items 1, 2): one or two sittings train and evaluate, split within the
sessions by target cell (no test target seen in training), and the summary says so; cells can be named as
held-out groups; the summary prints a failed outcome and warns about targets that teach little."""

import json

import numpy as np
import pytest

from gazeneg import grid
from gazeneg.config import from_dict
from gazeneg.data.dataset import DatasetError, load_dataset
from gazeneg.data.splits import data_warnings, split_by_subject, target_cells
from gazeneg.training.loop import run
from gazeneg.training.runfiles import summary_lines
from tests.conftest import make_tiny_dataset

CELLS = list(range(0, 144, 4))[:30]   # 30 targets spread over the screen


@pytest.fixture(scope="module")
def one_sitting(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("one") / "ds", subjects=1, cells=CELLS, frames=2)


@pytest.mark.parametrize("sessions", [1, 2])
def test_one_or_two_sittings_split_by_target_cell(tmp_path, sessions):
    root = make_tiny_dataset(tmp_path / "ds", subjects=1, cells=CELLS, frames=2)
    ds = load_dataset(root)
    if sessions == 2:
        ds.sessions[: len(ds) // 2] = "u"
    for fold in range(3):
        sp = split_by_subject(ds, 1, 1, seed=0, fold=fold)
        assert sp.kind == "cells"
        cells = {k: set(target_cells(getattr(sp, k)).tolist()) for k in ("train", "val", "test")}
        assert not (cells["train"] & cells["test"] or cells["train"] & cells["val"] or cells["val"] & cells["test"])
        assert len(cells["test"]) == len(cells["val"]) == 6 and len(cells["train"]) == 18
        assert len(sp.train) + len(sp.val) + len(sp.test) == len(ds)


def test_cells_can_be_named_as_held_out_groups(one_sitting):
    ds = load_dataset(one_sitting)
    sp = split_by_subject(ds, 1, 1, seed=0, test_groups="cells:0-15", val_groups="cell:72,cell:76")
    assert set(target_cells(sp.test).tolist()) == {0, 4, 8, 12}
    assert set(target_cells(sp.val).tolist()) == {72, 76} and sp.kind == "cells"
    assert not set(target_cells(sp.train).tolist()) & {0, 4, 8, 12, 72, 76}
    with pytest.raises(DatasetError, match=r"--test-groups 'cell:1': no photo has its target in that cell; the data "
                                           r"set's cells are 0, 4, 8"):
        split_by_subject(ds, 1, 1, seed=0, test_groups="cell:1")
    with pytest.raises(DatasetError, match=r"'cells:9-300': cells are numbered 0\.\.143"):
        split_by_subject(ds, 1, 1, seed=0, test_groups="cells:9-300")


def test_a_one_session_capture_trains_with_one_command_and_says_how_it_split(one_sitting, tmp_path):
    cfg = from_dict(dict(data=str(one_sitting), epochs=1, out=str(tmp_path / "runs"), progress=False, model="mlp",
                         augment=False, flip=False))
    rd = run(cfg, argv=["x"], log=lambda *_: None)
    m = json.loads((rd / "metrics.json").read_text())
    assert m["split_kind"] == "cells" and m["n_test"] == 12
    text = "\n".join(summary_lines(rd))
    assert "held-out test target cells ['cell:" in text and "split by target cell" in text
    assert "no test target was seen in training" in text


def test_the_summary_prints_a_failed_outcome_and_data_warnings(tmp_path):
    m = {"split_groups": {"test": ["s1"], "val": ["s2"]}, "n_test": 10, "test_mean_error_cells": 6.0,
         "test_median_error_cells": 6.0, "test_cell_accuracy": 0.0, "test_within1_accuracy": 0.0,
         "ridge_mean_error_cells": 4.0, "centre_guess_error_cells": 3.8, "train_seconds": 1.0,
         "samples_per_second": 100.0, "outcome": "collapsed",
         "stop_reason": "collapsed: final validation error 6.1 cells is worse than always guessing the screen centre "
                        "(3.80)",
         "data_warnings": data_warnings([[2, 3]] * 32 + [[r, 2 * r] for r in range(8)])}
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    lines = summary_lines(tmp_path)
    assert lines[0].startswith("OUTCOME: COLLAPSED: collapsed: final validation error 6.1 cells is worse than always")
    text = "\n".join(lines)
    assert "warning: the targets cover only 9 of the 144 cells" in text
    assert "warning: one target, (row 2, col 3), holds 32 of the 40 photos (80%)" in text
    assert "held-out test subjects ['s1']" in text
    assert data_warnings([[r, c] for r in range(grid.ROWS) for c in range(grid.COLS)]) == []
    # Shaped like the real import of issue 24: 90 photos, 41 points, 34 on one.
    real = [[1.2, 3.4]] * 34 + [[r % 9 + 0.1 * k, (5 * r) % 16] for k in range(2) for r in range(28)]
    assert any("holds 34 of the 90 photos (38%)" in w for w in data_warnings(real))
    assert np.isfinite(m["test_mean_error_cells"])
