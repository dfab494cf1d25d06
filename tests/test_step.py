"""step.train_step, the one per-batch step of full training and fine-tuning, and optim.lr_at."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from gazeneg import grid
from gazeneg.config import from_dict
from gazeneg.data.dataset import FACE_FEATURES, normalize_images
from gazeneg.model.networks import Head, create_model, features
from gazeneg.training.optim import lr_at, make_optimizer
from gazeneg.training.step import Recipe, train_step
from gazeneg.wronglabels.objective import WrongLabelObjective


def _batch(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 32, 96, 3), dtype=torch.uint8, generator=g)
    face = torch.randn(n, FACE_FEATURES, generator=g)
    y = torch.stack([torch.rand(n, generator=g) * grid.ROW_MAX, torch.rand(n, generator=g) * grid.COL_MAX], 1)
    return x, face, y


def _setup(cfg, model):
    obj = WrongLabelObjective.from_config(cfg, n_train=24)
    opt = make_optimizer(cfg, list(model.parameters()))
    neg = obj.pick_neg_optimizer(opt, lambda: make_optimizer(cfg, list(model.parameters()), negative=True))
    return obj, opt, neg


@pytest.mark.parametrize("kw", [
    dict(loss="mse", neg_mode="literal", neg_lambda=0.5, neg_policy="random"),
    dict(loss="huber", neg_mode="combined", neg_lambda=0.3, neg_policy="symmetric", neg_k=4, guard_grad_cap=0.5),
    dict(head="classification", cls_neg_weight=1.0, ce_reg_weight=0.1),
])
def test_a_step_on_features_computed_once_is_the_step_on_images(kw):
    """The pixel MLP's backbone is a fixed function: a step of networks.Head on its features (how fit trains
    it, and how fine-tuning trains a head) moves the weights exactly as the step of the model on images."""
    cfg = from_dict({"model": "mlp", "lr": 1e-2, **kw})
    torch.manual_seed(3)
    m = create_model("mlp", head=cfg.head).train()
    m2, start = copy.deepcopy(m), copy.deepcopy(m.state_dict())
    x, face, y = _batch()
    idx = torch.arange(len(y))
    recipe = Recipe.from_config(cfg)
    obj, opt, neg = _setup(cfg, m)
    lam = obj.lambda_at(0)
    assert lam > 0
    a = train_step(recipe, m, opt, neg, obj, (normalize_images(x), face, y), idx, step=0, lam=lam, lr=cfg.lr)
    head = Head(m2, "backbone")
    obj2, opt2, neg2 = _setup(cfg, head)
    b = train_step(recipe, head, opt2, neg2, obj2, (features(m2, x, face, "backbone"), face, y), idx, step=0,
                   lam=lam, lr=cfg.lr)
    assert math.isfinite(a) and a == pytest.approx(b, rel=1e-6)
    assert obj.counter.steps == obj2.counter.steps == 1
    for (k, v), v2 in zip(m.state_dict().items(), m2.state_dict().values(), strict=True):
        torch.testing.assert_close(v, v2, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(m.state_dict()["fc.3.weight"], start["fc.3.weight"])   # the step did move them


def test_a_non_finite_loss_is_never_stepped_on():
    cfg = from_dict({"model": "mlp", "loss": "mse", "neg_mode": "literal", "neg_lambda": 0.5})
    m = create_model("mlp").train()
    x, face, y = _batch()
    y[3, 0] = float("nan")
    obj, opt, neg = _setup(cfg, m)
    before = copy.deepcopy(m.state_dict())
    out = train_step(Recipe.from_config(cfg), m, opt, neg, obj, (normalize_images(x), face, y), torch.arange(24),
                     step=0, lam=0.5, lr=cfg.lr)
    assert math.isnan(out)
    for k, v in m.state_dict().items():
        if v.is_floating_point() and "running" not in k:
            assert torch.equal(v, before[k]), k
    assert obj.counter.steps == 0   # the literal negative step never ran


def test_lr_at_runs_the_schedule_over_epochs_or_fine_tuning_steps():
    cfg = from_dict({"lr": 1e-2, "epochs": 10, "schedule": "cosine"})
    assert lr_at(cfg, 0) == 1e-2 and lr_at(cfg, 5) == pytest.approx(5e-3)
    # fine-tuning: the same cosine over its steps, not over cfg.epochs
    steps = 40
    got = [lr_at(cfg, s, steps) for s in range(steps)]
    np.testing.assert_allclose(got, [1e-2 * 0.5 * (1 + math.cos(math.pi * s / steps)) for s in range(steps)])
    assert got[20] == pytest.approx(5e-3) and got == sorted(got, reverse=True)
    flat = from_dict({"lr": 1e-2, "schedule": "none"})
    assert {lr_at(flat, s, steps) for s in range(steps)} == {1e-2}
    stepped = from_dict({"lr": 1e-2, "epochs": 10, "schedule": "step"})
    assert [lr_at(stepped, e) for e in (0, 5, 6)] == pytest.approx([1e-2, 1e-2, 1e-3])


def test_the_recipe_reads_each_of_its_fields_from_the_config_field_of_that_name():
    """Recipe copies no option by hand: every field is the TrainConfig field of the same name, with its default."""
    import dataclasses

    from gazeneg.config import TrainConfig

    cfg = from_dict(dict(batch_size=7, seed=3, loss="mse", head="classification", ce_reg_weight=0.2, amp=False))
    recipe = Recipe.from_config(cfg)
    for f in dataclasses.fields(Recipe):
        assert getattr(recipe, f.name) == getattr(cfg, f.name) != getattr(TrainConfig(), f.name), f.name
    assert Recipe() == Recipe.from_config(TrainConfig())
