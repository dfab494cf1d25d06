"""Guards on the negative (wrong-label) step, and the divergence watchdog.

Each guard returns a boolean mask of the (sample, wrong point) pairs it lets through; the trainer
counts the pairs each guard blocked ("fired") and logs the counts. See SCIENCE.md section 1:
  error bound   |f - y| < B (Euclidean or per-axis max): the original question's rule
  direction     <f - w, y - f> > 0: stepping away from w also moves f toward y
  repulsion     bounded 1/2 max(0, m - |f - w|)^2 in place of the unbounded -1/2 |f - w|^2
  grad cap      the negative step's gradient norm is clipped to a cap
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass, field

import torch


def error_bound_mask(f: torch.Tensor, y: torch.Tensor, bound: float, norm: str = "euclidean") -> torch.Tensor:
    """(B,) True where the current error |f - y| is below the bound."""
    diff = (f - y).abs()
    if norm == "euclidean":
        err = diff.norm(dim=-1)
    elif norm == "max":
        err = diff.amax(dim=-1)
    else:
        raise ValueError(f"norm must be 'euclidean' or 'max', not {norm!r}")
    return err < bound


def direction_mask(f: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, K) True where <f - w, y - f> > 0 for f, y (B, 2) and w (B, K, 2)."""
    return ((f[:, None, :] - w) * (y - f)[:, None, :]).sum(-1) > 0


def negative_objective(f: torch.Tensor, w: torch.Tensor, loss: str = "mse", margin: float = 2.0) -> torch.Tensor:
    """Per-pair objective the negative step ASCENDS, (B, K).
    mse: 1/2 |f - w|^2 (unbounded above: ascending it can diverge);
    repulsion: -1/2 max(0, m - |f - w|)^2 (ascending it = descending a bounded penalty that is zero
    once f is m away from w, so y stays a minimiser when m <= D)."""
    diff = f[:, None, :] - w
    if loss == "mse":
        return 0.5 * (diff ** 2).sum(-1)
    if loss == "repulsion":
        # sqrt of 0 has an infinite derivative: add a tiny epsilon inside.
        dist = torch.sqrt((diff ** 2).sum(-1) + 1e-12)
        return -0.5 * torch.clamp(margin - dist, min=0) ** 2
    raise ValueError(f"loss must be 'mse' or 'repulsion', not {loss!r}")


@dataclass
class GuardCounter:
    """How often each guard fired (blocked a pair, or capped a step), and how many pairs it saw."""

    fired: Counter = field(default_factory=Counter)
    seen: int = 0

    def add(self, name: str, n: int) -> None:
        self.fired[name] += int(n)

    def as_dict(self, prefix: str = "guard_") -> dict:
        d = {f"{prefix}{k}_fired": int(v) for k, v in sorted(self.fired.items())}
        d[f"{prefix}pairs_seen"] = int(self.seen)
        return d


class Watchdog:
    """Divergence watchdog. After each epoch (and on any non-finite loss), `should_trigger` decides
    whether the run went bad: a non-finite loss or weight, a validation error off the screen, or
    validation error more than pct% above its best for `patience` epochs. Then it restores the best weights (and optimizer states), halves lambda or
    stops wrong labels, and records the event. `snapshot` keeps the best state in memory."""

    def __init__(self, *, pct: float = 50.0, patience: int = 2, action: str = "halve"):
        if action not in ("halve", "stop"):
            raise ValueError(f"watchdog action must be 'halve' or 'stop', not {action!r}")
        self.pct, self.patience, self.action = pct, patience, action
        self.best_err = math.inf
        self.best_state = None
        self.bad_epochs = 0
        self.events: list[dict] = []

    def snapshot(self, model, optimizers) -> None:
        self.best_state = (copy.deepcopy(model.state_dict()), [copy.deepcopy(o.state_dict()) for o in optimizers])

    def observe(self, val_err: float, model, optimizers) -> None:
        """Record a healthy epoch's validation error (keeps the best state)."""
        if math.isfinite(val_err) and val_err < self.best_err:
            self.best_err = val_err
            self.bad_epochs = 0
            self.snapshot(model, optimizers)

    def should_trigger(self, val_err: float, nonfinite: bool, runaway: float = math.inf) -> str | None:
        """runaway: a validation error above it triggers at once, without waiting `patience` epochs
        (the trainer passes the screen's diagonal: predictions off the screen are a divergence in
        progress, and under SGD with Lambda > 1 the next epoch may already overflow)."""
        if nonfinite or not math.isfinite(val_err):
            return "non-finite loss or weights"
        if val_err > runaway:
            return f"validation error {val_err:.3g} cells is off the screen (> {runaway:.1f})"
        if self.best_err < math.inf and val_err > self.best_err * (1 + self.pct / 100):
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                return f"validation error {val_err:.3f} > {1 + self.pct / 100:.2f} x best {self.best_err:.3f} " \
                       f"for {self.bad_epochs} epochs"
        else:
            self.bad_epochs = 0
        return None

    def restore(self, model, optimizers, *, epoch: int, reason: str, lam: float) -> float:
        """Restore the best weights; return the new lambda. Records the event."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state[0])
            for o, s in zip(optimizers, self.best_state[1], strict=True):
                o.load_state_dict(s)
        new_lam = lam / 2 if self.action == "halve" else 0.0
        self.events.append({"epoch": epoch, "reason": reason, "lambda_before": lam, "lambda_after": new_lam,
                            "restored": self.best_state is not None})
        self.bad_epochs = 0
        return new_lam


def weights_finite(model) -> bool:
    return all(torch.isfinite(p).all().item() for p in model.parameters())
