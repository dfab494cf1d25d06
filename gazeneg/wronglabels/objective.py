"""The wrong-label method in one object: built from the config, it is the only reader of the method's
fields (neg_*, guard_*, watchdog*, cls_neg_*, cls_complement_only), and gives the training loop the
extra loss or the negative step, with its guards, its lambda schedule and its counters.

Regression (docs/science.md sections 1, 2, 4):
  combined  loss = true-label loss - lambda * sum_k N(f, w_k), one optimizer step
  literal   the usual step on true labels, then an optimizer steps on sum_k N(f, w_k) with learning
            rate -lambda * lr, on the same photos or on other photos. Which optimizer is what the number
            measures (docs/science.md section 4): neg_optimizer "separate", a second optimizer with its own
            moments (under Adam it moves every weight by about lambda * lr whatever the gradient), or "same",
            the training optimizer itself with its moments, its LR set negative for the wrong-label batch
            (the recipe as the question put it)
N is the negative objective of losses.py (the same shape as the true-label loss, or the bounded
repulsion), and the guards mask which (sample, w) pairs count.
Classification (section 3): a known-wrong cell enters through complement_nll (-log(1 - p)) or the
naive negated_ce (+log p), with an optional confidence guard, or alone (complementary-only learning).

    obj = WrongLabelObjective.from_config(cfg, n_train=len(train))
    lam = obj.lambda_at(epoch)
    loss = obj.backward_combined(pos, f, y, idx, step, lam, params, backward)   # or literal_step, classification_term
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gazeneg import grid
from gazeneg.config import TrainConfig, config_values
from gazeneg.model.losses import complement_nll, negated_ce, negative_objective
from gazeneg.wronglabels.generator import WrongLabelGenerator, wrong_cells
from gazeneg.wronglabels.guards import GuardCounter, Watchdog, cap_norm_, direction_mask, error_bound_mask

# The objective's values computed from the config, each with the TrainConfig fields it comes from; every
# other field of WrongLabelObjective holds the TrainConfig field of the same name, read by name (config.
# config_values), so each option is written once, in TrainConfig (tests/test_objective.py checks both).
DERIVED = {
    "mode": ("head", "neg_mode"),                      # regression's neg_mode; "off" under classification
    "lam": ("head", "neg_lambda", "cls_neg_weight"),   # the base lambda, or the wrong-cell weight
    "generator": ("head", "neg_mode", "neg_distance", "neg_k", "neg_policy", "neg_boundary", "neg_direction",
                  "seed"),
    "resolved_neg_loss": ("loss", "neg_loss"),         # resolve_neg_loss: "match" becomes the true loss's shape
    "margin": ("neg_margin", "neg_distance"),          # the repulsion margin; 0 = D
    "cell_policy": ("neg_policy",),                    # classification: a direction makes no sense for cells
    "n_train": (),                                     # the training set's size (not a config value)
}


@dataclass
class WrongLabelObjective:
    # Read from the TrainConfig fields of the same names (their meaning is in TrainConfig's --help), with
    # TrainConfig's defaults: WrongLabelObjective() is the objective of TrainConfig(), no wrong labels.
    head: str = TrainConfig.head
    epochs: int = TrainConfig.epochs
    seed: int = TrainConfig.seed
    neg_lambda_schedule: str = TrainConfig.neg_lambda_schedule
    neg_warmup_epochs: int = TrainConfig.neg_warmup_epochs
    neg_distance: float = TrainConfig.neg_distance
    neg_k: int = TrainConfig.neg_k
    neg_other_photos: bool = TrainConfig.neg_other_photos
    neg_optimizer: str = TrainConfig.neg_optimizer
    guard_bound: float = TrainConfig.guard_bound
    guard_bound_norm: str = TrainConfig.guard_bound_norm
    guard_direction: bool = TrainConfig.guard_direction
    guard_grad_cap: float = TrainConfig.guard_grad_cap
    cls_neg_loss: str = TrainConfig.cls_neg_loss
    cls_neg_confidence: float = TrainConfig.cls_neg_confidence
    cls_complement_only: bool = TrainConfig.cls_complement_only
    cls_neg_uniform: bool = TrainConfig.cls_neg_uniform
    watchdog: bool = TrainConfig.watchdog
    watchdog_pct: float = TrainConfig.watchdog_pct
    watchdog_patience: int = TrainConfig.watchdog_patience
    watchdog_action: str = TrainConfig.watchdog_action
    # Derived (DERIVED): the defaults are what from_config gives for TrainConfig()
    mode: str = "off"
    lam: float = 0.0                # the watchdog halves it
    generator: WrongLabelGenerator | None = None
    resolved_neg_loss: str = "huber"
    margin: float = 2.0
    cell_policy: str = "random"
    n_train: int = 0

    def __post_init__(self):
        self.counter = GuardCounter()

    @classmethod
    def from_config(cls, cfg: TrainConfig, n_train: int) -> WrongLabelObjective:
        """n_train: the training set's size (the "random" policy keeps one angle per training sample)."""
        regression = cfg.head == "regression"
        gen = None
        if regression and cfg.neg_mode != "off":
            gen = WrongLabelGenerator(distance=cfg.neg_distance, k=cfg.neg_k, policy=cfg.neg_policy,
                                      boundary=cfg.neg_boundary, direction=cfg.neg_direction, n_samples=n_train,
                                      seed=cfg.seed)
        return cls(**config_values(cls, cfg, derived=DERIVED),
                   mode=cfg.neg_mode if regression else "off",
                   lam=cfg.neg_lambda if regression else cfg.cls_neg_weight,
                   generator=gen, resolved_neg_loss=resolve_neg_loss(cfg.loss, cfg.neg_loss),
                   margin=cfg.neg_margin or cfg.neg_distance,
                   cell_policy="random" if cfg.neg_policy in ("one_sided", "prediction_side") else cfg.neg_policy,
                   n_train=n_train)

    # ------------------------------------------------------------------------------------------
    # Schedule

    @property
    def enabled(self) -> bool:
        return self.mode != "off" or (self.head == "classification" and (self.lam > 0 or self.cls_complement_only))

    def lambda_at(self, epoch: int) -> float:
        """lambda for an epoch: 0 during warm-up, then constant or a linear ramp from 0 over half the
        remaining epochs. A pure function of the epoch and the base lambda, so resume needs no more state."""
        if not self.enabled or epoch < self.neg_warmup_epochs:
            return 0.0
        if self.neg_lambda_schedule == "linear":
            ramp = max(1, (self.epochs - self.neg_warmup_epochs) // 2)
            return self.lam * min(1.0, (epoch - self.neg_warmup_epochs + 1) / ramp)
        return self.lam

    def make_watchdog(self, centre_error: float) -> Watchdog | None:
        """centre_error: the validation error of always guessing the screen centre (the absolute trigger)."""
        if not self.watchdog:
            return None
        return Watchdog(pct=self.watchdog_pct, patience=self.watchdog_patience, action=self.watchdog_action,
                        absolute=centre_error)

    # ------------------------------------------------------------------------------------------
    # Regression

    def regression_active(self, lam: float) -> bool:
        return self.head == "regression" and self.mode != "off" and lam > 0

    def negative_term(self, f: torch.Tensor, y: torch.Tensor, idx, step: int) -> torch.Tensor:
        """The masked negative objective for predictions f (B, 2): summed over the K wrong points, mean over
        the batch. Counts the pairs each guard blocked."""
        w, valid = self.generator(y, idx, step=step, f=f.detach())
        mask = valid.clone()
        c = self.counter
        c.seen += mask.numel()
        c.add("boundary_drop", (~valid).sum().item())
        fd = f.detach()
        if self.guard_bound > 0:
            ok = error_bound_mask(fd, y, self.guard_bound, self.guard_bound_norm)[:, None].expand_as(mask)
            c.add("error_bound", (mask & ~ok).sum().item())
            mask &= ok
        if self.guard_direction:
            ok = direction_mask(fd, w, y)
            c.add("direction", (mask & ~ok).sum().item())
            mask &= ok
        obj = negative_objective(f, w, self.resolved_neg_loss, self.margin)
        return (obj * mask).sum() / f.shape[0]

    def backward_combined(self, pos: torch.Tensor, f: torch.Tensor, y: torch.Tensor, idx, step: int, lam: float,
                          params: list, backward) -> torch.Tensor:
        """Combined mode: backpropagate pos - lam * N. With a gradient cap, only the negative term's
        gradient is capped (then added to the true-label gradient). backward(loss) runs loss.backward()
        (with the distributed scale). Returns the loss."""
        neg = self.negative_term(f, y, idx, step)
        loss = pos - lam * neg
        self.counter.steps += 1
        if self.guard_grad_cap <= 0:
            backward(loss)
            return loss
        gneg = torch.autograd.grad(-lam * neg, params, retain_graph=True, allow_unused=True)
        gneg = [torch.zeros_like(p) if g is None else g for p, g in zip(params, gneg, strict=True)]
        if cap_norm_(gneg, self.guard_grad_cap):
            self.counter.add("grad_cap", 1)
        backward(pos)
        for p, g in zip(params, gneg, strict=True):
            p.grad = g if p.grad is None else p.grad + g
        return loss

    def pick_neg_optimizer(self, opt, make_separate):
        """The optimizer of the literal negative step: the training optimizer itself ("same") or a new one
        made by make_separate() ("separate")."""
        return opt if self.neg_optimizer == "same" else make_separate()

    def literal_step(self, model, neg_opt, xb, fb, yb, idx, step: int, lam: float, lr: float, backward,
                     forward) -> float:
        """Literal mode: an optimizer (a separate one, or the training one: see pick_neg_optimizer) ascends N
        at learning rate -lam * lr on the batch (xb, fb, yb), then gets its own LR back.
        Returns the negative term's value (for the non-finite check). Also measures the step's mean size
        per parameter relative to lam * lr (docs/science.md section 4: about 1 under Adam, whatever the
        gradient's size, so a cap or a mask that shrinks the gradient cannot shrink it)."""
        f2 = forward(xb, fb)
        neg = self.negative_term(f2, yb, idx, step)
        neg_opt.zero_grad(set_to_none=True)
        backward(neg)
        params = [p for p in model.parameters() if p.grad is not None]
        if not params:   # every pair masked: no step
            return float(neg.item())
        if self.guard_grad_cap > 0 and cap_norm_([p.grad for p in params], self.guard_grad_cap):
            self.counter.add("grad_cap", 1)
        saved = [g["lr"] for g in neg_opt.param_groups]
        for g in neg_opt.param_groups:
            g["lr"] = -lam * lr * g.get("lr_scale", 1.0)   # the literal negative learning rate
        before = [p.detach().clone() for p in params]
        neg_opt.step()
        for g, old_lr in zip(neg_opt.param_groups, saved, strict=True):
            g["lr"] = old_lr   # the same optimizer (the asker's recipe) goes back to its own LR
        self.counter.steps += 1
        moved = sum(float((p.detach() - b).abs().sum()) for p, b in zip(params, before, strict=True))
        n = sum(p.numel() for p in params)
        if lam * lr > 0 and n:
            self.counter.add_step_ratio(moved / n / (lam * lr))
        return float(neg.item())

    # ------------------------------------------------------------------------------------------
    # Classification

    def classification_term(self, logits: torch.Tensor, true_cells: torch.Tensor, idx, step: int,
                            lam: float) -> torch.Tensor | None:
        """The known-wrong-cell term (scalar), or None when off. Complementary-only learning has weight 1
        and draws its wrong cells uniformly over the other cells."""
        weight = 1.0 if self.cls_complement_only else lam
        if weight <= 0:
            return None
        wrong = wrong_cells(true_cells, distance=self.neg_distance, k=self.neg_k, policy=self.cell_policy,
                            uniform=self.cls_neg_uniform or self.cls_complement_only, idx=idx, step=step,
                            n_samples=self.n_train, seed=self.seed)
        fn = complement_nll if self.cls_neg_loss == "complement" else negated_ce
        per = fn(logits.float(), wrong, reduction="none")
        mask = torch.ones_like(per, dtype=torch.bool)
        self.counter.seen += mask.numel()
        self.counter.steps += 1
        if self.cls_neg_confidence > 0 and not self.cls_complement_only:
            p_true = torch.softmax(logits.detach().float(), 1).gather(1, true_cells[:, None])[:, 0]
            ok = p_true > self.cls_neg_confidence
            self.counter.add("confidence", (~ok).sum().item())
            mask &= ok
        return weight * (per * mask).sum() / per.shape[0]

    def check_distributed(self) -> str | None:
        """Why this objective cannot run under DDP, or None."""
        if self.mode == "combined" and self.guard_grad_cap > 0:
            return ("guard_grad_cap with neg_mode combined takes gradients with autograd.grad, which "
                    "DistributedDataParallel does not average; run it in one process")
        return None


def resolve_neg_loss(true_loss: str, neg_loss: str) -> str:
    """The negative term's shape for a true-label loss. "match" pairs each true-label loss with a negative
    term of the same growth (docs/science.md section 2). A quadratic negative term beside the linear tail
    of a Huber loss is unbounded below for every lambda > 0, so that combination is refused."""
    if neg_loss == "match":
        return true_loss
    if true_loss == "huber" and neg_loss == "mse":
        raise ValueError("loss huber with neg_loss mse: Huber(|f - y|) - lambda/2 |f - w|^2 is unbounded below for "
                         "every lambda > 0 (the quadratic negative term outgrows the linear true-label term) and "
                         "training runs away; use neg_loss match (or huber), or loss mse (docs/science.md section 2)")
    return neg_loss


def true_cells_of(y: torch.Tensor) -> torch.Tensor:
    """(B,) nearest cell index of each target point (B, 2)."""
    return torch.as_tensor(grid.nearest_cell(y[:, 0].cpu().numpy(), y[:, 1].cpu().numpy()),
                           device=y.device).reshape(-1)
