"""Fine-tuning from a checkpoint (--init) and the personal regime (gazeneg/study/personal.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gazeneg.data.dataset import load_dataset
from gazeneg.data.splits import load_splits
from gazeneg.model.checkpoint import CheckpointError, init_state, load_checkpoint
from gazeneg.model.networks import create_model, predict
from gazeneg.training import loop as train
from tests.conftest import fast_config, load_script

ROOT = Path(__file__).resolve().parents[1]


def _cfg(data, tmp_path, **kw):
    return fast_config(data, tmp_path / "runs", threads=1, device="cpu", **kw)


@pytest.fixture(scope="module")
def mlp_checkpoint(tiny_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    run_dir = train.run(_cfg(tiny_dataset, tmp), argv=[], log=lambda *_: None)
    return run_dir / "best.pt"


class _Stop(Exception):
    pass


def test_init_loads_the_weights_exactly(tiny_dataset, mlp_checkpoint, tmp_path, monkeypatch):
    """scripts/train.py --init hands fit the checkpoint's weights: the same predictions before any step."""
    seen = {}

    def fake_fit(cfg, splits, **kw):
        seen.update(kw, cfg=cfg)
        raise _Stop

    monkeypatch.setattr(train, "fit", fake_fit)
    script = load_script("train")
    with pytest.raises(_Stop):
        script.main(["--data", str(tiny_dataset), "--model", "mlp", "--init", str(mlp_checkpoint), "--out",
                     str(tmp_path / "r"), "--val-subjects", "1", "--test-subjects", "1", "--progress", "false",
                     "--freeze-backbone"])
    assert seen["cfg"].init == str(mlp_checkpoint) and seen["cfg"].backbone_lr_scale == 0.0
    ds = load_dataset(tiny_dataset)
    model = create_model("mlp")
    model.load_state_dict(seen["init_state"])
    ref, _ = load_checkpoint(mlp_checkpoint)
    a = predict(model, ds.images[:50], ds.face[:50])
    b = predict(ref, ds.images[:50], ds.face[:50])
    np.testing.assert_array_equal(a, b)
    # and a fresh model of the same architecture does not predict the same: the test can fail
    assert not np.allclose(predict(create_model("mlp"), ds.images[:50], ds.face[:50]), b)


def test_init_refuses_another_architecture(mlp_checkpoint):
    with pytest.raises(CheckpointError, match=r"best\.pt.*'mlp'.*not 'gazecnn'"):
        init_state(mlp_checkpoint, "gazecnn", {"head": "regression"})
    with pytest.raises(CheckpointError, match=r"best\.pt.*hidden"):
        init_state(mlp_checkpoint, "mlp", {"head": "regression", "hidden": 64})
    with pytest.raises(CheckpointError, match=r"best\.pt.*head"):
        init_state(mlp_checkpoint, "mlp", {"head": "classification"})
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        init_state(mlp_checkpoint.parent / "missing.pt", "mlp", {})


def test_frozen_backbone_stays_exactly_the_checkpoint(tiny_dataset, tmp_path):
    """backbone_lr_scale 0: the backbone's weights and BatchNorm statistics do not move; the head does."""
    cfg = _cfg(tiny_dataset, tmp_path, model="gazecnn", model_kwargs={"width": 8, "keypoints": 4}, ema=0.0,
               save_checkpoints=False, backbone_lr_scale=0.0, lr=1e-2)
    torch.manual_seed(0)
    start = create_model("gazecnn", width=8, keypoints=4).state_dict()
    sp = load_splits(cfg)
    sp.train = sp.train.subset(np.arange(128))
    res = train.fit(cfg, sp, log=lambda *_: None, init_state=start)
    end = res.final_state
    for k, v in start.items():
        if k.startswith("backbone.") and not k.endswith("num_batches_tracked"):
            assert torch.equal(end[k], v), k
    assert not torch.equal(end["fc.0.weight"], start["fc.0.weight"])


# ----------------------------------------------------------------------------------------------
# The personal regime


from gazeneg import grid  # noqa: E402
from gazeneg.study.personal import (  # noqa: E402
    NINE_POINT,
    PersonalConfig,
    held_out_units,
    make_folds,
    read_finetunes,
    run_personal,
    select_lr,
    split_unit,
)
from gazeneg.study.personal_report import build_report  # noqa: E402


def _cells(targets, rows):
    return set(np.atleast_1d(grid.nearest_cell(targets[rows, 0], targets[rows, 1])).tolist())


def test_per_unit_split_never_puts_a_test_cell_in_calibration_or_validation(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    kind, units = held_out_units(ds)
    assert kind == "person" and len(units) == 6
    for no, u in enumerate(units):
        sp = split_unit(ds.targets, u.rows, seed=0, unit_no=no)
        test, calib, val = _cells(ds.targets, sp.test), _cells(ds.targets, sp.calib), _cells(ds.targets, sp.val)
        assert test and calib and val
        assert not test & calib and not test & val and not calib & val
        assert set(sp.test) | set(sp.val) | set(sp.calib) == set(u.rows.tolist())
        # the first nine calibration photos are the 9-point calibration
        assert [tuple(int(v) for v in ds.targets[r]) for r in sp.calib[:9]] == list(NINE_POINT)
        # every photo of the unit is the unit's own person
        assert set(ds.subjects[sp.calib]) == {u.name}
    # different units get different random test cells
    a, b = (split_unit(ds.targets, units[i].rows, 0, i) for i in (0, 1))
    assert set(a.test_cells.tolist()) != set(b.test_cells.tolist())


def test_one_person_units_are_sessions_or_cell_thirds(tmp_path):
    from tests.conftest import make_tiny_dataset

    ds = load_dataset(make_tiny_dataset(tmp_path / "one", subjects=1, frames=1))
    kind, units = held_out_units(ds)
    assert kind == "cells" and len(units) == 3
    assert sum(len(u.rows) for u in units) == len(ds)
    assert not _cells(ds.targets, units[0].rows) & _cells(ds.targets, units[1].rows)
    ds.sessions[: len(ds) // 2] = "a"
    kind, units = held_out_units(ds)
    assert kind == "session" and [u.name for u in units] == ["a", "t"]


def test_folds_hold_out_every_unit_once():
    for n, folds in ((24, 4), (3, 4), (10, 4)):
        f = make_folds(n, folds, seed=0)
        assert sorted(u for part in f for u in part) == list(range(n))
    assert len(make_folds(24, 4, 0)) == 4 and len(make_folds(3, 4, 0)) == 3


def test_lr_is_chosen_on_validation_only():
    """A fabricated case where the best validation LR (1e-3) is not the best test LR (1e-2)."""
    rows = [{"lr": 1e-4, "val_error": 1.0, "final_test_error": 0.9, "val_outcome": "ok", "selected": False},
            {"lr": 1e-3, "val_error": 0.5, "final_test_error": 0.8, "val_outcome": "ok", "selected": False},
            {"lr": 1e-2, "val_error": 0.7, "final_test_error": 0.1, "val_outcome": "ok", "selected": False},
            {"lr": 1e-1, "val_error": 0.2, "final_test_error": 0.05, "val_outcome": "collapsed", "selected": False}]
    assert select_lr(rows)["lr"] == 1e-3
    # test errors do not enter: scramble them and the choice stays
    for r, t in zip(rows, (0.0, 9.0, 0.0, 0.0), strict=True):
        r["final_test_error"] = t
    assert select_lr(rows)["lr"] == 1e-3


def _fabricated(n=20, effect=-0.2, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n):
        base = 1.0 + rng.normal(0, 0.3)
        for arm, err in (("ft:no_finetune", base + 0.5 + rng.normal(0, 0.05)), ("ft:baseline", base),
                         ("ft:original_l0.5_B2", base + effect + rng.normal(0, 0.02)),
                         ("ft:symmetric_k4", base + rng.normal(0, 0.3))):
            rows.append({"arm": arm, "person": f"p{p:02d}", "budget": 9, "lr": 1e-3, "selected": True,
                         "final_test_error": err, "best_test_error": err, "diverged": False, "collapsed": False,
                         "cell_accuracy": 0.5, "seconds": 0.01, "feature_seconds": 0.1, "val_error": err})
    return rows


def test_report_says_helps_when_an_arm_is_better_for_every_person(tmp_path):
    doc = build_report(tmp_path, rows=_fabricated(), meta={"unit_kind": "person", "config": {"model": "gazecnn"}})
    v = {e["arm"]: e["verdict"] for e in doc["entries"]}
    assert v["ft:original_l0.5_B2"] == "helps" and v["ft:no_finetune"] == "hurts"
    text = (tmp_path / "report.md").read_text()
    assert "**helps** in 1 of 2 arms: ft:original_l0.5_B2 (-0.1" in text
    assert "Fine-tuning the base model on 9 photos of a new person lowers its error" in text
    # and the other way round: the same arm 0.2 worse for everyone hurts, and nothing helps
    doc = build_report(tmp_path, rows=_fabricated(effect=+0.2), meta={"unit_kind": "person"})
    assert {e["arm"]: e["verdict"] for e in doc["entries"]}["ft:original_l0.5_B2"] == "hurts"
    assert "helps in **none** of the 2 arms" in (tmp_path / "report.md").read_text()


def test_regime_on_a_tiny_set_gives_verdicts(tiny_dataset, tmp_path):
    pc = PersonalConfig(data=str(tiny_dataset), out=str(tmp_path / "p"), model="mlp", ks=(9, 36), base_epochs=60,
                        folds=2,
                        steps=10, lr_grid=(1e-3, 1e-2), arms=["ft:no_finetune", "ft:baseline", "ft:original_l0.5_B2",
                                                              "ft:symmetric_k4", "cls:baseline", "cls:complement"],
                        cache=str(tmp_path / "cache"), workers=1)
    run_personal(pc, progress=False, log=lambda *_: None)
    rows = read_finetunes(pc.out)
    chosen = [r for r in rows if r["selected"]]
    # one chosen LR per (arm, person, k); every LR of the grid was run
    assert len(chosen) == 6 * 2 * 6
    assert len(rows) == 6 * 2 * (1 + 5 * 2)
    doc = build_report(pc.out)
    verdicts = {(e["arm"], e["budget"]): e["verdict"] for e in doc["entries"]}
    assert verdicts[("ft:baseline", 9)] == "reference"
    assert all(verdicts[(a, k)] in ("helps", "hurts", "equivalent", "inconclusive", "invalid")
               for a in ("ft:original_l0.5_B2", "ft:symmetric_k4", "cls:complement") for k in (9, 36))
    text = (Path(pc.out) / "report.md").read_text()
    assert "Held-out unit: the person" in text and "One person with 36 photos" in text
    assert (Path(pc.out) / "error_vs_k.png").stat().st_size > 10_000
    # re-running resumes: nothing is fine-tuned twice
    run_personal(pc, progress=False, log=lambda *_: None)
    assert len(read_finetunes(pc.out)) == len(rows)


@pytest.mark.parametrize("name,kw", [("mlp", {}), ("gazecnn", {"width": 8, "keypoints": 4})])
@pytest.mark.parametrize("part", ["last", "head"])
def test_head_on_features_is_the_model(tiny_dataset, name, kw, part):
    """Last-layer fine-tuning starts from exactly the model: Head(model)(features(model, x)) == model(x)."""
    from gazeneg.study.personal import Head, features, head_points

    ds = load_dataset(tiny_dataset).subset(np.arange(40))
    torch.manual_seed(1)
    model = create_model(name, **kw).eval()
    ref = predict(model, ds.images, ds.face)
    np.testing.assert_allclose(head_points(Head(model, part), features(model, ds, part)), ref, atol=1e-5)


def _one_person_three_sessions(root):
    import cv2

    from gazeneg.data.dataset import IMAGE_H, IMAGE_W, DatasetWriter, new_meta

    rng = np.random.default_rng(0)
    with DatasetWriter(root, new_meta("test-one-person"), fsync=False) as wr:
        for sess in ("mon", "tue", "wed"):
            shade = int(rng.integers(150, 220))
            for c in range(grid.N_CELLS):
                r, cc = grid.index_to_cell(c)
                img = np.full((IMAGE_H, IMAGE_W, 3), shade, np.uint8)
                x = 8 + cc * (IMAGE_W - 16) / grid.COL_MAX + rng.normal(0, 0.3)
                y = 6 + r * (IMAGE_H - 12) / grid.ROW_MAX + rng.normal(0, 0.3)
                cv2.circle(img, (int(round(x * 4)), int(round(y * 4))), 12, (30, 30, 30), -1, lineType=cv2.LINE_AA,
                           shift=2)
                wr.add(img, float(r), float(cc), subject="me", session=sess, name=f"{sess}_{c:03d}.png",
                       face=(200, 150, 220, 220), frame=(640, 480))
    return root


def test_one_person_capture_runs_the_personal_regime_by_session(tmp_path, capsys):
    """scripts/eval_wrong_labels.py --data DIR --regime personal on one person with three sessions: the held-out
    unit is the session, and the report says so (the default for one person is the one-person regime,
    tests/test_one_person.py)."""
    data = _one_person_three_sessions(tmp_path / "me")
    out = tmp_path / "out"
    rc = load_script("eval_wrong_labels").main(["--data", str(data), "--out", str(out), "--regime", "personal",
                                            "--model", "mlp", "--ks", "9", "36",
                                            "--arms", "ft:no_finetune", "ft:baseline", "ft:original_l0.5_B2",
                                            "--lr-grid", "1e-3", "1e-2", "--steps", "10", "--base-epochs", "30",
                                            "--cache", str(tmp_path / "cache"), "--workers", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "held-out unit = session" in printed
    text = (out / "report.md").read_text()
    assert "Held-out unit: the session." in text and "each of its 3 sessions is held out once" in text
    rows = read_finetunes(out)
    assert {r["person"] for r in rows} == {"mon", "tue", "wed"} and {r["unit_kind"] for r in rows} == {"session"}


def test_full_finetuning_from_init(tiny_dataset, mlp_checkpoint, tmp_path):
    """--init with full fine-tuning: every fold starts from the checkpoint (no fine-tuning = the checkpoint's own
    error on the person's test cells, exactly) and the whole network is trained by train.fit."""
    from gazeneg.study.personal import split_unit

    pc = PersonalConfig(data=str(tiny_dataset), out=str(tmp_path / "p"), model="mlp", ks=(9,), folds=2, steps=4,
                        lr_grid=(1e-3,), init=str(mlp_checkpoint), finetune="full",
                        arms=["ft:no_finetune", "ft:baseline", "ft:original_l0.5_B2"], workers=1,
                        cache=str(tmp_path / "cache"))
    run_personal(pc, progress=False, log=lambda *_: None)
    rows = read_finetunes(pc.out)
    ds = load_dataset(tiny_dataset)
    ref, _ = load_checkpoint(mlp_checkpoint)
    kind, units = held_out_units(ds)
    for no, u in enumerate(units):
        test = ds.subset(split_unit(ds.targets, u.rows, 0, no).test)
        err = float(np.linalg.norm(predict(ref, test.images, test.face) - test.targets, axis=1).mean())
        nf = next(r for r in rows if r["arm"] == "ft:no_finetune" and r["person"] == u.name)
        assert nf["final_test_error"] == pytest.approx(err, abs=1e-9)
        ft = next(r for r in rows if r["arm"] == "ft:baseline" and r["person"] == u.name)
        assert ft["finetune"] == "full" and ft["final_test_error"] != nf["final_test_error"]


@pytest.mark.slow  # starts a Ray instance: about 10 s and 1 GB on 2 cores; `make test-slow` runs it
def test_personal_regime_on_local_ray_matches_sequential(tiny_dataset, tmp_path):
    ray = pytest.importorskip("ray")

    def cfg(name, **kw):
        return PersonalConfig(data=str(tiny_dataset), out=str(tmp_path / name), model="mlp", ks=(9,), base_epochs=20,
                              folds=2, steps=5, lr_grid=(1e-3, 1e-2), arms=["ft:no_finetune", "ft:baseline",
                                                                             "ft:symmetric_k4"],
                              cache=str(tmp_path / "cache"), **kw)

    run_personal(cfg("local"), progress=False, sequential=True, log=lambda *_: None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_personal(cfg("ray", ray="local"), progress=False, log=lambda *_: None)
    finally:
        ray.shutdown()

    def key(rows):
        return {(r["arm"], r["person"], r["budget"], r["lr"]): (r["final_test_error"], r["selected"]) for r in rows}

    local, remote = key(read_finetunes(tmp_path / "local")), key(read_finetunes(tmp_path / "ray"))
    assert len(local) == 6 * (1 + 2 * 2) and remote == local


def test_an_arm_at_the_grids_bottom_lr_is_flagged_switched_off():
    from gazeneg.study.personal_report import edge_choices

    lrs = {"ft:baseline": {"3e-05": 1, "0.001": 5}, "ft:original_l1_B2": {"3e-05": 5, "0.001": 1},
           "ft:naive_l1.5": {"0.01": 4, "0.001": 1}}
    e = edge_choices(lrs, [3e-5, 1e-3, 1e-2])
    assert e == {"ft:original_l1_B2": "bottom", "ft:naive_l1.5": "top"}


def test_the_margin_is_half_the_measured_calibration_gain():
    from gazeneg.study.personal import BASELINES, personal_arms
    from gazeneg.study.personal_report import margin_from_gain

    arms = {a.name: a for a in personal_arms()}
    rows = []
    for u in range(4):
        for arm, err in (("ft:no_finetune", 1.10 + 0.01 * u), (BASELINES["ft"], 1.00 + 0.01 * u)):
            rows.append({"arm": arm, "person": f"s{u}", "budget": 9, "final_test_error": err, "diverged": False,
                         "collapsed": False})
    margin, gain = margin_from_gain(rows, arms, 0.0)
    assert gain == pytest.approx(0.10) and margin == pytest.approx(0.05)
    margin, gain = margin_from_gain([r for r in rows if r["arm"] != "ft:no_finetune"], arms, 0.0)
    assert gain != gain and margin == 0.05   # nan: no control to measure it with


def test_the_tuned_arm_chooses_lambda_b_and_lr_on_validation_only():
    from gazeneg.study.personal import personal_arms
    from gazeneg.study.personal_report import TUNED, with_tuned_arm

    arms = {a.name: a for a in personal_arms()}
    rows = []
    for arm, lr, val, test in (("ft:original_l0.5_B2", 1e-3, 0.9, 0.5), ("ft:original_l1_B3", 1e-4, 0.7, 2.0),
                               ("ft:original_l1_B3", 1e-3, 0.8, 0.1), ("ft:baseline", 1e-3, 0.1, 0.1)):
        rows.append({"arm": arm, "person": "s1", "budget": 9, "lr": lr, "val_error": val, "final_test_error": test,
                     "selected": False, "val_outcome": "ok", "diverged": False, "collapsed": False})
    out, arms2 = with_tuned_arm(rows, arms)
    tuned = [r for r in out if r["arm"] == TUNED]
    assert len(tuned) == 1 and tuned[0]["tuned_from"] == "ft:original_l1_B3" and tuned[0]["lr"] == 1e-4
    assert tuned[0]["final_test_error"] == 2.0          # chosen by validation, whatever its test error
    assert TUNED in arms2 and arms2[TUNED].family == "ft"


def test_a_unit_with_too_few_cells_is_named():
    """Issue 24 item 7: the message says which held-out unit has too few cells."""
    from gazeneg.data.dataset import DatasetError

    targets = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(DatasetError, match=r"held-out unit me/s2 has photos of 2 cells"):
        split_unit(targets, np.arange(3), 0, 1, "me/s2")
