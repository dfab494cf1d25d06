"""Training: one flat loop (`train_one_epoch`, `evaluate`) used by scripts/train.py and by the
wrong-label sweep. `run(cfg)` owns a run folder; `fit(cfg, splits)` is the in-memory core.

Wrong labels with a negative learning rate (SCIENCE.md section 1) live inside `train_one_epoch`:
  combined  loss = 1/2|f - y|^2 - lambda * sum_k N(f, w_k), one optimizer step
  literal   the usual step on true labels, then a separate optimizer (its own state) steps on
            sum_k N(f, w_k) with learning rate -lambda * lr, on the same photos or on other photos
where N is 1/2|f - w|^2, or the bounded repulsion, and the guards mask which (sample, w) pairs count.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed, grid
from .augment import DeviceAugment, augment_epoch
from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, from_dict
from .data import DatasetError, GazeDataset, atomic_write_text, load_dataset, normalize_images
from .guards import (
    GuardCounter,
    Watchdog,
    direction_mask,
    error_bound_mask,
    negative_objective,
    weights_finite,
)
from .losses import complement_nll, negated_ce
from .models import GazeModel, RidgeBaseline, create_model, eye_patch_features
from .wrong_labels import WrongLabelGenerator, wrong_cells

# Memory format of the model's weights. Activations are channels_last already: normalize_images permutes
# the NHWC uint8 batch without copying, so oneDNN (CPU) and cuDNN pick NHWC kernels from the input; moving
# the weights to channels_last as well measured no faster on CPU (benchmarks/train_throughput.py).
MEMORY_FORMAT = torch.contiguous_format

METRICS_FIELDS = ["epoch", "lr", "lambda", "train_loss", "val_mean_error_cells", "samples_per_second",
                  "seconds", "guard_counts", "event", "val_logit_absmax"]


# ----------------------------------------------------------------------------------------------
# Data


@dataclass
class Splits:
    train: GazeDataset
    val: GazeDataset
    test: GazeDataset
    groups: dict = field(default_factory=dict)  # split name -> list of held-out group names


def resolve_data_path(data: str) -> Path:
    """"synthetic" is the built-in default set (rendered once, then cached); "synthetic:F" the same
    subjects with F frames per cell; anything else is a dataset folder."""
    if data == "synthetic" or data.startswith("synthetic:"):
        from .synth import ensure_default_dataset

        frames = data.partition(":")[2]
        if frames and not frames.isdigit():
            raise DatasetError(f"data {data!r}: expected 'synthetic' or 'synthetic:F' with F frames per cell")
        return Path(ensure_default_dataset(**({"frames_per_cell": int(frames)} if frames else {})))
    return Path(data)


def split_by_subject(ds: GazeDataset, n_val: int, n_test: int, seed: int, fold: int = 0) -> Splits:
    """Hold out whole subjects (or, for a single person, whole sessions), never single frames.

    `seed` orders the groups; `fold` rotates along that order by n_test, so folds 0, 1, 2, ... test
    disjoint groups until every group has been tested once (then they wrap around): a sweep with
    fold = seed measures each arm on many people, not on one fixed trio."""
    groups = ds.subjects
    uniq = sorted(set(groups.tolist()))
    kind = "subjects"
    if len(uniq) < n_val + n_test + 1:
        groups = np.char.add(np.char.add(ds.subjects.astype(str), "/"), ds.sessions.astype(str))
        uniq = sorted(set(groups.tolist()))
        kind = "subject/session groups"
    if len(uniq) < n_val + n_test + 1:
        raise DatasetError(
            f"{ds.root}: {len(uniq)} {kind} ({', '.join(uniq)}) but the split needs {n_val} for validation, "
            f"{n_test} for test and at least 1 for training. Capture more sessions (scripts/capture.py "
            f"--session NAME) or lower --val-subjects/--test-subjects.")
    order = np.random.default_rng([seed, 31337]).permutation(len(uniq))
    names = [uniq[i] for i in np.roll(order, -fold * n_test)]
    test_g, val_g, train_g = names[:n_test], names[n_test:n_test + n_val], names[n_test + n_val:]
    idx = {k: np.flatnonzero(np.isin(groups, g)) for k, g in (("train", train_g), ("val", val_g), ("test", test_g))}
    # The splits must not share a group, and together they cover the dataset.
    assert not (set(train_g) & set(val_g) or set(train_g) & set(test_g) or set(val_g) & set(test_g))
    assert sum(len(v) for v in idx.values()) == len(ds)
    return Splits(ds.subset(idx["train"]), ds.subset(idx["val"]), ds.subset(idx["test"]),
                  {"train": train_g, "val": val_g, "test": test_g})


def apply_budget(ds: GazeDataset, budget: int) -> GazeDataset:
    """Keep the first `budget` frames of every (subject, cell): the "too little data" setting."""
    if budget <= 0:
        return ds
    cells = grid.nearest_cell(ds.targets[:, 0], ds.targets[:, 1])
    seen: dict = {}
    keep = []
    for i, key in enumerate(zip(ds.subjects.tolist(), np.atleast_1d(cells).tolist(), strict=True)):
        if seen.get(key, 0) < budget:
            seen[key] = seen.get(key, 0) + 1
            keep.append(i)
    return ds.subset(np.array(keep))


def load_splits(cfg: TrainConfig) -> Splits:
    ds = load_dataset(resolve_data_path(cfg.data))
    sp = split_by_subject(ds, cfg.val_subjects, cfg.test_subjects, cfg.split_seed, cfg.split_fold)
    sp.train = apply_budget(sp.train, cfg.budget)
    return sp


# ----------------------------------------------------------------------------------------------
# Optimisation helpers


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


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for an epoch, a pure function of the epoch so that resume needs no state."""
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
    if cfg.schedule == "step":
        return cfg.lr * (0.1 ** (epoch // max(1, int(cfg.epochs * 0.6))))
    return cfg.lr


def lambda_at(cfg: TrainConfig, epoch: int, base: float) -> float:
    if cfg.neg_mode == "off" and cfg.cls_neg_weight == 0:
        return 0.0
    if epoch < cfg.neg_warmup_epochs:
        return 0.0
    if cfg.neg_lambda_schedule == "linear":
        ramp = max(1, (cfg.epochs - cfg.neg_warmup_epochs) // 2)
        return base * min(1.0, (epoch - cfg.neg_warmup_epochs + 1) / ramp)
    return base


def _set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


# ----------------------------------------------------------------------------------------------
# The loop


@dataclass
class TrainState:
    """Everything a resumed run needs beyond the weights and optimizer states."""

    epoch: int = 0
    lam: float = 0.0
    best_err: float = math.inf
    best_epoch: int = -1
    diverged: bool = False
    stop_reason: str = ""
    history: list = field(default_factory=list)
    guards: GuardCounter = field(default_factory=GuardCounter)
    step: int = 0


def _regression_loss(f, y):
    return 0.5 * ((f - y) ** 2).sum(-1)


def _true_label_loss(cfg, f, y):
    """Per-sample loss on the true point. "mse" is 1/2|f - y|^2 (the form SCIENCE.md analyses);
    "huber" is quadratic within 1 cell and linear beyond, on the Euclidean error, so rare lapses
    (a person looking elsewhere) do not dominate the fit."""
    if cfg.loss == "mse":
        return _regression_loss(f, y)
    e = torch.sqrt(((f - y) ** 2).sum(-1) + 1e-12)
    return torch.where(e < 1.0, 0.5 * e ** 2, e - 0.5)


def _negative_term(cfg, gen, model, f, y, idx, step, counter: GuardCounter):
    """Masked negative objective (scalar, summed over K, mean over the batch) for predictions f."""
    w, valid = gen(y, idx, step=step, f=f.detach())
    mask = valid.clone()
    counter.seen += mask.numel()
    counter.add("boundary_drop", (~valid).sum().item())
    fd = f.detach()
    if cfg.guard_bound > 0:
        ok = error_bound_mask(fd, y, cfg.guard_bound, cfg.guard_bound_norm)[:, None].expand_as(mask)
        counter.add("error_bound", (mask & ~ok).sum().item())
        mask &= ok
    if cfg.guard_direction:
        ok = direction_mask(fd, w, y)
        counter.add("direction", (mask & ~ok).sum().item())
        mask &= ok
    margin = cfg.neg_margin or cfg.neg_distance
    obj = negative_objective(f, w, cfg.neg_loss, margin)
    return (obj * mask).sum() / f.shape[0]


def _cap_grads(params, cap: float, counter: GuardCounter) -> None:
    norm = torch.nn.utils.clip_grad_norm_(params, cap)
    if norm > cap:
        counter.add("grad_cap", 1)


def _batch(data, idx, device, aug=None):
    x_u8, face, y = data
    idx = idx.to(x_u8.device)  # data may already live on the device (fit moves it once per epoch)
    # index_select on a 2-D view: ~8x faster than x_u8[idx] for uint8 rows on a CPU.
    xb = torch.index_select(x_u8.reshape(len(x_u8), -1), 0, idx).reshape(-1, *x_u8.shape[1:])
    if aug is not None:  # augment_backend "torch": augmented and normalised where the batch trains
        xb, yb, fb = aug(xb.to(device, non_blocking=True), y[idx].to(device, non_blocking=True),
                         face[idx].to(device, non_blocking=True))
        return xb, fb, yb
    return (normalize_images(xb).to(device, non_blocking=True),
            face[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True))


def _backward(loss, scale: float) -> None:
    # scale is this rank's share of the global batch times the world size (1.0 in one process): DDP
    # averages gradients over ranks, so the mean over an unevenly split global batch needs it.
    (loss if scale == 1.0 else loss * scale).backward()


def _classification_loss(cfg, model, out, y, idx, step, lam, counter, n_train):
    """Cross-entropy on the true cell (plus an optional L2 term on the expected point), and the
    known-wrong-cell term: complement_nll (-log(1 - p_l)) or the naive negated_ce (+log p_l)."""
    true_cells = torch.as_tensor(grid.nearest_cell(y[:, 0].cpu().numpy(), y[:, 1].cpu().numpy()),
                                 device=out.device).reshape(-1)
    loss = out.new_zeros(())
    if not cfg.cls_complement_only:
        loss = F.cross_entropy(out.float(), true_cells)
        if cfg.ce_reg_weight > 0:
            loss = loss + cfg.ce_reg_weight * _regression_loss(model.points(out), y).mean()
    weight = 1.0 if cfg.cls_complement_only else lam
    if weight > 0:
        wrong = wrong_cells(true_cells, distance=cfg.neg_distance, k=cfg.neg_k, policy="random" if
                            cfg.neg_policy in ("one_sided", "prediction_side") else cfg.neg_policy,
                            uniform=cfg.cls_neg_uniform or cfg.cls_complement_only, idx=idx, step=step,
                            n_samples=n_train, seed=cfg.seed)
        fn = complement_nll if cfg.cls_neg_loss == "complement" else negated_ce
        per = fn(out.float(), wrong, reduction="none")
        mask = torch.ones_like(per, dtype=torch.bool)
        counter.seen += mask.numel()
        if cfg.cls_neg_confidence > 0 and not cfg.cls_complement_only:
            p_true = torch.softmax(out.detach().float(), 1).gather(1, true_cells[:, None])[:, 0]
            ok = p_true > cfg.cls_neg_confidence
            counter.add("confidence", (~ok).sum().item())
            mask &= ok
        loss = loss + weight * (per * mask).sum() / per.shape[0]
    return loss


def train_one_epoch(cfg: TrainConfig, model: GazeModel, opt, neg_opt, data, state: TrainState,
                    gen, device, *, lr: float, lam: float, epoch: int, bar=None, ema=None,
                    aug=None) -> tuple[float, bool]:
    """One pass over the training set. Returns (mean loss, non-finite seen). Under torchrun each rank
    takes its shard of every global batch (see distributed.py); the returned loss is the global mean."""
    model.train()
    di = distributed.info()
    x_u8, face, y = data
    n = len(y)
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g)
    other = torch.randperm(n, generator=g)  # literal mode on other photos
    bs = cfg.batch_size
    total, count = 0.0, 0
    use_amp = cfg.amp and device.type == "cuda"
    neg_on = cfg.neg_mode != "off" and lam > 0 and cfg.head == "regression"
    # A trailing batch of one sample joins the one before it: BatchNorm cannot train on a single sample.
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        gidx = order[start:start + bs] if i < len(starts) - 1 else order[start:]
        idx = distributed.shard(gidx, di)
        scale = len(idx) * di.world_size / len(gidx)
        xb, fb, yb = _batch(data, idx, device, aug)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(xb, fb)
        if cfg.head == "classification":
            loss = _classification_loss(cfg, model, out, yb, idx, state.step, lam, state.guards, n)
            opt.zero_grad(set_to_none=True)
            _backward(loss, scale)
        else:
            f = model.points(out).float()
            pos = _true_label_loss(cfg, f, yb).mean()
            if neg_on and cfg.neg_mode == "combined":
                neg = _negative_term(cfg, gen, model, f, yb, idx, state.step, state.guards)
                loss = pos - lam * neg
                opt.zero_grad(set_to_none=True)
                if cfg.guard_grad_cap > 0:
                    params = [p for p in model.parameters() if p.requires_grad]
                    gneg = torch.autograd.grad(-lam * neg, params, retain_graph=True, allow_unused=True)
                    gneg = [torch.zeros_like(p) if gi is None else gi for p, gi in zip(params, gneg, strict=True)]
                    gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(gi) for gi in gneg]))
                    if gnorm > cfg.guard_grad_cap:
                        state.guards.add("grad_cap", 1)
                        gneg = [gi * (cfg.guard_grad_cap / gnorm) for gi in gneg]
                    pos.backward()
                    for p, gi in zip(params, gneg, strict=True):
                        p.grad = gi if p.grad is None else p.grad + gi
                else:
                    _backward(loss, scale)
            else:
                loss = pos
                opt.zero_grad(set_to_none=True)
                _backward(loss, scale)
        lv = distributed.global_mean(loss.item(), len(idx), len(gidx), device, di)
        if not math.isfinite(lv):
            return float("nan"), True
        opt.step()
        if neg_on and cfg.neg_mode == "literal":
            nidx = distributed.shard(other[start:start + len(gidx)], di) if cfg.neg_other_photos else idx
            if cfg.neg_other_photos:
                xb, fb, yb = _batch(data, nidx, device, aug)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                f2 = model.points(model(xb, fb)).float()
            neg = _negative_term(cfg, gen, model, f2, yb, nidx, state.step, state.guards)
            neg_opt.zero_grad(set_to_none=True)
            _backward(neg, scale)
            if not math.isfinite(distributed.global_mean(neg.item(), len(nidx), len(gidx), device, di)):
                return float("nan"), True
            if cfg.guard_grad_cap > 0:
                _cap_grads([p for p in model.parameters() if p.grad is not None], cfg.guard_grad_cap, state.guards)
            _set_lr(neg_opt, -lam * lr)  # the literal negative learning rate
            neg_opt.step()
        if ema is not None:
            ema.update_parameters(model)
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


def error_metrics(pred: np.ndarray, true: np.ndarray, cfg: TrainConfig | None = None, prefix: str = "") -> dict:
    """Mean/median Euclidean error in cells, cell accuracy (nearest predicted cell is the labelled
    cell), within-1 accuracy (predicted cell within one cell, diagonals included), signed errors per
    axis, and cm/degrees when the screen geometry is given."""
    finite = np.isfinite(pred).all(axis=1)
    err = np.where(finite, np.linalg.norm(np.nan_to_num(pred - true, nan=0, posinf=0, neginf=0), axis=1), np.inf)
    pc = grid.nearest_cell(np.nan_to_num(pred[:, 0]), np.nan_to_num(pred[:, 1]))
    tc = grid.nearest_cell(true[:, 0], true[:, 1])
    pr, pcc = grid.index_to_cell(np.atleast_1d(pc))
    tr, tcc = grid.index_to_cell(np.atleast_1d(tc))
    cheb = np.maximum(np.abs(pr - tr), np.abs(pcc - tcc))
    m = {
        f"{prefix}mean_error_cells": float(np.mean(err)),
        f"{prefix}median_error_cells": float(np.median(err)),
        f"{prefix}cell_accuracy": float(np.mean((cheb == 0) & finite)),
        f"{prefix}within1_accuracy": float(np.mean((cheb <= 1) & finite)),
        f"{prefix}mean_signed_error_row": float(np.mean(pred[:, 0] - true[:, 0])),
        f"{prefix}mean_signed_error_col": float(np.mean(pred[:, 1] - true[:, 1])),
        f"{prefix}n": int(len(true)),
    }
    if cfg is not None and cfg.screen_w_cm > 0 and cfg.screen_h_cm > 0:
        d = pred - true
        m[f"{prefix}mean_error_cm"] = float(np.mean(grid.error_cm(d[:, 0], d[:, 1], cfg.screen_w_cm, cfg.screen_h_cm)))
        if cfg.distance_cm > 0:
            m[f"{prefix}mean_error_degrees"] = float(np.mean(grid.error_degrees(
                pred[:, 0], pred[:, 1], true[:, 0], true[:, 1], cfg.screen_w_cm, cfg.screen_h_cm, cfg.distance_cm)))
    return m


def centre_guess_error(targets: np.ndarray) -> float:
    """Mean error of always answering the screen centre: the know-nothing reference."""
    return float(np.linalg.norm(targets - np.array(grid.CENTRE), axis=1).mean())


def _tensors(ds: GazeDataset):
    return (torch.from_numpy(np.ascontiguousarray(ds.images)), torch.from_numpy(ds.face.astype(np.float32)),
            torch.from_numpy(ds.targets.astype(np.float32)))


def _torch_augment(cfg: TrainConfig, device) -> bool:
    return cfg.augment_backend == "torch" or (cfg.augment_backend == "auto" and device.type == "cuda")


def _to_device(data, device):
    """(uint8 images, face, targets) onto the device in one copy per epoch, not one per batch; images stay
    uint8 (a quarter of float32's bytes) and are normalised there per batch. A no-op on CPU."""
    return tuple(t.to(device, non_blocking=True) for t in data)


def _check_distributed(cfg: TrainConfig, n_train: int, di: distributed.DistInfo) -> None:
    if not di.enabled:
        return
    w, bs = di.world_size, cfg.batch_size
    if bs < w or 0 < n_train % bs < w:
        raise ConfigError(f"batch_size {bs} over {w} processes: every global batch, the last one too ({n_train} "
                          f"training samples % {bs} = {n_train % bs}), needs at least one sample per process; "
                          f"change batch_size")
    if cfg.neg_mode == "combined" and cfg.guard_grad_cap > 0:
        raise ConfigError("guard_grad_cap with neg_mode combined takes gradients with autograd.grad, which "
                          "DistributedDataParallel does not average; run it in one process")


@dataclass
class FitResult:
    model: GazeModel
    state: TrainState
    watchdog_events: list
    train_seconds: float
    samples_seen: int
    final_state: dict | None = None  # weights at the end of training (the model holds the best ones)


def build_generator(cfg: TrainConfig, n_train: int) -> WrongLabelGenerator | None:
    if cfg.neg_mode == "off":
        return None
    return WrongLabelGenerator(distance=cfg.neg_distance, k=cfg.neg_k, policy=cfg.neg_policy,
                               boundary=cfg.neg_boundary, direction=cfg.neg_direction, n_samples=n_train,
                               seed=cfg.seed)


def fit(cfg: TrainConfig, splits: Splits, *, run_dir: Path | None = None, resume_ckpt: dict | None = None,
        log=print) -> FitResult:
    """Train on splits.train, select on splits.val. Writes metrics.csv and checkpoints into run_dir
    when given. Deterministic for a given config (per-epoch seeds, so a resumed run matches)."""
    di, device = distributed.setup(pick_device(cfg.device))
    _check_distributed(cfg, len(splits.train), di)
    write = run_dir is not None and di.is_main
    log = log if di.is_main else _silent
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, head=cfg.head, **cfg.model_kwargs).to(device, memory_format=MEMORY_FORMAT)
    model = distributed.convert_batchnorm(model, device, di)
    fwd = torch.compile(model) if cfg.compile else model
    train_fwd = fwd  # under torchrun: DDP (then compiled, the order DDP's graph breaks expect)
    if di.enabled:
        train_fwd = distributed.wrap(model, device, di)
        train_fwd = torch.compile(train_fwd) if cfg.compile else train_fwd
    opt = make_optimizer(cfg, model.parameters())
    neg_opt = make_optimizer(cfg, model.parameters(), negative=True)
    optimizers = [opt, neg_opt]
    state = TrainState(lam=cfg.neg_lambda if cfg.head == "regression" else cfg.cls_neg_weight)
    watchdog = Watchdog(pct=cfg.watchdog_pct, patience=cfg.watchdog_patience, action=cfg.watchdog_action) \
        if cfg.watchdog else None
    if resume_ckpt is not None:
        model.load_state_dict(resume_ckpt["extra"].get("train_state_dict") or resume_ckpt["state_dict"])
        opt.load_state_dict(resume_ckpt["optimizer"])
        ex = resume_ckpt["extra"]
        neg_opt.load_state_dict(ex["neg_optimizer"])
        state = TrainState(epoch=resume_ckpt["epoch"] + 1, lam=ex["lam"], best_err=float(ex["best_err"]),
                           best_epoch=ex["best_epoch"], history=ex["history"], step=ex["step"])
        state.guards.fired.update(ex["guard_fired"])
        state.guards.seen = ex["guard_seen"]
    # Weight EMA (timm's ModelEmaV2 idea, torch's AveragedModel): validation, best.pt and the test
    # figures use the averaged weights, which removes most of the epoch-to-epoch jitter of a small
    # validation set. Checkpoints hold the averaged weights as "state_dict" (what a user loads) and the
    # raw training weights in extra["train_state_dict"] (what --resume continues from).
    ema = _make_ema(model, cfg.ema) if cfg.ema > 0 else None
    if ema is not None and resume_ckpt is not None:
        ema.load_state_dict(resume_ckpt["extra"]["ema"])
    eval_model = ema.module if ema is not None else fwd
    best_state = {k: v.detach().clone() for k, v in _eval_weights(model, ema).state_dict().items()}
    if run_dir is not None and (run_dir / "best.pt").exists() and resume_ckpt is not None:
        best_state = read_checkpoint(run_dir / "best.pt")["state_dict"]
    gen = build_generator(cfg, len(splits.train))
    val_targets = splits.val.targets.astype(np.float64)
    val_data = _to_device(_tensors(splits.val), device)
    data = _to_device(_tensors(splits.train), device)
    aug_src = (splits.train.images, splits.train.targets, splits.train.face)
    collapse_err = centre_guess_error(val_targets)
    if watchdog is not None:
        watchdog.snapshot(model, optimizers)
    t0 = time.perf_counter()
    seen = 0
    bar = tqdm(total=(cfg.epochs - state.epoch) * len(splits.train), unit="img",
               disable=not cfg.progress or not di.is_main,
               desc=cfg.name or "train", leave=False, dynamic_ncols=True)
    for epoch in range(state.epoch, cfg.epochs):
        state.epoch = epoch
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        lr = lr_at(cfg, epoch)
        _set_lr(opt, lr)
        lam = lambda_at(cfg, epoch, state.lam)
        aug = None
        if (cfg.augment or cfg.flip) and _torch_augment(cfg, device):   # per batch, on the device
            aug = DeviceAugment(cfg.seed * 1_000_003 + epoch + 7919 * di.rank, device, photometric=cfg.augment,
                                flip=cfg.flip)
        elif cfg.augment or cfg.flip:                                   # once per epoch, albumentations
            imgs, tg, fc = augment_epoch(*aug_src, seed=cfg.seed * 1_000_003 + epoch, photometric=cfg.augment,
                                         flip=cfg.flip)
            data = _to_device((torch.from_numpy(np.ascontiguousarray(imgs)), torch.from_numpy(fc),
                               torch.from_numpy(tg)), device)
        te = time.perf_counter()
        loss, nonfinite = train_one_epoch(cfg, train_fwd, opt, neg_opt, data, state, gen, device, lr=lr, lam=lam,
                                          epoch=epoch, bar=bar, ema=ema, aug=aug)
        distributed.sync_buffers(model, di)
        seen += len(splits.train)
        nonfinite = nonfinite or not weights_finite(model)
        val_pred = evaluate(eval_model, val_data, device) if not nonfinite else None
        val_err = error_metrics(val_pred, val_targets)["mean_error_cells"] if val_pred is not None else math.inf
        nonfinite = nonfinite or not math.isfinite(val_err)
        event = ""
        if watchdog is not None:
            reason = watchdog.should_trigger(val_err, nonfinite, runaway=grid.DIAGONAL)
            if reason:
                state.lam = watchdog.restore(model, optimizers, epoch=epoch, reason=reason, lam=state.lam)
                event = f"watchdog: {reason}; restored best weights, lambda -> {state.lam:g}"
                if ema is not None:
                    ema = _make_ema(model, cfg.ema)
                    eval_model = ema.module
                val_pred = evaluate(eval_model, val_data, device)
                val_err = error_metrics(val_pred, val_targets)["mean_error_cells"]
                nonfinite = False
            else:
                watchdog.observe(val_err, model, optimizers)
        elif nonfinite:
            state.diverged = True
            state.stop_reason = f"non-finite loss or weights in epoch {epoch}"
            event = "diverged: " + state.stop_reason
        dt = time.perf_counter() - te
        if cfg.head == "classification":
            row_extra = {"val_logit_absmax": logit_absmax(eval_model, val_data, device) if not nonfinite
                         else math.inf}
        else:
            row_extra = {}
        row = {"epoch": epoch, "lr": lr, "lambda": lam, "train_loss": loss, "val_mean_error_cells": val_err,
               "samples_per_second": len(splits.train) / dt, "seconds": time.perf_counter() - t0,
               "guard_counts": json.dumps(state.guards.as_dict()), "event": event, **row_extra}
        state.history.append(row)
        if math.isfinite(val_err) and val_err < state.best_err:
            state.best_err, state.best_epoch = val_err, epoch
            best_state = {k: v.detach().clone() for k, v in _eval_weights(model, ema).state_dict().items()}
            if write and cfg.save_checkpoints:
                _save(run_dir / "best.pt", model, cfg, epoch, opt, neg_opt, state, log, ema)
        if write:
            _append_metrics(run_dir / "metrics.csv", row)
            if cfg.save_checkpoints:
                _save(run_dir / "last.pt", model, cfg, epoch, opt, neg_opt, state, log, ema)
        if cfg.progress:
            bar.set_postfix(ep=epoch, loss=f"{loss:.3g}", val=f"{val_err:.3f}", lam=f"{lam:g}")
        if event and cfg.progress and di.is_main:
            tqdm.write(f"[{cfg.name or 'train'}] epoch {epoch}: {event}")
        if state.diverged:
            break
    bar.close()
    train_seconds = time.perf_counter() - t0
    final_err = state.history[-1]["val_mean_error_cells"] if state.history else math.inf
    if not state.diverged and final_err > collapse_err:
        state.stop_reason = (f"collapsed: final validation error {final_err:.2f} cells is worse than always "
                             f"guessing the screen centre ({collapse_err:.2f})")
    final_state = {k: v.detach().clone() for k, v in _eval_weights(model, ema).state_dict().items()}
    model.load_state_dict(best_state)
    return FitResult(model, state, watchdog.events if watchdog else [], train_seconds, seen, final_state)


def _silent(*args, **kwargs) -> None:
    pass


def _make_ema(model, decay: float):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _eval_weights(model, ema):
    return ema.module if ema is not None else model


def _save(path, model, cfg, epoch, opt, neg_opt, state: TrainState, log, ema=None) -> None:
    extra = {}
    if ema is not None:
        extra = {"train_state_dict": model.state_dict(), "ema": ema.state_dict()}
    try:
        save_checkpoint(path, _eval_weights(model, ema), model_name=cfg.model, model_kwargs={"head": cfg.head, **cfg.model_kwargs},
                        config=cfg.to_dict(), epoch=epoch, optimizer=opt,
                        extra={"neg_optimizer": neg_opt.state_dict(), "lam": state.lam, "best_err": state.best_err,
                               "best_epoch": state.best_epoch, "history": state.history, "step": state.step,
                               "guard_fired": dict(state.guards.fired), "guard_seen": state.guards.seen, **extra})
    except CheckpointError as e:
        log(f"checkpoint not written: {e}")


def _append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRICS_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------------------------
# A whole run with its folder


def new_run_dir(out: str, name: str) -> Path:
    """A fresh folder under out; never reuses an existing one."""
    base = Path(out)
    base.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("%Y%m%d-%H%M%S") + (f"-{name}" if name else "")
    for i in range(1000):
        p = base / (stem if i == 0 else f"{stem}-{i}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {base}")


def ridge_baseline(splits: Splits) -> tuple[float, np.ndarray]:
    xs = {k: eye_patch_features(getattr(splits, k).images, getattr(splits, k).face) for k in ("train", "val", "test")}
    rb = RidgeBaseline().fit(xs["train"], splits.train.targets, xs["val"], splits.val.targets)
    pred = rb.predict(xs["test"])
    return float(np.linalg.norm(pred - splits.test.targets, axis=1).mean()), pred


def run(cfg: TrainConfig, *, resume: str | None = None, argv: list | None = None, log=print) -> Path:
    """Train, evaluate on held-out subjects, compare with the ridge baseline, write the run folder.
    Under torchrun every rank trains; rank 0 creates and writes the run folder and evaluates."""
    di, device = distributed.setup(pick_device(cfg.device))
    log = log if di.is_main else _silent
    resume_ckpt = None
    if resume:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise FileNotFoundError(f"{run_dir}: not a run folder (no config.json)")
        cfg = from_dict(json.loads((run_dir / "config.json").read_text()))
        if (run_dir / "last.pt").is_file():
            resume_ckpt = read_checkpoint(run_dir / "last.pt")
            # metrics.csv gets the resumed epochs appended; drop rows past the checkpoint.
            if di.is_main:
                _truncate_metrics(run_dir / "metrics.csv", resume_ckpt["epoch"])
        log(f"resuming {run_dir} from epoch {resume_ckpt['epoch'] + 1 if resume_ckpt else 0}")
    elif di.is_main:
        run_dir = new_run_dir(cfg.out, cfg.name or cfg.model)
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        atomic_write_text(run_dir / "argv.json", json.dumps(argv if argv is not None else sys.argv))
    else:
        run_dir = None
    run_dir = distributed.broadcast_object(run_dir, di)
    splits = load_splits(cfg)
    log(f"data: {len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test images; "
        f"held-out val {splits.groups['val']}, test {splits.groups['test']}")
    res = fit(cfg, splits, run_dir=run_dir, resume_ckpt=resume_ckpt, log=log)
    if not di.is_main:
        distributed.barrier(di)  # returns once rank 0 has written metrics.json
        return run_dir
    test_pred = evaluate(res.model, _tensors(splits.test), device)
    metrics = error_metrics(test_pred, splits.test.targets.astype(np.float64), cfg, prefix="test_")
    ridge_err, _ = ridge_baseline(splits)
    metrics.update({
        "ridge_mean_error_cells": ridge_err,
        "centre_guess_error_cells": centre_guess_error(splits.test.targets.astype(np.float64)),
        "train_seconds": res.train_seconds,
        "samples_per_second": res.samples_seen / max(res.train_seconds, 1e-9),
        "best_epoch": res.state.best_epoch,
        "best_val_mean_error_cells": res.state.best_err,
        "diverged": res.state.diverged,
        "stop_reason": res.state.stop_reason,
        "watchdog_events": res.watchdog_events,
        **res.state.guards.as_dict(),
        "model": cfg.model,
        "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
        "split_groups": splits.groups,
    })
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    _write_predictions(run_dir / "predictions.csv", splits.test, test_pred)
    distributed.barrier(di)
    return run_dir


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= last_epoch]
    lines = [",".join(METRICS_FIELDS)]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRICS_FIELDS)
    w.writeheader()
    w.writerows(rows)
    del lines
    atomic_write_text(path, buf.getvalue())


def _write_predictions(path: Path, ds: GazeDataset, pred: np.ndarray) -> None:
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "subject", "session", "true_row", "true_col", "pred_row", "pred_col", "error_cells"])
    for p, s, se, t, q in zip(ds.paths, ds.subjects, ds.sessions, ds.targets, pred, strict=True):
        w.writerow([p, s, se, f"{t[0]:.4f}", f"{t[1]:.4f}", f"{q[0]:.4f}", f"{q[1]:.4f}",
                    f"{float(np.linalg.norm(q - t)):.4f}"])
    atomic_write_text(path, buf.getvalue())


def summary_lines(run_dir: Path) -> list[str]:
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    lines = [
        f"held-out test subjects {m['split_groups']['test']} ({m['n_test']} images):",
        f"  mean error {m['test_mean_error_cells']:.3f} cells, median {m['test_median_error_cells']:.3f}, "
        f"cell accuracy {m['test_cell_accuracy']:.1%}, within one cell {m['test_within1_accuracy']:.1%}",
        f"  ridge baseline (WebGazer-style) {m['ridge_mean_error_cells']:.3f} cells; centre guess "
        f"{m['centre_guess_error_cells']:.3f} cells",
        f"  trained {m['train_seconds']:.1f} s at {m['samples_per_second']:.0f} samples/s",
    ]
    if "test_mean_error_cm" in m:
        lines.append(f"  {m['test_mean_error_cm']:.2f} cm" + (f", {m['test_mean_error_degrees']:.2f} degrees"
                                                             if "test_mean_error_degrees" in m else ""))
    return lines
