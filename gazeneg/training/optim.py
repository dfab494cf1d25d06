"""Optimisation helpers shared by full training (loop.fit) and fine-tuning (study.personal): the device,
the optimizer, the learning-rate schedule and the parameter groups."""

from __future__ import annotations

import math

import torch

from gazeneg.config import TrainConfig
from gazeneg.model.networks import GazeModel


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def make_optimizer(cfg: TrainConfig, params, *, negative: bool = False) -> torch.optim.Optimizer:
    # The negative step's optimizer has no weight decay: at a negative learning rate, decay would
    # become weight growth.
    wd = 0.0 if negative else cfg.weight_decay
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=wd)


def lr_at(cfg: TrainConfig, epoch: int, epochs: int | None = None) -> float:
    """Learning rate at an epoch of cfg.epochs (or at a step of `epochs` steps: fine-tuning counts steps),
    a pure function of the epoch so that resume needs no state."""
    epochs = cfg.epochs if epochs is None else epochs
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if cfg.schedule == "step":
        return cfg.lr * (0.1 ** (epoch // max(1, int(epochs * 0.6))))
    return cfg.lr


def set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def param_groups(model: GazeModel, backbone_lr_scale: float = 1.0):
    """The optimizer's parameters. Fine-tuning may give the backbone (the eye-strip feature extractor) a
    fraction of the LR; 0 freezes it: no gradients, and its BatchNorm running statistics are held too
    (momentum 0), so its output in eval mode stays exactly the checkpoint's."""
    if backbone_lr_scale == 1.0:
        return list(model.parameters())
    backbone = list(model.backbone.parameters())
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if id(p) not in ids]
    if backbone_lr_scale == 0:
        for p in backbone:
            p.requires_grad_(False)
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0
        return rest
    return [{"params": backbone, "lr_scale": backbone_lr_scale}, {"params": rest}]
