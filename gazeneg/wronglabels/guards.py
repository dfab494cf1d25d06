"""Guards on the negative (wrong-label) step, and the divergence watchdog.

Each mask guard returns a boolean mask of the (sample, wrong point) pairs it lets through; the
objective (objective.py) counts the pairs each guard blocked ("fired"). See docs/science.md section 1:
  error bound   |f - y| < B (Euclidean or per-axis max): the original question's rule
  direction     <f - w, y - f> > 0: stepping away from w also moves f toward y
  grad cap      the negative step's gradient norm is scaled down to a cap (cap_norm_)
The bounded repulsion, the other guard, is a loss shape: losses.negative_objective.
The watchdog: docs/science.md section 5.
"""

from __future__ import annotations

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


@dataclass
class GuardCounter:
    """How often each guard fired (blocked a pair, or capped a step), and how many pairs it saw."""

    fired: Counter = field(default_factory=Counter)
    seen: int = 0            # (sample, wrong point) pairs the guards looked at
    steps: int = 0           # optimizer steps that carried a negative term (the grad cap's denominator)
    step_ratio_sum: float = 0.0   # literal mode: sum over steps of mean |delta theta| / (lambda * lr)
    step_ratio_n: int = 0

    def add(self, name: str, n: int) -> None:
        self.fired[name] += int(n)

    def add_step_ratio(self, r: float) -> None:
        self.step_ratio_sum += float(r)
        self.step_ratio_n += 1

    def as_dict(self, prefix: str = "guard_") -> dict:
        d = {f"{prefix}{k}_fired": int(v) for k, v in sorted(self.fired.items())}
        d[f"{prefix}pairs_seen"] = int(self.seen)
        d[f"{prefix}neg_steps"] = int(self.steps)
        if self.step_ratio_n:
            d[f"{prefix}neg_step_ratio"] = self.step_ratio_sum / self.step_ratio_n
        return d

    def state(self) -> dict:
        return {"fired": dict(self.fired), "seen": self.seen, "steps": self.steps,
                "step_ratio_sum": self.step_ratio_sum, "step_ratio_n": self.step_ratio_n}

    def load(self, d: dict) -> None:
        self.fired = Counter(d.get("fired", {}))
        self.seen, self.steps = int(d.get("seen", 0)), int(d.get("steps", 0))
        self.step_ratio_sum, self.step_ratio_n = float(d.get("step_ratio_sum", 0.0)), int(d.get("step_ratio_n", 0))


def cap_norm_(tensors: list, cap: float) -> bool:
    """Scale the tensors in place so that their joint L2 norm is at most cap; True if it was above.
    The one gradient cap of the project: the combined loss applies it to the negative term's gradient
    alone, the literal step to its own gradient."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))
    if norm > cap:
        for t in tensors:
            t.mul_(cap / norm)
        return True
    return False


class Watchdog:
    """Divergence watchdog (docs/science.md section 5). After each epoch, `should_trigger` decides whether
    the run went bad: a non-finite loss or weight or a validation error off the screen (at once), or
    `patience` bad epochs in a row, where a bad epoch has a validation error more than pct% above its
    best OR above an absolute level (the trainer passes the error of always guessing the screen centre,
    so a best epoch that is itself near chance cannot disarm it). `restore` then loads the best weights
    with FRESH optimizer moments and halves lambda (or stops the wrong labels).

    What counts as "best":
      - the first snapshot (the weights training starts from) carries their own validation error, so an
        epoch that runs away from a good start never becomes the best (a best error that started at
        infinity made the first epoch, however bad, the state every restore went back to);
      - an epoch worse than the absolute level (the centre guess) is never accepted as best;
      - a state that failed twice (two triggers while it was the best) is given up: the next restore
        goes back to the initial weights instead.

    Two things the restore must not do: keep live references into the snapshot (load_state_dict on an
    optimizer adopts the given tensors, which later in-place updates then rewrite), and bring back
    optimizer moments captured while the run was running away (they carry its velocity). So the
    snapshot is a copy of the weights only, and the optimizers are reset."""

    MAX_FAILURES = 2   # triggers a best state may cause before the watchdog falls back to the initial weights

    def __init__(self, *, pct: float = 50.0, patience: int = 2, action: str = "halve", absolute: float = math.inf):
        if action not in ("halve", "stop"):
            raise ValueError(f"watchdog action must be 'halve' or 'stop', not {action!r}")
        self.pct, self.patience, self.action, self.absolute = pct, patience, action, absolute
        self.best_err = math.inf
        self.best_weights: dict | None = None
        self.initial_weights: dict | None = None
        self.initial_err = math.inf
        self.failures = 0          # triggers since the current best state was taken
        self.bad_epochs = 0
        self.events: list[dict] = []

    def snapshot(self, model, val_err: float = math.inf) -> None:
        """The first snapshot: the weights training starts from, with their validation error (inf when
        unknown). It is the best state until an epoch beats it, and the fallback of a state that failed
        twice. An initial error worse than the absolute level does not count as a best error."""
        self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.initial_weights = self.best_weights
        ok = math.isfinite(val_err) and val_err <= self.absolute
        self.best_err = self.initial_err = val_err if ok else math.inf
        self.failures = 0

    def observe(self, val_err: float, model) -> None:
        """Record a healthy epoch's validation error (keeps the best weights). An epoch worse than the
        absolute level (always guessing the centre) is never the best."""
        if math.isfinite(val_err) and val_err < self.best_err and val_err <= self.absolute:
            self.best_err = val_err
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.failures = 0

    def should_trigger(self, val_err: float, nonfinite: bool, runaway: float = math.inf) -> str | None:
        """runaway: a validation error above it triggers at once (the trainer passes the screen's diagonal:
        predictions off the screen are a divergence in progress, and under SGD with Lambda > 1 the next
        epoch may already overflow)."""
        if nonfinite or not math.isfinite(val_err):
            return "non-finite loss or weights"
        if val_err > runaway:
            return f"validation error {val_err:.3g} cells is off the screen (> {runaway:.1f})"
        rel = self.best_err < math.inf and val_err > self.best_err * (1 + self.pct / 100)
        absolute = val_err > self.absolute
        if not (rel or absolute):
            self.bad_epochs = 0
            return None
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return None
        if absolute:
            return (f"validation error {val_err:.3f} worse than always guessing the centre ({self.absolute:.3f}) "
                    f"for {self.bad_epochs} epochs")
        return (f"validation error {val_err:.3f} > {1 + self.pct / 100:.2f} x best {self.best_err:.3f} "
                f"for {self.bad_epochs} epochs")

    def restore(self, model, optimizers, *, epoch: int, reason: str, lam: float) -> float:
        """Load the best weights (copied into the model's own tensors; the snapshot stays as it was),
        reset every optimizer's state, record the event; return the new lambda. The trigger counts as a
        failure of the current best state; at the second, the watchdog gives that state up and goes back
        to the initial weights."""
        self.failures += 1
        fallback = (self.failures >= self.MAX_FAILURES and self.initial_weights is not None
                    and self.best_weights is not self.initial_weights)
        if fallback:
            self.best_weights, self.best_err, self.failures = self.initial_weights, self.initial_err, 0
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)
        for o in optimizers:
            o.state.clear()
        new_lam = lam / 2 if self.action == "halve" else 0.0
        self.events.append({"epoch": epoch, "reason": reason, "lambda_before": lam, "lambda_after": new_lam,
                            "restored": self.best_weights is not None,
                            "restored_to": "initial" if self.best_weights is self.initial_weights else "best",
                            "restored_error": self.best_err if math.isfinite(self.best_err) else None})
        self.bad_epochs = 0
        return new_lam


def weights_finite(model) -> bool:
    return all(torch.isfinite(p).all().item() for p in model.parameters())
