"""Fine-tuning from a checkpoint (--init) and the personal regime (gazeneg/personal.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from gazeneg import train
from gazeneg.checkpoint import CheckpointError, init_state, load_checkpoint
from gazeneg.config import TrainConfig
from gazeneg.data import load_dataset
from gazeneg.models import create_model, predict
from gazeneg.splits import load_splits

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cfg(data, tmp_path, **kw):
    base = dict(data=str(data), model="mlp", epochs=1, out=str(tmp_path / "runs"), progress=False, val_subjects=1,
                test_subjects=1, threads=1, device="cpu", augment=False, flip=False)
    return TrainConfig(**{**base, **kw})


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
    script = _script("train")
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
