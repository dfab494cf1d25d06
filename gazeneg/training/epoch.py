"""One epoch of full training and the held-out evaluation: the training set's batches on the device
(augmented there, or precomputed features), train_one_epoch (one step.train_step per batch, sharded
across processes under torchrun) and evaluate."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch

from gazeneg import seeding
from gazeneg.data.dataset import GazeDataset, normalize_images
from gazeneg.model.networks import GazeModel
from gazeneg.training import distributed
from gazeneg.training.state import TrainState
from gazeneg.training.step import Recipe, scaled_backward, train_step
from gazeneg.wronglabels.objective import WrongLabelObjective


def _batch(data, idx, device, aug=None):
    x_u8, face, y = data
    idx = idx.to(x_u8.device)  # data may already live on the device (fit moves it once per epoch)
    # index_select on a 2-D view: ~8x faster than x_u8[idx] for uint8 rows on a CPU.
    xb = torch.index_select(x_u8.reshape(len(x_u8), -1), 0, idx).reshape(-1, *x_u8.shape[1:])
    if x_u8.dtype != torch.uint8:   # backbone features computed once (fit, fixed backbone): nothing to normalise
        return (xb.to(device, non_blocking=True), face[idx].to(device, non_blocking=True),
                y[idx].to(device, non_blocking=True))
    if aug is not None:  # augment_backend "torch": augmented and normalised where the batch trains
        xb, yb, fb = aug(xb.to(device, non_blocking=True), y[idx].to(device, non_blocking=True),
                         face[idx].to(device, non_blocking=True))
        return xb, fb, yb
    return (normalize_images(xb).to(device, non_blocking=True),
            face[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True))


def _other_batch(data, gidx, device, aug, di):
    """neg_other_photos: the literal negative step's batch, this rank's shard of other photos."""
    nidx = distributed.shard(gidx, di)
    return (*_batch(data, nidx, device, aug), nidx)


def train_one_epoch(recipe: Recipe, model: GazeModel, opt, neg_opt, data, state: TrainState,
                    objective: WrongLabelObjective, device, *, lr: float, lam: float, epoch: int, bar=None,
                    ema=None, aug=None, weights=None) -> tuple[float, bool]:
    """One pass over the training set, one step.train_step per batch. Returns (mean loss, non-finite seen).
    Under torchrun each rank takes its shard of every global batch (see distributed.py); the returned loss
    is the global mean. `recipe` is the true-label side (loss, head, batch size, amp); everything about
    wrong labels comes from `objective`. ema: the weight EMA (an AveragedModel) of `weights` (default: model;
    fit trains a wrapper of the weights: a networks.Head on features, or DDP), updated after every step."""
    model.train()
    di = distributed.info()
    n = len(data[2])
    order = torch.randperm(n, generator=seeding.torch_generator(recipe.seed, "order", epoch))
    other = torch.randperm(n, generator=seeding.torch_generator(recipe.seed, "other", epoch))
    bs = recipe.batch_size
    total, count = 0.0, 0
    # A trailing batch of one sample joins the one before it: BatchNorm cannot train on a single sample.
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        gidx = order[start:start + bs] if i < len(starts) - 1 else order[start:]
        idx = distributed.shard(gidx, di)
        lv = train_step(recipe, model, opt, neg_opt, objective, _batch(data, idx, device, aug), idx,
                        step=state.step, lam=lam, lr=lr,
                        backward=scaled_backward(len(idx) * di.world_size / len(gidx)),
                        mean=partial(distributed.global_mean, n_global=len(gidx), device=device, di=di),
                        other=partial(_other_batch, data, other[start:start + len(gidx)], device, aug, di))
        if not math.isfinite(lv):
            return float("nan"), True
        if ema is not None:
            ema.update_parameters(model if weights is None else weights)
        total += lv * len(gidx)
        count += len(gidx)
        state.step += 1
        if bar is not None:
            bar.update(len(gidx))
    return total / max(count, 1), False


@torch.no_grad()
def evaluate(model: GazeModel, data, device, batch_size: int = 1024) -> np.ndarray:
    """(N, 2) predicted (row, col) for a held-out set, as float64 numpy."""
    model.eval()
    x_u8, face, _ = data
    out = []
    for s in range(0, len(x_u8), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(x_u8)))
        xb, fb, _ = _batch(data, idx, device)
        out.append(model.points(model(xb, fb)).float().cpu())
    return torch.cat(out).double().numpy()


@torch.no_grad()
def logit_absmax(model: GazeModel, data, device) -> float:
    """Mean over held-out images of the largest |logit|: runs off to infinity under negated_ce."""
    model.eval()
    xb, fb, _ = _batch(data, torch.arange(min(len(data[0]), 512)), device)
    return float(model(xb, fb).float().abs().amax(dim=1).mean())


def tensors(ds: GazeDataset):
    return (torch.from_numpy(np.ascontiguousarray(ds.images)), torch.from_numpy(ds.face.astype(np.float32)),
            torch.from_numpy(ds.targets.astype(np.float32)))


def to_device(data, device):
    """(uint8 images, face, targets) onto the device in one copy per epoch, not one per batch; images stay
    uint8 (a quarter of float32's bytes) and are normalised there per batch. A no-op on CPU."""
    return tuple(t.to(device, non_blocking=True) for t in data)
