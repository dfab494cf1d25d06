import json

import numpy as np
import pytest
import torch

from gazeneg.config import ConfigError, TrainConfig, from_dict
from gazeneg.data.dataset import load_dataset
from gazeneg.data.splits import apply_budget, split_by_subject
from gazeneg.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from gazeneg.model.networks import create_model
from gazeneg.training.loop import run

EPOCHS = 4


def _cfg(tiny_dataset, tmp_path, **kw):
    base = dict(data=str(tiny_dataset), epochs=EPOCHS, out=str(tmp_path / "runs"), progress=False,
                augment=False, model="mlp", val_subjects=1, test_subjects=1)
    base.update(kw)
    return from_dict(base)


def _losses(run_dir):
    import csv
    return [float(r["train_loss"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))]


def test_run_folder_contents(tiny_dataset, tmp_path):
    rd = run(_cfg(tiny_dataset, tmp_path), argv=["x"])
    for f in ("config.json", "argv.json", "metrics.csv", "metrics.json", "predictions.csv", "best.pt", "last.pt"):
        assert (rd / f).is_file(), f
    m = json.loads((rd / "metrics.json").read_text())
    for k in ("test_mean_error_cells", "test_median_error_cells", "test_cell_accuracy", "test_within1_accuracy",
              "ridge_mean_error_cells", "train_seconds", "samples_per_second"):
        assert np.isfinite(m[k]), k
    assert len(_losses(rd)) == EPOCHS
    # Never overwrite: a second run gets its own folder.
    rd2 = run(_cfg(tiny_dataset, tmp_path), argv=["x"])
    assert rd2 != rd


def test_same_seed_same_losses(tiny_dataset, tmp_path):
    a = _losses(run(_cfg(tiny_dataset, tmp_path, augment=True), argv=[]))
    b = _losses(run(_cfg(tiny_dataset, tmp_path, augment=True), argv=[]))
    c = _losses(run(_cfg(tiny_dataset, tmp_path, augment=True, seed=1), argv=[]))
    assert a == b
    assert a != c


def test_resume_matches_uninterrupted(tiny_dataset, tmp_path, monkeypatch):
    cfg = _cfg(tiny_dataset, tmp_path, augment=True, neg_mode="combined", neg_lambda=0.2)
    full = run(cfg, argv=[])
    # Interrupt a second run with Ctrl-C in the middle of epoch 2's bookkeeping.
    import gazeneg.training.loop as T

    real = T.append_metrics

    def interrupt(path, row):
        real(path, row)
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(T, "append_metrics", interrupt)
    cfg2 = cfg.replace(out=str(tmp_path / "runs2"))
    with pytest.raises(KeyboardInterrupt):
        run(cfg2, argv=[])
    monkeypatch.setattr(T, "append_metrics", real)
    (part,) = list((tmp_path / "runs2").iterdir())
    assert not (part / "metrics.json").exists()
    resumed = run(cfg2, resume=str(part), argv=[])
    assert resumed == part
    assert _losses(resumed) == pytest.approx(_losses(full), rel=1e-5)
    a = json.loads((full / "metrics.json").read_text())["test_mean_error_cells"]
    b = json.loads((resumed / "metrics.json").read_text())["test_mean_error_cells"]
    assert a == pytest.approx(b, rel=1e-5)


def test_checkpoint_round_trip_and_refuses_nan(tmp_path):
    m = create_model("mlp")
    save_checkpoint(tmp_path / "a.pt", m, model_name="mlp", model_kwargs={}, config={"lr": 1.0}, epoch=3)
    m2, ck = load_checkpoint(tmp_path / "a.pt")
    assert ck["epoch"] == 3 and ck["model_name"] == "mlp" and ck["config"] == {"lr": 1.0}
    for (k, v), v2 in zip(m.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(v, v2), k
    with torch.no_grad():
        next(m.parameters())[0] = float("nan")
    with pytest.raises(CheckpointError, match="refusing to save non-finite weights"):
        save_checkpoint(tmp_path / "a.pt", m, model_name="mlp", model_kwargs={}, config={}, epoch=4)
    assert read_checkpoint(tmp_path / "a.pt")["epoch"] == 3  # the good one is untouched
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")


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


def test_sweep_sizes_test_groups_to_the_data(tiny_dataset):
    from gazeneg.study.sweep import sweep_test_groups

    assert sweep_test_groups(tiny_dataset, 2) == 1          # 6 subjects: 1 tested, 2 validate, 3 train
    rows = ["path,row,col,subject,session"] + [f"p{i}.png,0,0,s{i:02d},a" for i in range(24)]
    big = tiny_dataset.parent / "labels-only"
    big.mkdir(exist_ok=True)
    (big / "labels.csv").write_text("\n".join(rows) + "\n")
    assert sweep_test_groups(big, 2) == 5                   # the default set's 24 people: 5 per seed


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict({"lrr": 1})
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        from_dict({"epochs": "ten"})
    with pytest.raises(ConfigError, match="'optimizer' must be one of"):
        from_dict({"optimizer": "lbfgs"})
    assert from_dict({"lr": "0.5", "flip": "false"}).lr == 0.5
    assert TrainConfig().replace(epochs=3).epochs == 3


def test_cm_and_degree_errors(tiny_dataset, tmp_path):
    rd = run(_cfg(tiny_dataset, tmp_path, epochs=1, screen_w_cm=48, screen_h_cm=27, distance_cm=60), argv=[])
    m = json.loads((rd / "metrics.json").read_text())
    assert m["test_mean_error_cm"] > 0 and m["test_mean_error_degrees"] > 0


def test_fixed_backbone_features_computed_once_train_the_same_model(tiny_dataset, tmp_path, monkeypatch):
    """The pixel MLP's backbone is a fixed function, so fit computes its features once and trains the layers
    after it on them: the same losses and validation errors as recomputing the features at every step."""
    from gazeneg.model.networks import GazeModel, Head, features

    m = create_model("mlp")
    assert m.fixed_backbone and not create_model("gazecnn").fixed_backbone
    with pytest.raises(ValueError, match="cut must be one of"):
        Head(m, "fc")
    m.eval()
    x = torch.randint(0, 256, (5, 32, 96, 3), dtype=torch.uint8)
    from gazeneg.data.dataset import normalize_images
    xn, face = normalize_images(x), torch.randn(5, m.face_mlp[1].in_features)
    torch.testing.assert_close(Head(m, "backbone")(features(m, x, face, "backbone"), face), m(xn, face))
    # the head holds the model's own layers: training it trains the model
    assert {id(p) for p in Head(m, "backbone").parameters()} == {id(p) for p in m.parameters()}

    def curves(rd):
        import csv
        rows = list(csv.DictReader(open(rd / "metrics.csv")))
        return [(float(r["train_loss"]), float(r["val_mean_error_cells"])) for r in rows]

    kw = dict(loss="mse", neg_mode="literal", neg_lambda=0.3, neg_distance=2.0)
    fast = curves(run(_cfg(tiny_dataset, tmp_path, **kw), argv=[]))
    monkeypatch.setattr(GazeModel, "fixed_backbone", property(lambda self: False))
    slow = curves(run(_cfg(tiny_dataset, tmp_path, **kw), argv=[]))
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
