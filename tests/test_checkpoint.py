"""gazeneg/model/checkpoint.py: a checkpoint loads back as the same model, as data only (weights_only); a
changed bit, non-finite weights, absurd outputs, another model or another shape are each one CheckpointError
naming the file."""

import pickle

import numpy as np
import pytest
import torch

from gazeneg.data.dataset import FACE_FEATURES, IMAGE_H, IMAGE_W
from gazeneg.model.checkpoint import (
    CheckpointError,
    init_state,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    weights_digest,
)
from gazeneg.model.networks import create_model, predict


def _last_bias(state: dict) -> str:
    return [k for k, v in state.items() if k.endswith("bias") and tuple(v.shape) == (2,)][-1]


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("mlp").eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, model_name="mlp", model_kwargs={}, config={"lr": 0.1, "bad": float("nan")},
                    epoch=3, extra={"best_err": float("inf"), "history": [1.0]})
    return path, model


def test_a_checkpoint_loads_back_as_the_same_model(saved):
    path, model = saved
    loaded, ckpt = load_checkpoint(path)
    strips = np.random.default_rng(0).integers(0, 255, (4, IMAGE_H, IMAGE_W, 3), dtype=np.uint8)
    feats = np.zeros((4, FACE_FEATURES), np.float32)
    assert np.array_equal(predict(model, strips, feats), predict(loaded, strips, feats))
    assert ckpt["epoch"] == 3 and ckpt["model_name"] == "mlp" and not loaded.training
    assert ckpt["config"]["bad"] == "nan" and ckpt["extra"]["best_err"] == "inf"   # plain data for weights_only
    assert ckpt["weights_sha256"] == weights_digest(ckpt["state_dict"])


def test_a_changed_weight_is_found_by_the_digest(saved):
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    k = _last_bias(payload["state_dict"])
    payload["state_dict"][k][0] += 1e-3            # one weight moved after the digest was taken
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not match the digest") as e:
        read_checkpoint(path)
    assert str(e.value).startswith(str(path))


def test_non_finite_weights_are_never_saved(tmp_path):
    model = create_model("mlp")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match="refusing to save non-finite weights"):
        save_checkpoint(tmp_path / "x.pt", model, model_name="mlp", model_kwargs={}, config={}, epoch=0)
    assert not (tmp_path / "x.pt").exists()


def test_absurd_outputs_are_refused(tmp_path):
    model = create_model("mlp")
    with torch.no_grad():
        model.state_dict()[_last_bias(model.state_dict())].fill_(1e6)   # finite, digest fine, predictions absurd
    save_checkpoint(tmp_path / "far.pt", model, model_name="mlp", model_kwargs={}, config={}, epoch=0)
    with pytest.raises(CheckpointError, match="absurd"):
        load_checkpoint(tmp_path / "far.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_foreign_and_malicious_files_are_refused(tmp_path, capsys):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="cannot be read as a gazeneg checkpoint"):
        read_checkpoint(tmp_path / "text.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format_version": 1, "state_dict": Evil()}, f)
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(tmp_path / "evil.pt")
    assert "pwned" not in capsys.readouterr().out          # loaded as data: the pickle's call never ran
    torch.save({"format_version": 99, "state_dict": {}}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer than this gazeneg"):
        read_checkpoint(tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "none.pt")


def test_init_state_checks_the_architecture(saved):
    path, model = saved
    state = init_state(path, "mlp", {})
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="holds a 'mlp' model, not 'gazecnn'"):
        init_state(path, "gazecnn", {})
    with pytest.raises(CheckpointError, match="hyperparameters differ"):
        init_state(path, "mlp", {"use_face": False})


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


def _ckpt(tmp_path, **changes):
    import torch

    from gazeneg.model.checkpoint import save_checkpoint
    from gazeneg.model.networks import create_model

    p = tmp_path / "c.pt"
    save_checkpoint(p, create_model("mlp"), model_name="mlp", model_kwargs={}, config={}, epoch=0)
    d = torch.load(p, weights_only=True)
    for k, v in changes.items():
        if v is None:
            del d[k]
        else:
            d[k] = v
    torch.save(d, p)
    return p


@pytest.mark.parametrize("changes, culprit", [
    ({"format_version": "1"}, "format_version must be an integer"),
    ({"state_dict": [1, 2]}, "'state_dict' must be a dict"),
    ({"model_name": None}, "no 'model_name'"),
    ({"model_kwargs": None}, "no 'model_kwargs'"),
    ({"model_name": "resnet18"}, "do not fit"),
])
def test_bad_checkpoints_get_one_clear_error(tmp_path, changes, culprit):
    from gazeneg.model.checkpoint import CheckpointError, load_checkpoint

    with pytest.raises(CheckpointError, match=culprit) as e:
        load_checkpoint(_ckpt(tmp_path, **changes))
    assert "c.pt" in str(e.value)


def test_non_finite_checkpoints_are_refused_at_load(tmp_path):
    import torch

    from gazeneg.model.checkpoint import CheckpointError, read_checkpoint
    from gazeneg.model.networks import create_model

    state = create_model("mlp").state_dict()
    k = next(k for k, v in state.items() if v.is_floating_point())
    state[k] = torch.full_like(state[k], float("nan"))
    with pytest.raises(CheckpointError, match="non-finite"):
        read_checkpoint(_ckpt(tmp_path, state_dict=state))
