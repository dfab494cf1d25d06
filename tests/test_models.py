import numpy as np
import pytest
import torch

from gazeneg import grid
from gazeneg.data.dataset import FACE_FEATURES, IMAGE_H, IMAGE_W
from gazeneg.model.networks import MODELS, RidgeBaseline, create_model, eye_patch_features, predict


@pytest.mark.parametrize("name", sorted(n for n in MODELS if n != "landmarks"))   # landmarks: closed form, no SGD
@pytest.mark.parametrize("head", ["regression", "classification"])
def test_every_model_shape_finite_and_gradients(name, head):
    torch.manual_seed(0)
    m = create_model(name, head=head)
    x = torch.randn(3, 3, IMAGE_H, IMAGE_W)
    f = torch.randn(3, FACE_FEATURES) * 0.1
    out = m(x, f)
    assert out.shape == ((3, 2) if head == "regression" else (3, grid.N_CELLS))
    assert torch.isfinite(out).all()
    pts = m.points(out)
    assert pts.shape == (3, 2)
    pts.sum().backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"{name}: parameters without gradient: {missing}"


def test_classification_points_are_softmax_weighted_centres():
    m = create_model("mlp", head="classification")
    logits = torch.full((1, grid.N_CELLS), -1e4)
    logits[0, grid.cell_index(2, 11)] = 0.0
    assert m.points(logits)[0].tolist() == pytest.approx([2.0, 11.0])


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="unknown model 'vgg'; known models: gazecnn, landmarks, mlp, mobilenet_v3_small, resnet18"):
        create_model("vgg")
    with pytest.raises(ValueError, match="bad hyperparameters"):
        create_model("gazecnn", depth=3)


def test_overfit_tiny_batch():
    torch.manual_seed(0)
    m = create_model("gazecnn")
    x = torch.randn(8, 3, IMAGE_H, IMAGE_W)
    f = torch.zeros(8, FACE_FEATURES)
    y = torch.tensor(grid.cell_centres()[[0, 17, 43, 60, 77, 99, 120, 143]], dtype=torch.float32)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = 0.5 * ((m(x, f) - y) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.03 * losses[0]


def test_predict_uint8_and_ridge():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (5, IMAGE_H, IMAGE_W, 3), dtype=np.uint8)
    out = predict(create_model("mlp"), imgs, np.zeros((5, FACE_FEATURES), np.float32))
    assert out.shape == (5, 2) and np.isfinite(out).all()
    feats = eye_patch_features(imgs, np.zeros((5, FACE_FEATURES)))
    assert feats.shape == (5, 120 + FACE_FEATURES)
    # Ridge recovers a linear map of its features.
    x = rng.normal(size=(200, 10))
    y = x @ rng.normal(size=(10, 2)) + 3
    rb = RidgeBaseline(alphas=(1e-6,)).fit(x[:150], y[:150], x[150:], y[150:])
    assert np.abs(rb.predict(x[150:]) - y[150:]).max() < 1e-3
