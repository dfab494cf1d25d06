"""Training: one flat loop (`fit`, `train_one_epoch`, `evaluate`) used by scripts/train.py, by the
wrong-label sweep and by the personal regime. `run(cfg)` owns a run folder; `fit(cfg, splits)` is the
in-memory core, in named phases: build (model, optimizers, objective, data), restore (a resumed run's
state, the weight EMA), one `_epoch` per epoch (the epoch's augmentation, train_one_epoch, validation and
the watchdog, metrics and checkpoints) and finish (the final weights and the outcome). The per-batch step
is step.train_step, shared with fine-tuning; the wrong-label method (its extra loss or negative step,
guards, lambda schedule and watchdog) comes from one object, objective.WrongLabelObjective; splits,
metrics, the optimizer and LR schedule, the resumable state and the run folder's files have their own
modules (splits.py, metrics.py, optim.py, state.py, runfiles.py).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gazeneg import grid, seeding
from gazeneg.config import ConfigError, TrainConfig
from gazeneg.data.adapt import CameraMean, adapt_to_camera
from gazeneg.data.augment import DeviceAugment, augment_epoch, realism_enabled
from gazeneg.data.splits import Splits, data_warnings, describe, load_splits
from gazeneg.files import atomic_write_text
from gazeneg.model.checkpoint import init_state, read_checkpoint, save_checkpoint
from gazeneg.model.metrics import DIVERGED, centre_guess_error, error_metrics, outcome
from gazeneg.model.networks import GazeModel, Head, RidgeBaseline, create_model, eye_patch_features, features
from gazeneg.training import distributed
from gazeneg.training.epoch import evaluate, logit_absmax, tensors, to_device, train_one_epoch
from gazeneg.training.optim import lr_at, make_optimizer, param_groups, pick_device, set_lr
from gazeneg.training.runfiles import (
    append_metrics,
    check_resume,
    lock_run,
    new_run_dir,
    read_run_config,
    truncate_metrics,
    write_predictions,
)
from gazeneg.training.state import TrainState, eval_weights, restore, save
from gazeneg.training.step import Recipe
from gazeneg.wronglabels.guards import weights_finite
from gazeneg.wronglabels.objective import WrongLabelObjective

# Memory format of the model's weights. Activations are channels_last already: normalize_images permutes
# the NHWC uint8 batch without copying, so oneDNN (CPU) and cuDNN pick NHWC kernels from the input; moving
# the weights to channels_last as well measured no faster on CPU (benchmarks/train_throughput.py).
MEMORY_FORMAT = torch.contiguous_format


# ----------------------------------------------------------------------------------------------
# fit's helpers


def _on_features(model: GazeModel, data, device):
    """(uint8 images, face, targets) -> (backbone features, face, targets) on the device, for a model whose
    backbone is a fixed function: computed once, then every epoch trains networks.Head(model, "backbone")
    on them, the same numbers as recomputing them per batch at a fraction of the cost."""
    x_u8, face, y = data
    h = features(model, x_u8, face, "backbone", batch_size=1024, device=device, memory_format=MEMORY_FORMAT)
    return h, face.to(device), y.to(device)


def _torch_augment(cfg: TrainConfig, device) -> bool:
    # the camera's mean (data.adapt) matches a whole epoch's photos at once: the albumentations path
    return cfg.augment_backend == "torch" or (cfg.augment_backend == "auto" and device.type == "cuda"
                                              and not cfg.camera_mean)


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


# ----------------------------------------------------------------------------------------------
# fit, in phases


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


@dataclass
class Training:
    """What fit's phases share: set up by _build and _restore, advanced by _epoch, read by _finish."""

    cfg: TrainConfig
    splits: Splits
    di: distributed.DistInfo
    device: torch.device
    run_dir: Path | None
    write: bool                      # this process writes run_dir's files
    log: object
    objective: WrongLabelObjective
    recipe: Recipe
    model: GazeModel                 # the weights (train_fwd and fwd may wrap them)
    fwd: torch.nn.Module             # the model, compiled when cfg.compile
    train_fwd: torch.nn.Module       # what trains: fwd, its DDP wrapper, or a Head on features computed once
    opt: torch.optim.Optimizer
    neg_opt: torch.optim.Optimizer   # the literal negative step's optimizer (opt itself with neg_optimizer same)
    state: TrainState
    watchdog: object
    centre_err: float                # validation error of always guessing the screen centre
    on_features: bool                # a fixed backbone's features computed once (data holds them)
    data: tuple                      # (images or features, face, targets) of the training set, on the device
    val_data: tuple
    look: bool                       # the webcam look (data.realism) on the training photos
    camera: CameraMean | None        # a camera's mean strip the training photos are matched to (data.adapt)
    ema: object = None
    eval_model: torch.nn.Module | None = None   # what validates: the EMA's weights or fwd, on features or not
    best_state: dict | None = None
    seen: int = 0
    t0: float = 0.0

    @property
    def val_targets(self) -> np.ndarray:
        return self.splits.val.targets.astype(np.float64)

    def set_eval_model(self) -> None:
        m = self.ema.module if self.ema is not None else self.fwd
        self.eval_model = Head(m, "backbone") if self.on_features else m

    def val_error(self) -> float:
        return error_metrics(evaluate(self.eval_model, self.val_data, self.device), self.val_targets)[
            "mean_error_cells"]


def fit(cfg: TrainConfig, splits: Splits, *, run_dir: Path | None = None, resume_ckpt: dict | None = None,
        log=print, init_state: dict | None = None) -> FitResult:
    """Train on splits.train, select on splits.val. Writes metrics.csv and checkpoints into run_dir
    when given. Deterministic for a given config (per-epoch seeds, so a resumed run matches).
    init_state: weights to start from (fine-tuning) instead of a fresh initialisation."""
    t = _build(cfg, splits, run_dir, log, init_state)
    if isinstance(t, FitResult):   # a model fitted in closed form
        return t
    _restore(t, resume_ckpt)
    t.t0 = time.perf_counter()
    bar = tqdm(total=(cfg.epochs - t.state.epoch) * len(splits.train), unit="img",
               disable=not cfg.progress or not t.di.is_main,
               desc=cfg.name or "train", leave=False, dynamic_ncols=True)
    for epoch in range(t.state.epoch, cfg.epochs):
        _epoch(t, epoch, bar)
        if t.state.diverged:
            break
    bar.close()
    return _finish(t, time.perf_counter() - t.t0)


def _build(cfg: TrainConfig, splits: Splits, run_dir: Path | None, log, init_state: dict | None):
    """The model (from init_state when fine-tuning), its compiled and DDP forms, both optimizers, the
    objective and its watchdog, a fresh TrainState, and the data on the device; a FitResult at once for a
    model fitted in closed form."""
    di, device = distributed.setup(pick_device(cfg.device))
    objective = WrongLabelObjective.from_config(cfg, len(splits.train))
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
    centre_err = centre_guess_error(splits.val.targets.astype(np.float64))
    # A fixed backbone (the sweep's pixel MLP) with nothing augmenting the images: its features are computed
    # once and every step trains only the layers after it (most of a sweep run's time otherwise).
    on_features = (model.fixed_backbone and not (cfg.augment or cfg.flip or cfg.camera_mean) and not di.enabled
                   and not cfg.compile)
    val_data = to_device(tensors(splits.val), device)
    data = to_device(tensors(splits.train), device)
    if on_features:
        train_fwd = Head(model, "backbone")
        val_data, data = _on_features(model, val_data, device), _on_features(model, data, device)
    return Training(cfg, splits, di, device, run_dir, write, log, objective, Recipe.from_config(cfg), model, fwd,
                    train_fwd, opt, neg_opt, TrainState(lam=objective.lam, guards=objective.counter),
                    objective.make_watchdog(centre_err), centre_err, on_features, data, val_data,
                    # The webcam look (data.realism) goes with --augment; "auto" turns it on for synthetic data.
                    cfg.augment and realism_enabled(cfg.realism, str(splits.train.meta.get("source", ""))),
                    CameraMean.load(cfg.camera_mean) if cfg.camera_mean else None)


def _restore(t: Training, resume_ckpt: dict | None) -> None:
    """A resumed run's weights, optimizers and TrainState (state.restore), then the weight EMA and the best
    weights so far; the watchdog's first snapshot is the starting point, restored or fresh."""
    if resume_ckpt is not None:
        t.state = restore(resume_ckpt, t.model, t.opt, t.neg_opt, t.objective)
    t.objective.lam = t.state.lam
    # Weight EMA (timm's ModelEmaV2 idea, torch's AveragedModel): validation, best.pt and the test
    # figures use the averaged weights, which removes most of the epoch-to-epoch jitter of a small
    # validation set. Checkpoints hold the averaged weights as "state_dict" (what a user loads) and the
    # raw training weights in extra["train_state_dict"] (what --resume continues from).
    t.ema = _make_ema(t.model, t.cfg.ema) if t.cfg.ema > 0 else None
    if t.ema is not None and resume_ckpt is not None:
        t.ema.load_state_dict(resume_ckpt["extra"]["ema"])
    t.set_eval_model()
    t.best_state = _state_copy(eval_weights(t.model, t.ema))
    if t.run_dir is not None and (t.run_dir / "best.pt").exists() and resume_ckpt is not None:
        t.best_state = read_checkpoint(t.run_dir / "best.pt")["state_dict"]
    if t.watchdog is not None:
        # The first snapshot carries the starting weights' own validation error: an epoch that runs away
        # from a good start must not become the state every restore goes back to (guards.Watchdog).
        init_err = t.val_error()
        t.watchdog.snapshot(t.model, init_err)
        if resume_ckpt is None and math.isfinite(init_err) and init_err <= t.centre_err:
            t.state.best_err = init_err


def _epoch(t: Training, epoch: int, bar) -> None:
    """One epoch: its LR, lambda and augmented photos, train_one_epoch, validation (the watchdog's restore
    or the divergence stop), then its metrics row, best.pt when validation improved, and last.pt."""
    cfg, state = t.cfg, t.state
    state.epoch = epoch
    torch.manual_seed(seeding.seed_int(cfg.seed, "torch", epoch))
    lr = lr_at(cfg, epoch)
    set_lr(t.opt, lr)
    lam = t.objective.lambda_at(epoch)
    aug = _epoch_data(t, epoch)
    te = time.perf_counter()
    loss, nonfinite = train_one_epoch(t.recipe, t.train_fwd, t.opt, t.neg_opt, t.data, state, t.objective,
                                      t.device, lr=lr, lam=lam, epoch=epoch, bar=bar, ema=t.ema, aug=aug,
                                      weights=t.model)
    distributed.sync_buffers(t.model, t.di)
    t.seen += len(t.splits.train)
    val_err, event, nonfinite = _validate(t, epoch, nonfinite or not weights_finite(t.model))
    dt = time.perf_counter() - te
    row_extra = {}
    if cfg.head == "classification":
        row_extra["val_logit_absmax"] = (logit_absmax(t.eval_model, t.val_data, t.device) if not nonfinite
                                         else math.inf)
    row = {"epoch": epoch, "lr": lr, "lambda": lam, "train_loss": loss, "val_mean_error_cells": val_err,
           "samples_per_second": len(t.splits.train) / dt, "seconds": time.perf_counter() - t.t0,
           "guard_counts": json.dumps(state.guards.as_dict()), "event": event, **row_extra}
    state.history.append(row)
    if math.isfinite(val_err) and val_err < state.best_err and (t.watchdog is None or val_err <= t.centre_err):
        state.best_err, state.best_epoch = val_err, epoch
        t.best_state = _state_copy(eval_weights(t.model, t.ema))
        if t.write and cfg.save_checkpoints:
            save(t.run_dir / "best.pt", t.model, cfg, epoch, t.opt, t.neg_opt, state, t.log, t.ema)
    if t.write:
        append_metrics(t.run_dir / "metrics.csv", row)
        if cfg.save_checkpoints:
            save(t.run_dir / "last.pt", t.model, cfg, epoch, t.opt, t.neg_opt, state, t.log, t.ema)
    if cfg.progress:
        bar.set_postfix(ep=epoch, loss=f"{loss:.3g}", val=f"{val_err:.3f}", lam=f"{lam:g}")
    if event and cfg.progress and t.di.is_main:
        tqdm.write(f"[{cfg.name or 'train'}] epoch {epoch}: {event}")


def _epoch_data(t: Training, epoch: int):
    """The epoch's augmented training photos: per batch on the device (returned, a DeviceAugment), or once
    per epoch on the CPU with albumentations (into t.data); None when nothing augments them."""
    cfg, aug, imgs = t.cfg, None, None
    src = (t.splits.train.images, t.splits.train.targets, t.splits.train.face)
    if (cfg.augment or cfg.flip) and _torch_augment(cfg, t.device):   # per batch, on the device
        aug = DeviceAugment(seeding.seed_int(cfg.seed, "device_augment", epoch, t.di.rank), t.device,
                            photometric=cfg.augment, flip=cfg.flip)
        if t.look:  # the webcam look has no torch version: once per epoch on the CPU, then the jitter per batch
            imgs, _, _ = augment_epoch(*src, seed=seeding.seed_int(cfg.seed, "augment", epoch),
                                       photometric=False, flip=False, realism=True)
            t.data = to_device((torch.from_numpy(imgs), *t.data[1:]), t.device)
    elif cfg.augment or cfg.flip or t.camera is not None:           # once per epoch, albumentations
        imgs, tg, fc = augment_epoch(*src, seed=seeding.seed_int(cfg.seed, "augment", epoch),
                                     photometric=cfg.augment, flip=cfg.flip, realism=t.look)
        if t.camera is not None:   # last, on what the model sees: the flip must not mirror the camera's mean
            imgs = adapt_to_camera(imgs, t.camera)
        t.data = to_device((torch.from_numpy(np.ascontiguousarray(imgs)), torch.from_numpy(fc),
                             torch.from_numpy(tg)), t.device)
    _note_input_mean(t, epoch, imgs)
    return aug


def _mean_strip(images: np.ndarray) -> np.ndarray:
    return images.mean(0, dtype=np.float64).astype(np.float32)


def _note_input_mean(t: Training, epoch: int, imgs: np.ndarray | None) -> None:
    """The first epoch's photos' mean strip as the CPU made them (imgs; None: the photos as they are), kept in
    the TrainState (and so in every checkpoint): what a camera's strips are brought to at test time
    (data.adapt.CameraNormaliser). A resumed run keeps the mean its checkpoint recorded (the photos as they are
    when it recorded none); the per-batch device jitter (zero-mean photometric changes) is not in it."""
    if epoch == 0 or t.state.input_mean is None:
        t.state.input_mean = _mean_strip(imgs if epoch == 0 and imgs is not None else t.splits.train.images)


def _validate(t: Training, epoch: int, nonfinite: bool) -> tuple[float, str, bool]:
    """(validation error, event, non-finite) after an epoch. With a watchdog, a runaway or non-finite epoch
    restores the best weights (lambda halved or stopped) and is validated again; without one, a non-finite
    epoch ends the run as diverged."""
    val_err = t.val_error() if not nonfinite else math.inf
    nonfinite = nonfinite or not math.isfinite(val_err)
    event, state = "", t.state
    if t.watchdog is not None:
        reason = t.watchdog.should_trigger(val_err, nonfinite, runaway=grid.DIAGONAL)
        if reason:
            state.lam = t.objective.lam = t.watchdog.restore(t.model, [t.opt, t.neg_opt], epoch=epoch,
                                                             reason=reason, lam=t.objective.lam)
            event = f"watchdog: {reason}; restored best weights (fresh optimizer state), lambda -> {state.lam:g}"
            if t.ema is not None:
                t.ema = _make_ema(t.model, t.cfg.ema)
                t.set_eval_model()
            val_err, nonfinite = t.val_error(), False
        else:
            t.watchdog.observe(val_err, t.model)
    elif nonfinite:
        state.diverged = True
        state.stop_reason = f"non-finite loss or weights in epoch {epoch}"
        event = "diverged: " + state.stop_reason
    return val_err, event, nonfinite


def _finish(t: Training, train_seconds: float) -> FitResult:
    """The final weights (a watchdog run that ended worse than its best reports the best) and the outcome;
    the returned model holds the best-on-validation weights."""
    state = t.state
    final_err = state.history[-1]["val_mean_error_cells"] if state.history else math.inf
    final_state = _state_copy(eval_weights(t.model, t.ema))
    if t.watchdog is not None and final_err > state.best_err:
        # A watchdog run reports its best-validation weights when training ended worse than them: the
        # guard's promise is that the run is never worse than the best it reached (docs/science.md section 5).
        final_state, final_err = t.best_state, state.best_err
    result = outcome(final_err, t.centre_err, nonfinite=state.diverged)
    if result != "ok" and not state.stop_reason:
        state.stop_reason = (f"{result}: final validation error {final_err:.3g} cells"
                             + (f" is worse than always guessing the screen centre ({t.centre_err:.2f})"
                                if result != DIVERGED else " (off the screen or non-finite)"))
    t.model.load_state_dict(t.best_state)
    return FitResult(t.model, state, t.watchdog.events if t.watchdog else [], train_seconds, t.seen, final_state,
                     result, final_err)


def _silent(*args, **kwargs) -> None:
    pass


def _state_copy(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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
