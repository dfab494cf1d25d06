"""gazeneg/data/splits.py: whole subjects (or sessions, or for one or two sittings target cells) held out,
never single photos; folds that test every group once; named groups; the data budget; the data warnings."""

import numpy as np
import pytest

from gazeneg import grid
from gazeneg.data.dataset import DatasetError, load_dataset
from gazeneg.data.splits import (
    apply_budget,
    cell_set,
    data_warnings,
    parse_groups,
    resolve_data_path,
    split_by_subject,
    target_cells,
)
from tests.conftest import make_tiny_dataset


@pytest.fixture(scope="module")
def ds(tiny_dataset):
    return load_dataset(tiny_dataset)


def _subjects(part) -> set:
    return set(part.subjects.tolist())


def test_whole_subjects_are_held_out_and_every_photo_lands_once(ds):
    sp = split_by_subject(ds, 2, 1, seed=0)
    assert sp.kind == "subjects" and len(sp.train) + len(sp.val) + len(sp.test) == len(ds)
    assert _subjects(sp.val) == set(sp.groups["val"]) and len(sp.groups["val"]) == 2
    assert _subjects(sp.test) == set(sp.groups["test"]) and len(sp.groups["test"]) == 1
    assert not (_subjects(sp.train) & _subjects(sp.val) or _subjects(sp.train) & _subjects(sp.test))
    assert split_by_subject(ds, 2, 1, seed=0).groups == sp.groups            # the seed decides, nothing else


def test_folds_test_every_subject_once(ds):
    tested = [split_by_subject(ds, 1, 1, seed=3, fold=f).groups["test"][0] for f in range(6)]
    assert sorted(tested) == sorted(_subjects(ds))


def test_named_groups_are_held_out_exactly(ds):
    sp = split_by_subject(ds, 1, 1, seed=0, test_groups="s03, s05")
    assert _subjects(sp.test) == {"s03", "s05"} and not _subjects(sp.val) & {"s03", "s05"}
    with pytest.raises(DatasetError, match="'nobody' is not in the data set; its subjects are s00"):
        split_by_subject(ds, 1, 1, seed=0, test_groups="nobody")
    with pytest.raises(DatasetError, match="share photos"):
        split_by_subject(ds, 1, 1, seed=0, test_groups="s01", val_groups="s01")
    sp = split_by_subject(ds, 1, 1, seed=0, test_groups="cells:0-15")        # the top row, by hand
    assert sp.kind == "cells" and set(target_cells(sp.test).tolist()) == set(range(16))
    assert not set(target_cells(sp.train).tolist()) & set(range(16))


def test_one_sitting_is_split_by_target_cell(tmp_path):
    one = load_dataset(make_tiny_dataset(tmp_path / "one", subjects=1))
    sp = split_by_subject(one, 1, 1, seed=0)
    test_cells, train_cells = set(target_cells(sp.test).tolist()), set(target_cells(sp.train).tolist())
    assert sp.kind == "cells" and not test_cells & train_cells and not set(target_cells(sp.val).tolist()) & train_cells
    assert len(test_cells) == round(0.2 * grid.N_CELLS)


def test_too_few_groups_for_three_sittings_or_more_is_an_error(ds):
    with pytest.raises(DatasetError, match=r"6 subject/session groups \(s00/t, .*\) but the split needs 4 for validation, 4 for test"):
        split_by_subject(ds, 4, 4, seed=0)


def test_cell_sets_and_group_names():
    assert cell_set("cell:37") == {37} and cell_set("cells:0-2") == {0, 1, 2} and cell_set("me/s3") is None
    with pytest.raises(DatasetError, match="numbered 0..143"):
        cell_set("cells:140-150")
    assert parse_groups(" me/s3, me/s2 ,me/s3,") == ("me/s3", "me/s2") and parse_groups(None) == ()
    with pytest.raises(DatasetError, match="'synthetic:x'"):
        resolve_data_path("synthetic:x")


def test_the_budget_keeps_the_first_frames_of_each_subject_and_cell(tmp_path):
    three = load_dataset(make_tiny_dataset(tmp_path / "three", subjects=2, cells=[0, 5, 9], frames=3))
    kept = apply_budget(three, 2)
    keys = list(zip(kept.subjects.tolist(), target_cells(kept).tolist(), strict=True))
    assert len(kept) == 2 * 3 * 2 and all(keys.count(k) == 2 for k in set(keys))
    assert apply_budget(three, 0) is three


def test_data_warnings():
    spread = np.array([grid.index_to_cell(c) for c in range(grid.N_CELLS)], float)
    assert data_warnings(spread) == [] and data_warnings(np.zeros((0, 2))) == []
    few = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 3, float)
    assert data_warnings(few) == [data_warnings(few)[0]] and "only 4 of the 144 cells" in data_warnings(few)[0]
    crowded = np.vstack([spread, np.tile([[4.0, 7.0]], (100, 1))])
    (line,) = data_warnings(crowded)
    assert "(row 4, col 7), holds 101 of the 244 photos (41%)" in line


def test_split_by_subject_never_shares_subjects(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    sp = split_by_subject(ds, 2, 1, seed=0)
    s = [set(x.subjects) for x in (sp.train, sp.val, sp.test)]
    assert not (s[0] & s[1] or s[0] & s[2] or s[1] & s[2])
    assert (len(s[0]), len(s[1]), len(s[2])) == (3, 2, 1)
    assert len(apply_budget(sp.train, 1)) == 3 * 144
    with pytest.raises(Exception, match="needs 4 for validation"):
        split_by_subject(ds, 4, 4, seed=0)


def test_split_folds_rotate_through_every_subject(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    subjects = set(ds.subjects)
    tested = []
    for fold in range(len(subjects)):
        sp = split_by_subject(ds, 2, 1, seed=0, fold=fold)
        s = [set(x.subjects) for x in (sp.train, sp.val, sp.test)]
        assert not (s[0] & s[1] or s[0] & s[2] or s[1] & s[2]) and s[0] | s[1] | s[2] == subjects
        tested += sorted(s[2])
        # The same (seed, fold) is the same split: every arm of a sweep sees it.
        assert split_by_subject(ds, 2, 1, seed=0, fold=fold).groups == sp.groups
    assert sorted(tested) == sorted(subjects)           # each subject held out exactly once
    assert split_by_subject(ds, 2, 1, seed=0, fold=len(subjects)).groups == split_by_subject(ds, 2, 1, 0).groups


def test_synthetic_specs_name_frames_and_people():
    from gazeneg.data.dataset import DatasetError
    from gazeneg.data.splits import synthetic_spec

    assert synthetic_spec("synthetic") == (None, 0)
    assert synthetic_spec("synthetic:4") == (4, 0)
    assert synthetic_spec("synthetic:4:7") == (4, 7)
    assert synthetic_spec("data/mine") is None and synthetic_spec("my-synthetic") is None
    for bad in ("synthetic:", "synthetic:x", "synthetic:0", "synthetic:4:", "synthetic:4:-1", "synthetic:4:1:2"):
        with pytest.raises(DatasetError, match=f"data '{bad}': expected 'synthetic'"):
            synthetic_spec(bad)
