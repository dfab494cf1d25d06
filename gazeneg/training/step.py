"""One training step, the same for full training (loop.train_one_epoch, minibatches of photos) and for
fine-tuning (study.personal, full batches of features computed once): the true-label loss, the
wrong-label objective's part (its classification term, its combined negative term or its literal
negative step), the backward pass and the optimizer's step. Everything about wrong labels comes from
objective.WrongLabelObjective; `Recipe` is the true-label side."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gazeneg.config import TrainConfig, config_values
from gazeneg.model.losses import point_loss
from gazeneg.wronglabels.objective import WrongLabelObjective, true_cells_of


@dataclass(frozen=True)
class Recipe:
    """The true-label side of a training step: all a step reads besides the wrong-label objective. Each
    field is the TrainConfig field of the same name (its meaning is in TrainConfig's --help), with its
    default, read by name: from_config copies no option by hand."""

    batch_size: int = TrainConfig.batch_size
    seed: int = TrainConfig.seed
    loss: str = TrainConfig.loss
    head: str = TrainConfig.head
    ce_reg_weight: float = TrainConfig.ce_reg_weight
    amp: bool = TrainConfig.amp

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Recipe:
        return cls(**config_values(cls, cfg))


def plain_backward(loss: torch.Tensor) -> None:
    loss.backward()


def scaled_backward(scale: float) -> Callable[[torch.Tensor], None]:
    """loss.backward() of loss x scale. scale is this rank's share of the global batch times the world size
    (1.0 in one process): DDP averages gradients over ranks, so the mean over an unevenly split global
    batch needs it."""
    if scale == 1.0:
        return plain_backward

    def backward(loss):
        (loss * scale).backward()
    return backward


def _same(value: float, n_local: int) -> float:
    return value


def train_step(recipe: Recipe, model, opt, neg_opt, objective: WrongLabelObjective, batch, idx, *, step: int,
               lam: float, lr: float, backward=plain_backward, mean=_same, other=None) -> float:
    """One optimizer step on batch = (inputs, face, targets (B, 2)) of the samples idx (the wrong-label
    generator's keys). model: anything with forward(inputs, face) and points(out): a GazeModel, a
    networks.Head on features computed once, the DDP wrapper.
      classification: cross-entropy (unless complement-only) + ce_reg_weight x MSE on the expected point
                      + the objective's wrong-cell term, one backward
      regression:     the point loss; with neg_mode combined one backward of pos - lambda x N (the
                      objective's gradient cap applied); with neg_mode literal, after the optimizer's step,
                      the objective's negative step at -lambda x lr (on other()'s batch, (inputs, face,
                      targets, idx), when neg_other_photos is set and other is given)
    backward(loss): loss.backward() (scaled_backward under DDP). mean(value, n_local): a value over every
    process (distributed.global_mean; the value itself in one process).
    Returns the loss (its mean over processes); NaN when it or the negative step's value is not finite,
    and then the caller stops (a non-finite loss is never stepped on)."""
    xb, fb, yb = batch
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=recipe.amp and xb.device.type == "cuda"):
        out = model(xb, fb)
    opt.zero_grad(set_to_none=True)
    regression_neg = objective.regression_active(lam)
    if recipe.head == "classification":
        out = out.float()
        true_cells = true_cells_of(yb)
        loss = out.new_zeros(())
        if not objective.cls_complement_only:
            loss = F.cross_entropy(out, true_cells)
            if recipe.ce_reg_weight > 0:
                loss = loss + recipe.ce_reg_weight * point_loss(model.points(out), yb, "mse").mean()
        term = objective.classification_term(out, true_cells, idx, step, lam)
        loss = loss if term is None else loss + term
        backward(loss)
    else:
        f = model.points(out).float()
        pos = point_loss(f, yb, recipe.loss).mean()
        if regression_neg and objective.mode == "combined":
            params = [p for p in model.parameters() if p.requires_grad]
            loss = objective.backward_combined(pos, f, yb, idx, step, lam, params, backward)
        else:
            loss = pos
            backward(loss)
    value = mean(loss.item(), len(idx))
    if not math.isfinite(value):
        return value
    opt.step()
    if regression_neg and objective.mode == "literal":
        nidx = idx
        if objective.neg_other_photos and other is not None:
            xb, fb, yb, nidx = other()
        neg = objective.literal_step(model, neg_opt, xb, fb, yb, nidx, step, lam, lr, backward,
                                     _points_of(model, recipe))
        if not math.isfinite(mean(neg, len(nidx))):
            return math.nan
    return value


def _points_of(model, recipe: Recipe):
    def forward_points(xb, fb):
        with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=recipe.amp and xb.device.type == "cuda"):
            return model.points(model(xb, fb)).float()
    return forward_points
