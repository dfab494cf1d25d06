"""What a resumed training run needs beyond its weights, and how it travels in checkpoints: TrainState,
written into last.pt / best.pt by `save` and read back by `restore`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from gazeneg.config import TrainConfig
from gazeneg.data.adapt import INPUT_MEAN_KEY, input_mean_of
from gazeneg.model.checkpoint import CheckpointError, save_checkpoint
from gazeneg.wronglabels.guards import GuardCounter
from gazeneg.wronglabels.objective import WrongLabelObjective


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
    # The mean strip of the photos the model is trained on, (H, W, 3) float32: the first epoch's, after every
    # augmentation (the raw photos' when nothing augments them). Saved with the weights, so that a camera's
    # strips can be brought to it at test time (data.adapt.CameraNormaliser, `gazeneg live --camera-mean`).
    input_mean: object = None


def eval_weights(model, ema):
    """The weights a run validates, reports and saves: the weight EMA's when there is one."""
    return ema.module if ema is not None else model


def save(path, model, cfg: TrainConfig, epoch: int, opt, neg_opt, state: TrainState, log, ema=None) -> None:
    """A checkpoint a run can resume from: the reported weights as state_dict (with an EMA, the raw training
    weights and the EMA's state in extra), both optimizers and the TrainState. A refused write (non-finite
    weights) is logged, not raised: the last good checkpoint stays."""
    extra = {}
    if ema is not None:
        extra = {"train_state_dict": model.state_dict(), "ema": ema.state_dict()}
    try:
        save_checkpoint(path, eval_weights(model, ema), model_name=cfg.model,
                        model_kwargs={"head": cfg.head, **cfg.model_kwargs},
                        config=cfg.to_dict(), epoch=epoch, optimizer=opt,
                        extra={"neg_optimizer": neg_opt.state_dict(), "lam": state.lam, "best_err": state.best_err,
                               "best_epoch": state.best_epoch, "history": state.history, "step": state.step,
                               "guards": state.guards.state(), **extra,
                               **({INPUT_MEAN_KEY: torch.from_numpy(np.asarray(state.input_mean, np.float32))}
                                  if state.input_mean is not None else {})})
    except CheckpointError as e:
        log(f"checkpoint not written: {e}")


def restore(ckpt: dict, model, opt, neg_opt, objective: WrongLabelObjective) -> TrainState:
    """Load a last.pt written by `save` into the model (its raw training weights), both optimizers and the
    objective's guard counter; returns the TrainState to continue from (the epoch after the checkpoint's).
    A checkpoint that does not fit is one CheckpointError."""
    try:
        ex = ckpt["extra"]
        model.load_state_dict(ex.get("train_state_dict") or ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        neg_opt.load_state_dict(ex["neg_optimizer"])
        state = TrainState(epoch=ckpt["epoch"] + 1, lam=ex["lam"], best_err=float(ex["best_err"]),
                           best_epoch=ex["best_epoch"], history=ex["history"], step=ex["step"],
                           guards=objective.counter,
                           input_mean=input_mean_of(ckpt, "the run's last.pt") if INPUT_MEAN_KEY in ex else None)
        # checkpoints from before the counter kept its steps hold only "guard_fired" and "guard_seen"
        objective.counter.load(ex.get("guards") or {"fired": ex.get("guard_fired", {}),
                                                    "seen": ex.get("guard_seen", 0)})
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"the run's last.pt does not fit its config or lacks training state "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                              "start a new run") from None
    return state
