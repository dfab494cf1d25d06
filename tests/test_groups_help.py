"""Held-out groups by name (--test-groups/--val-groups) and --help on every training option."""

import dataclasses
import json
import re

import pytest

from gazeneg.cli import main as console
from gazeneg.config import CHOICES, GROUPS, HELP, TrainConfig, from_dict
from gazeneg.data.dataset import DatasetError, load_dataset
from gazeneg.data.splits import split_by_subject
from gazeneg.webcam.importer import import_photos
from tests.own_data import SCREEN, make_photo_folder


@pytest.fixture(scope="module")
def me(tmp_path_factory):
    """One person, three sessions (s1, s2, s3), 10 photos each."""
    root = tmp_path_factory.mktemp("own")
    photos, labels = make_photo_folder(root / "raw", per_session=10)
    import_photos(photos, labels, root / "me", screen=SCREEN, log=lambda *_: None)
    return root / "me"


@pytest.fixture(scope="module")
def two_people(tmp_path_factory, me):
    """me (s1..s3) plus you (s1..s3)."""
    root = tmp_path_factory.mktemp("two")
    photos, labels = make_photo_folder(root / "raw", per_session=6, seed=1)
    labels.write_text(labels.read_text().replace(",me,", ",you,"))
    import_photos(photos, labels, root / "ds", screen=SCREEN, log=lambda *_: None)
    photos2, labels2 = make_photo_folder(root / "raw2", per_session=6, seed=2)
    import_photos(photos2, labels2, root / "ds", screen=SCREEN, resume=True, log=lambda *_: None)
    return root / "ds"


def _sessions(ds):
    return {f"{a}/{b}" for a, b in zip(ds.subjects.tolist(), ds.sessions.tolist(), strict=True)}


@pytest.mark.parametrize("test", ["me/s1", "me/s2", "me/s3"])
def test_named_test_session_is_the_test_set(me, test):
    ds = load_dataset(me)
    sp = split_by_subject(ds, 1, 1, seed=0, test_groups=test)
    assert _sessions(sp.test) == {test} and sp.groups["test"] == [test]
    assert len(_sessions(sp.val)) == 1 and test not in _sessions(sp.val) | _sessions(sp.train)
    assert len(sp.train) + len(sp.val) + len(sp.test) == len(ds)


def test_named_val_and_test_and_subject_level_names(me, two_people):
    ds = load_dataset(me)
    sp = split_by_subject(ds, 1, 1, seed=5, test_groups="me/s3", val_groups="me/s1")
    assert (_sessions(sp.test), _sessions(sp.val), _sessions(sp.train)) == ({"me/s3"}, {"me/s1"}, {"me/s2"})
    ds2 = load_dataset(two_people)
    sp = split_by_subject(ds2, 1, 1, seed=0, test_groups="you")      # a whole subject
    assert _sessions(sp.test) == {"you/s1", "you/s2", "you/s3"} and set(sp.train.subjects) == {"me"}
    sp = split_by_subject(ds2, 1, 1, seed=0, test_groups="you/s2, me/s1")   # two sessions
    assert _sessions(sp.test) == {"you/s2", "me/s1"} and sp.groups["test"] == ["you/s2", "me/s1"]


def test_named_test_with_too_few_groups_left_validates_on_fewer(me):
    ds = load_dataset(me)
    sp = split_by_subject(ds, 2, 3, seed=0, test_groups="me/s3")
    assert _sessions(sp.test) == {"me/s3"} and len(sp.groups["val"]) == 1 and len(sp.groups["train"]) == 1
    assert _sessions(sp.val) | _sessions(sp.train) == {"me/s1", "me/s2"}
    # One session left for validation and training: split by target cell (issue 24 item 1).
    sp = split_by_subject(ds, 2, 3, seed=0, test_groups="me/s3,me/s2")
    assert sp.kind == "cells" and _sessions(sp.val) == _sessions(sp.train) == {"me/s1"}


def test_unnamed_split_is_unchanged(me):
    ds = load_dataset(me)
    for seed in range(3):
        assert split_by_subject(ds, 1, 1, seed).groups == split_by_subject(ds, 1, 1, seed, test_groups="").groups


@pytest.mark.parametrize("kw, culprit", [
    ({"test_groups": "me/s4"}, r"--test-groups 'me/s4' is not in the data set; its subjects are me and its "
                               r"sessions me/s1, me/s2, me/s3"),
    ({"val_groups": "you"}, r"--val-groups 'you' is not in the data set"),
    ({"test_groups": "me/s1", "val_groups": "me"}, r"share photos"),
    ({"test_groups": "me/s1,me/s2,me/s3"}, r"0 subject/session groups besides the named"),
])
def test_bad_group_names_are_named(me, kw, culprit):
    with pytest.raises(DatasetError, match=culprit):
        split_by_subject(load_dataset(me), 1, 1, seed=0, **kw)


def test_train_tests_on_the_named_session_and_records_it(me, tmp_path, capsys):
    # The acceptance command (defaults: 2 validation groups, of which 1 remains), made short.
    rc = console.main(["train", "--data", str(me), "--test-groups", "me/s3", "--epochs", "1", "--model", "mlp",
                       "--out", str(tmp_path / "runs"), "--progress", "false", "--threads", "1"])
    assert rc == 0
    (run,) = (tmp_path / "runs").iterdir()
    m = json.loads((run / "metrics.json").read_text())
    assert m["split_groups"]["test"] == ["me/s3"] and m["n_test"] == 10
    assert json.loads((run / "config.json").read_text())["test_groups"] == "me/s3"
    assert json.loads((run / "argv.json").read_text())[:4] == ["gazeneg", "train", "--data", str(me)]
    assert "me/s3" in capsys.readouterr().out


def test_unset_groups_leave_the_saved_config_as_before():
    d = TrainConfig().to_dict()
    assert "test_groups" not in d and "val_groups" not in d
    assert from_dict(d) == TrainConfig()
    assert from_dict({"test_groups": "me/s3"}).to_dict()["test_groups"] == "me/s3"


# ----------------------------------------------------------------------------------------------
# --help


def test_every_config_field_has_a_group_and_a_description():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(HELP) == sorted(names)
    for name, (group, text) in HELP.items():
        assert group in GROUPS and len(text) > 10, name


def _option_blocks(help_text: str) -> dict:
    """--option -> its help text, from argparse's formatted help (a description on the same line or
    on the indented lines below)."""
    blocks, current = {}, None
    for line in help_text.splitlines():
        m = re.match(r"^  (-\S+(?: \S+)?(?:, --\S+(?: \S+)?)?)(?:\s{2,}(.*))?$", line)
        if m:
            current = m.group(1).split(",")[-1].split()[0]
            blocks[current] = m.group(2) or ""
        elif current and line.startswith(" " * 8) and line.strip():
            blocks[current] += " " + line.strip()
        else:
            current = None if not line.startswith(" ") else current
    return blocks


def test_every_option_in_train_help_has_a_description(capsys):
    with pytest.raises(SystemExit):
        console.main(["train", "--help"])
    out = capsys.readouterr().out
    blocks = _option_blocks(out)
    flags = ["--" + f.name.replace("_", "-") for f in dataclasses.fields(TrainConfig)]
    assert set(flags) <= set(blocks)
    for flag, text in blocks.items():
        assert len(text.strip()) > 10, f"{flag} has no description"
    for name, choices in CHOICES.items():
        assert "{" + ", ".join(choices) + "}" in blocks["--" + name.replace("_", "-")]
    for group in GROUPS:
        assert f"\n{group} (TrainConfig):\n" in out
    assert "(default: 18)" in blocks["--epochs"] and "epochs" in blocks["--epochs"]
    assert "cells" in blocks["--neg-distance"] and "cm" in blocks["--screen-w-cm"]
    assert "percent" in blocks["--watchdog-pct"]


def test_help_did_not_change_defaults():
    assert TrainConfig().epochs == 18 and TrainConfig().lr == 2e-3 and TrainConfig().neg_boundary == "keep"
