"""Training: one flat loop (`fit`, `train_one_epoch`, `evaluate`) used by scripts/train.py, by the
wrong-label sweep and by the personal regime. `run(cfg)` owns a run folder; `fit(cfg, splits)` is the
in-memory core. The wrong-label method (its extra loss or negative step, guards, lambda schedule and
watchdog) comes from one object, objective.WrongLabelObjective; splits, metrics and the run folder's
files have their own modules (splits.py, metrics.py, runfiles.py).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gazeneg import grid, seeding
from gazeneg.config import ConfigError, TrainConfig
from gazeneg.data.augment import DeviceAugment, augment_epoch, realism_enabled
from gazeneg.data.dataset import GazeDataset, normalize_images
from gazeneg.data.splits import Splits, data_warnings, describe, load_splits
from gazeneg.files import atomic_write_text
from gazeneg.model.checkpoint import CheckpointError, init_state, read_checkpoint, save_checkpoint
from gazeneg.model.losses import point_loss
from gazeneg.model.metrics import DIVERGED, centre_guess_error, error_metrics, outcome
from gazeneg.model.networks import GazeModel, OnFeatures, RidgeBaseline, create_model, eye_patch_features
from gazeneg.training import distributed
from gazeneg.training.runfiles import (
    append_metrics,
    check_resume,
    lock_run,
    new_run_dir,
    read_run_config,
    truncate_metrics,
    write_predictions,
)
from gazeneg.wronglabels.guards import GuardCounter, weights_finite
from gazeneg.wronglabels.objective import WrongLabelObjective, true_cells_of

# Memory format of the model's weights. Activations are channels_last already: normalize_images permutes
# the NHWC uint8 batch without copying, so oneDNN (CPU) and cuDNN pick NHWC kernels from the input; moving
# the weights to channels_last as well measured no faster on CPU (benchmarks/train_throughput.py).
MEMORY_FORMAT = torch.contiguous_format


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


def _scaled_backward(scale: float):
    # scale is this rank's share of the global batch times the world size (1.0 in one process): DDP
    # averages gradients over ranks, so the mean over an unevenly split global batch needs it.
    def backward(loss):
        (loss if scale == 1.0 else loss * scale).backward()
    return backward


@dataclass(frozen=True)
class Recipe:
    """The true-label side of a training step: all train_one_epoch reads besides the wrong-label objective."""

    batch_size: int = 64
    seed: int = 0
    loss: str = "huber"          # losses.point_loss kind
    head: str = "regression"     # or "classification"
    ce_reg_weight: float = 0.0   # classification: weight of an MSE term on the expected point
    amp: bool = True             # bf16 autocast, on CUDA only

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Recipe:
        return cls(batch_size=cfg.batch_size, seed=cfg.seed, loss=cfg.loss, head=cfg.head,
                   ce_reg_weight=cfg.ce_reg_weight, amp=cfg.amp)


def train_one_epoch(recipe: Recipe, model: GazeModel, opt, neg_opt, data, state: TrainState,
                    objective: WrongLabelObjective, device, *, lr: float, lam: float, epoch: int, bar=None,
                    ema=None, aug=None) -> tuple[float, bool]:
    """One pass over the training set. Returns (mean loss, non-finite seen). Under torchrun each rank
    takes its shard of every global batch (see distributed.py); the returned loss is the global mean.
    `recipe` is the true-label side (loss, head, batch size, amp); everything about wrong labels comes
    from `objective`."""
    model.train()
    di = distributed.info()
    x_u8, face, y = data
    n = len(y)
    order = torch.randperm(n, generator=seeding.torch_generator(recipe.seed, "order", epoch))
    other = torch.randperm(n, generator=seeding.torch_generator(recipe.seed, "other", epoch))
    bs = recipe.batch_size
    total, count = 0.0, 0
    use_amp = recipe.amp and device.type == "cuda"
    regression_neg = objective.regression_active(lam)

    def forward_points(xb, fb):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            return model.points(model(xb, fb)).float()

    # A trailing batch of one sample joins the one before it: BatchNorm cannot train on a single sample.
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        gidx = order[start:start + bs] if i < len(starts) - 1 else order[start:]
        idx = distributed.shard(gidx, di)
        backward = _scaled_backward(len(idx) * di.world_size / len(gidx))
        xb, fb, yb = _batch(data, idx, device, aug)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(xb, fb)
        opt.zero_grad(set_to_none=True)
        if recipe.head == "classification":
            out = out.float()
            true_cells = true_cells_of(yb)
            loss = out.new_zeros(())
            if not objective.cls_only:
                loss = F.cross_entropy(out, true_cells)
                if recipe.ce_reg_weight > 0:
                    loss = loss + recipe.ce_reg_weight * point_loss(model.points(out), yb, "mse").mean()
            term = objective.classification_term(out, true_cells, idx, state.step, lam)
            loss = loss if term is None else loss + term
            backward(loss)
        else:
            f = model.points(out).float()
            pos = point_loss(f, yb, recipe.loss).mean()
            if regression_neg and objective.mode == "combined":
                params = [p for p in model.parameters() if p.requires_grad]
                loss = objective.backward_combined(pos, f, yb, idx, state.step, lam, params, backward)
            else:
                loss = pos
                backward(loss)
        lv = distributed.global_mean(loss.item(), len(idx), len(gidx), device, di)
        if not math.isfinite(lv):
            return float("nan"), True
        opt.step()
        if regression_neg and objective.mode == "literal":
            nidx = idx
            if objective.other_photos:
                nidx = distributed.shard(other[start:start + len(gidx)], di)
                xb, fb, yb = _batch(data, nidx, device, aug)
            neg = objective.literal_step(model, neg_opt, xb, fb, yb, nidx, state.step, lam, lr, backward,
                                         forward_points)
            if not math.isfinite(distributed.global_mean(neg, len(nidx), len(gidx), device, di)):
                return float("nan"), True
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


def tensors(ds: GazeDataset):
    return (torch.from_numpy(np.ascontiguousarray(ds.images)), torch.from_numpy(ds.face.astype(np.float32)),
            torch.from_numpy(ds.targets.astype(np.float32)))


@torch.no_grad()
def backbone_features(model: GazeModel, data, device, batch_size: int = 1024):
    """(uint8 images, face, targets) -> (backbone features, face, targets) for a model whose backbone is a
    fixed function (GazeModel.fixed_backbone): computed once, then every epoch trains the layers after it
    on these (OnFeatures), the same numbers as recomputing them per batch at a fraction of the cost."""
    x_u8, face, y = data
    feats = [model.backbone(normalize_images(x_u8[s:s + batch_size]).to(device, memory_format=MEMORY_FORMAT))
             for s in range(0, len(x_u8), batch_size)]
    h = torch.cat(feats) if feats else torch.zeros(0, device=device)
    return h.contiguous(), face.to(device), y.to(device)


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
    why = WrongLabelObjective.from_config(cfg, n_train).check_distributed()
    if why:
        raise ConfigError(why)


@dataclass
class FitResult:
    model: GazeModel                 # holds the best-on-validation weights
    state: TrainState
    watchdog_events: list
    train_seconds: float
    samples_seen: int
    final_state: dict | None = None  # the weights the run reports as its final model: the end of training,
                                     # or, for a watchdog run that ended worse than its best, the best weights
    outcome: str = "ok"              # metrics.outcome of the final model on validation
    final_val_error: float = math.nan  # validation error (cells) of the final model


def _state_copy(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit(cfg: TrainConfig, splits: Splits, *, run_dir: Path | None = None, resume_ckpt: dict | None = None,
        log=print, init_state: dict | None = None) -> FitResult:
    """Train on splits.train, select on splits.val. Writes metrics.csv and checkpoints into run_dir
    when given. Deterministic for a given config (per-epoch seeds, so a resumed run matches).
    init_state: weights to start from (fine-tuning) instead of a fresh initialisation."""
    di, device = distributed.setup(pick_device(cfg.device))
    objective = WrongLabelObjective.from_config(cfg, len(splits.train))
    recipe = Recipe.from_config(cfg)
    _check_distributed(cfg, len(splits.train), di)
    write = run_dir is not None and di.is_main
    log = log if di.is_main else _silent
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(seeding.seed_int(cfg.seed, "init"))
    model = create_model(cfg.model, head=cfg.head, **cfg.model_kwargs)
    if getattr(model, "closed_form", False):   # the landmark model: ridge regression, no SGD
        return _fit_closed_form(cfg, model, splits, run_dir if write else None)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device, memory_format=MEMORY_FORMAT)
    model = distributed.convert_batchnorm(model, device, di)
    fwd = torch.compile(model) if cfg.compile else model
    train_fwd = fwd  # under torchrun: DDP (then compiled, the order DDP's graph breaks expect)
    if di.enabled:
        train_fwd = distributed.wrap(model, device, di)
        train_fwd = torch.compile(train_fwd) if cfg.compile else train_fwd
    opt = make_optimizer(cfg, param_groups(model, cfg.backbone_lr_scale))
    # the literal negative step's optimizer: a second one (its own moments), or the training one itself
    neg_opt = objective.pick_neg_optimizer(opt, lambda: make_optimizer(cfg, model.parameters(), negative=True))
    state = TrainState(lam=objective.lam, guards=objective.counter)
    val_targets = splits.val.targets.astype(np.float64)
    centre_err = centre_guess_error(val_targets)
    watchdog = objective.make_watchdog(centre_err)
    if resume_ckpt is not None:
        try:
            ex = resume_ckpt["extra"]
            model.load_state_dict(ex.get("train_state_dict") or resume_ckpt["state_dict"])
            opt.load_state_dict(resume_ckpt["optimizer"])
            neg_opt.load_state_dict(ex["neg_optimizer"])
            state = TrainState(epoch=resume_ckpt["epoch"] + 1, lam=ex["lam"], best_err=float(ex["best_err"]),
                               best_epoch=ex["best_epoch"], history=ex["history"], step=ex["step"],
                               guards=objective.counter)
            # checkpoints from before the counter kept its steps hold only "guard_fired" and "guard_seen"
            objective.counter.load(ex.get("guards") or {"fired": ex.get("guard_fired", {}),
                                                        "seen": ex.get("guard_seen", 0)})
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"the run's last.pt does not fit its config or lacks training state "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                                  "start a new run") from None
    objective.lam = state.lam
    # Weight EMA (timm's ModelEmaV2 idea, torch's AveragedModel): validation, best.pt and the test
    # figures use the averaged weights, which removes most of the epoch-to-epoch jitter of a small
    # validation set. Checkpoints hold the averaged weights as "state_dict" (what a user loads) and the
    # raw training weights in extra["train_state_dict"] (what --resume continues from).
    ema = _make_ema(model, cfg.ema) if cfg.ema > 0 else None
    if ema is not None and resume_ckpt is not None:
        ema.load_state_dict(resume_ckpt["extra"]["ema"])
    # A fixed backbone (the sweep's pixel MLP) with nothing augmenting the images: its features are computed
    # once and every step trains only the layers after it (most of a sweep run's time otherwise).
    on_features = (model.fixed_backbone and not (cfg.augment or cfg.flip) and not di.enabled and not cfg.compile)
    if on_features:
        train_fwd = OnFeatures(model)

    def eval_fwd(m):
        return OnFeatures(m) if on_features else m

    eval_model = eval_fwd(ema.module if ema is not None else fwd)
    best_state = _state_copy(_eval_weights(model, ema))
    if run_dir is not None and (run_dir / "best.pt").exists() and resume_ckpt is not None:
        best_state = read_checkpoint(run_dir / "best.pt")["state_dict"]
    val_data = _to_device(tensors(splits.val), device)
    data = _to_device(tensors(splits.train), device)
    if on_features:
        val_data = backbone_features(model, val_data, device)
        data = backbone_features(model, data, device)
    aug_src = (splits.train.images, splits.train.targets, splits.train.face)
    # The webcam look (data.realism) goes with --augment; "auto" turns it on for synthetic data.
    look = cfg.augment and realism_enabled(cfg.realism, str(splits.train.meta.get("source", "")))
    if watchdog is not None:
        # The first snapshot carries the starting weights' own validation error: an epoch that runs away
        # from a good start must not become the state every restore goes back to (guards.Watchdog).
        init_err = error_metrics(evaluate(eval_model, val_data, device), val_targets)["mean_error_cells"]
        watchdog.snapshot(model, init_err)
        if resume_ckpt is None and math.isfinite(init_err) and init_err <= centre_err:
            state.best_err = init_err
    t0 = time.perf_counter()
    seen = 0
    bar = tqdm(total=(cfg.epochs - state.epoch) * len(splits.train), unit="img",
               disable=not cfg.progress or not di.is_main,
               desc=cfg.name or "train", leave=False, dynamic_ncols=True)
    for epoch in range(state.epoch, cfg.epochs):
        state.epoch = epoch
        torch.manual_seed(seeding.seed_int(cfg.seed, "torch", epoch))
        lr = lr_at(cfg, epoch)
        set_lr(opt, lr)
        lam = objective.lambda_at(epoch)
        aug = None
        if (cfg.augment or cfg.flip) and _torch_augment(cfg, device):   # per batch, on the device
            aug = DeviceAugment(seeding.seed_int(cfg.seed, "device_augment", epoch, di.rank), device,
                                photometric=cfg.augment, flip=cfg.flip)
            if look:  # the webcam look has no torch version: once per epoch on the CPU, then the jitter per batch
                imgs, _, _ = augment_epoch(*aug_src, seed=seeding.seed_int(cfg.seed, "augment", epoch),
                                           photometric=False, flip=False, realism=True)
                data = _to_device((torch.from_numpy(imgs), *data[1:]), device)
        elif cfg.augment or cfg.flip:                                   # once per epoch, albumentations
            imgs, tg, fc = augment_epoch(*aug_src, seed=seeding.seed_int(cfg.seed, "augment", epoch),
                                         photometric=cfg.augment, flip=cfg.flip, realism=look)
            data = _to_device((torch.from_numpy(np.ascontiguousarray(imgs)), torch.from_numpy(fc),
                               torch.from_numpy(tg)), device)
        te = time.perf_counter()
        loss, nonfinite = train_one_epoch(recipe, train_fwd, opt, neg_opt, data, state, objective, device, lr=lr,
                                          lam=lam, epoch=epoch, bar=bar, ema=ema, aug=aug)
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
                state.lam = objective.lam = watchdog.restore(model, [opt, neg_opt], epoch=epoch, reason=reason,
                                                             lam=objective.lam)
                event = f"watchdog: {reason}; restored best weights (fresh optimizer state), lambda -> {state.lam:g}"
                if ema is not None:
                    ema = _make_ema(model, cfg.ema)
                    eval_model = eval_fwd(ema.module)
                val_pred = evaluate(eval_model, val_data, device)
                val_err = error_metrics(val_pred, val_targets)["mean_error_cells"]
                nonfinite = False
            else:
                watchdog.observe(val_err, model)
        elif nonfinite:
            state.diverged = True
            state.stop_reason = f"non-finite loss or weights in epoch {epoch}"
            event = "diverged: " + state.stop_reason
        dt = time.perf_counter() - te
        row_extra = {}
        if cfg.head == "classification":
            row_extra["val_logit_absmax"] = logit_absmax(eval_model, val_data, device) if not nonfinite else math.inf
        row = {"epoch": epoch, "lr": lr, "lambda": lam, "train_loss": loss, "val_mean_error_cells": val_err,
               "samples_per_second": len(splits.train) / dt, "seconds": time.perf_counter() - t0,
               "guard_counts": json.dumps(state.guards.as_dict()), "event": event, **row_extra}
        state.history.append(row)
        if math.isfinite(val_err) and val_err < state.best_err and (watchdog is None or val_err <= centre_err):
            state.best_err, state.best_epoch = val_err, epoch
            best_state = _state_copy(_eval_weights(model, ema))
            if write and cfg.save_checkpoints:
                _save(run_dir / "best.pt", model, cfg, epoch, opt, neg_opt, state, log, ema)
        if write:
            append_metrics(run_dir / "metrics.csv", row)
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
    final_state = _state_copy(_eval_weights(model, ema))
    if watchdog is not None and final_err > state.best_err:
        # A watchdog run reports its best-validation weights when training ended worse than them: the
        # guard's promise is that the run is never worse than the best it reached (docs/science.md section 5).
        final_state, final_err = best_state, state.best_err
    result = outcome(final_err, centre_err, nonfinite=state.diverged)
    if result != "ok" and not state.stop_reason:
        state.stop_reason = (f"{result}: final validation error {final_err:.3g} cells"
                             + (f" is worse than always guessing the screen centre ({centre_err:.2f})"
                                if result != DIVERGED else " (off the screen or non-finite)"))
    model.load_state_dict(best_state)
    return FitResult(model, state, watchdog.events if watchdog else [], train_seconds, seen, final_state, result,
                     final_err)


def _silent(*args, **kwargs) -> None:
    pass


def _fit_closed_form(cfg: TrainConfig, model, splits: Splits, run_dir: Path | None) -> FitResult:
    """A model fitted in closed form (networks.LandmarkRidge) on the training rows, its penalty chosen on
    validation: one 'epoch' in metrics.csv, best.pt = last.pt."""
    t0 = time.perf_counter()
    val_err = model.fit_closed_form(splits.train.face, splits.train.targets, splits.val.face, splits.val.targets)
    secs = time.perf_counter() - t0
    state = TrainState(epoch=0, best_err=val_err, best_epoch=0)
    row = {"epoch": 0, "lr": 0.0, "lambda": 0.0, "train_loss": math.nan, "val_mean_error_cells": val_err,
           "samples_per_second": len(splits.train) / max(secs, 1e-9), "seconds": secs,
           "guard_counts": json.dumps(state.guards.as_dict()),
           "event": f"closed-form ridge fit, alpha {float(model.alpha):g}"}
    state.history.append(row)
    if run_dir is not None:
        append_metrics(run_dir / "metrics.csv", row)
        if cfg.save_checkpoints:
            for name in ("best.pt", "last.pt"):
                save_checkpoint(run_dir / name, model, model_name=cfg.model,
                                model_kwargs={"head": cfg.head, **cfg.model_kwargs}, config=cfg.to_dict(), epoch=0)
    result = outcome(val_err, centre_guess_error(splits.val.targets.astype(np.float64)))
    return FitResult(model, state, [], secs, len(splits.train), _state_copy(model), result, val_err)


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
                               "guards": state.guards.state(), **extra})
    except CheckpointError as e:
        log(f"checkpoint not written: {e}")


# ----------------------------------------------------------------------------------------------
# A whole run with its folder


def ridge_baseline(splits: Splits) -> tuple[float, np.ndarray]:
    xs = {k: eye_patch_features(getattr(splits, k).images, getattr(splits, k).face) for k in ("train", "val", "test")}
    rb = RidgeBaseline().fit(xs["train"], splits.train.targets, xs["val"], splits.val.targets)
    pred = rb.predict(xs["test"])
    return float(np.linalg.norm(pred - splits.test.targets, axis=1).mean()), pred


def run(cfg: TrainConfig, *, resume: str | None = None, argv: list | None = None, log=print,
        resume_epochs: int | None = None) -> Path:
    """Train, evaluate on held-out subjects, compare with the ridge baseline, write the run folder.
    Under torchrun every rank trains; rank 0 creates and writes the run folder and evaluates.
    resume_epochs: extend a resumed run to this many epochs (the LR schedule follows the new length).
    One process at a time trains in a run folder (runfiles.lock_run, held until this returns)."""
    held: list = []
    try:
        return _run(cfg, resume=resume, argv=argv, log=log, resume_epochs=resume_epochs, held=held)
    finally:
        for lock in held:
            lock.release()


def _run(cfg: TrainConfig, *, resume: str | None, argv: list | None, log, resume_epochs: int | None,
         held: list) -> Path:
    di, device = distributed.setup(pick_device(cfg.device))
    log = log if di.is_main else _silent
    resume_ckpt = None
    if resume:
        run_dir = Path(resume)
        cfg = read_run_config(run_dir)
        if di.is_main:
            held.append(lock_run(run_dir))
        # Everything is checked before the run folder changes: a refused resume leaves it as it was.
        if (run_dir / "last.pt").is_file():
            resume_ckpt = read_checkpoint(run_dir / "last.pt")
            check_resume(run_dir / "last.pt", resume_ckpt, cfg, resume_epochs)
        elif resume_epochs is not None and resume_epochs < cfg.epochs:
            raise ConfigError(f"--epochs {resume_epochs} would shorten the {cfg.epochs}-epoch run {run_dir}: with "
                              "--resume, --epochs may only extend a run")
        if resume_epochs is not None and resume_epochs != cfg.epochs:
            cfg = cfg.replace(epochs=resume_epochs)
            if di.is_main:
                atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        if di.is_main:
            # metrics.csv gets the resumed epochs appended: drop the rows past the checkpoint (all of them
            # when a kill came before the first last.pt was written), and temp files of killed writes.
            truncate_metrics(run_dir / "metrics.csv", resume_ckpt["epoch"] if resume_ckpt else -1)
            for tmp in run_dir.glob(".*.tmp"):
                tmp.unlink()
        log(f"resuming {run_dir} from epoch {resume_ckpt['epoch'] + 1 if resume_ckpt else 0}")
    else:
        run_dir = None
    # Everything that can be wrong with the data, the model or the starting weights is found before a
    # run folder exists: a failed start leaves nothing behind.
    splits = load_splits(cfg)
    create_model(cfg.model, head=cfg.head, **cfg.model_kwargs)   # an unknown model or hyperparameter raises here
    init = None
    if cfg.init and resume_ckpt is None:   # fine-tuning: the architecture is checked against the config
        init = init_state(cfg.init, cfg.model, {"head": cfg.head, **cfg.model_kwargs})
    if not resume and di.is_main:
        run_dir = new_run_dir(cfg.out, cfg.name or cfg.model)
        held.append(lock_run(run_dir))
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        atomic_write_text(run_dir / "argv.json", json.dumps(argv if argv is not None else sys.argv))
    run_dir = distributed.broadcast_object(run_dir, di)
    log(f"data: {len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test images; "
        f"held-out val {splits.groups['val']}, test {splits.groups['test']} (held out: {describe(splits.kind)})")
    warnings_ = data_warnings(np.concatenate([splits.train.targets, splits.val.targets, splits.test.targets]))
    for w in warnings_:
        log(f"warning: {w}")
    if init is not None:
        log(f"starting from {cfg.init}")
    res = fit(cfg, splits, run_dir=run_dir, resume_ckpt=resume_ckpt, log=log, init_state=init)
    if not di.is_main:
        distributed.barrier(di)  # returns once rank 0 has written metrics.json
        return run_dir
    test_pred = evaluate(res.model, tensors(splits.test), device)
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
        "outcome": res.outcome,
        "stop_reason": res.state.stop_reason,
        "watchdog_events": res.watchdog_events,
        **res.state.guards.as_dict(),
        "model": cfg.model,
        "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
        "split_groups": splits.groups,
        "split_kind": splits.kind,
        "data_warnings": warnings_,
    })
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_predictions(run_dir / "predictions.csv", splits.test, test_pred)
    distributed.barrier(di)
    return run_dir
