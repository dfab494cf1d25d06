"""gazeneg/training/loop.py: fit and run end to end on the tiny set: the same seed gives the same losses, a
resumed run matches an uninterrupted one, fixed-backbone features computed once train the same model; and
the sweep sizes its test groups to the data."""

import json

import numpy as np
import pytest
import torch

from gazeneg.config import from_dict
from gazeneg.model.networks import create_model
from gazeneg.training.loop import run
from tests.conftest import train_losses

EPOCHS = 4


def _cfg(tiny_dataset, tmp_path, **kw):
    base = dict(data=str(tiny_dataset), epochs=EPOCHS, out=str(tmp_path / "runs"), progress=False,
                augment=False, model="mlp", val_subjects=1, test_subjects=1)
    base.update(kw)
    return from_dict(base)


def test_same_seed_same_losses(tiny_dataset, tmp_path):
    a = train_losses(run(_cfg(tiny_dataset, tmp_path, augment=True), argv=[]))
    b = train_losses(run(_cfg(tiny_dataset, tmp_path, augment=True), argv=[]))
    c = train_losses(run(_cfg(tiny_dataset, tmp_path, augment=True, seed=1), argv=[]))
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
    assert train_losses(resumed) == pytest.approx(train_losses(full), rel=1e-5)
    a = json.loads((full / "metrics.json").read_text())["test_mean_error_cells"]
    b = json.loads((resumed / "metrics.json").read_text())["test_mean_error_cells"]
    assert a == pytest.approx(b, rel=1e-5)


def test_sweep_sizes_test_groups_to_the_data(tiny_dataset):
    from gazeneg.study.sweep import sweep_test_groups

    assert sweep_test_groups(tiny_dataset, 2) == 1          # 6 subjects: 1 tested, 2 validate, 3 train
    rows = ["path,row,col,subject,session"] + [f"p{i}.png,0,0,s{i:02d},a" for i in range(24)]
    big = tiny_dataset.parent / "labels-only"
    big.mkdir(exist_ok=True)
    (big / "labels.csv").write_text("\n".join(rows) + "\n")
    assert sweep_test_groups(big, 2) == 5                   # the default set's 24 people: 5 per seed


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
