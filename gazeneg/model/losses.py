"""Every loss of the project, in one place.

Regression (points in grid cells, docs/science.md sections 1 and 2):
  point_loss          the true-label loss: "mse" 1/2|f - y|^2 or "huber" (quadratic within 1 cell,
                      linear beyond, on the Euclidean error)
  negative_objective  what the wrong-label (negative) step ASCENDS for a wrong point w: the same shape
                      as the true-label loss ("mse", "huber"), or the bounded "repulsion"

Classification (144 cells, section 3): the bounded complement loss and the naive negated cross-entropy.

A classifier outputs C logits f (C = 144 grid cells here). For a cell l that is known to be wrong,

    log p(y != l | x) = log(1 - p_l) = logsumexp_{k != l} f_k - logsumexp_k f_k

and `complement_nll` minimises its negative, -log(1 - p_l) >= 0. For a set S of wrong cells it is
-log(1 - sum_{l in S} p_l) = logsumexp_k f_k - logsumexp_{k not in S} f_k.

Gradient (one wrong cell): p_l on f_l and -p_l p_j / (1 - p_l) on every other f_j (L1 norm 2 p_l <= 2).
It vanishes as p_l -> 0, so the loss stops pushing once the wrong cell is unlikely: it is bounded below
by 0 and cannot run the logits off to infinity. (NLNL, Kim et al. 2019; SCL-NL, Chou et al. 2020;
token unlikelihood, Welleck et al. 2019.)

`negated_ce` is the naive "negative learning rate on the wrong class": +log p_l, i.e. minus the
cross-entropy on l. It is unbounded below and its gradient onehot(l) - p never vanishes (its f_l
component -> 1 as p_l -> 0), so minimising it drives the logits apart forever. Kept for comparison.

Why the masked logsumexp and nothing simpler. Write "lead" for how far the wrong logit is above the
logsumexp of the others (for C = 144 and equal others, the raw logit gap minus log 143 = 4.96), so
that 1 - p_l ~= exp(-lead). Measured in float32 (tests/test_losses.py pins the first and third):
- log(clamp(1 - softmax(f)[l], min=1e-5)) sits on the clamp, with EXACTLY ZERO gradient, once
  1 - p_l < 1e-5, i.e. from a lead of log(1e5) ~= 11.5: the loss stops training exactly when the
  model is most confidently wrong;
- log(1 - softmax(f)[l] + 1e-6) has its f_l gradient scaled by (1 - p_l) / (1 - p_l + 1e-6):
  0.19 instead of 1.0 at a lead of 15, and exactly 0 from ~16 on, where softmax rounds p_l to 1.0;
- log1mexp(log_softmax(f)[l]) is off by 0.25 at a lead of 15 and gives -inf with a NaN gradient
  from ~16 on, where the logsumexp rounds to the leading logit and log_softmax becomes 0.0.
So all three are broken by a lead of 20. The masked form never forms 1 - p_l: both logsumexps are
exact, the loss is ~= lead for a large lead, and its gradient (p_l on f_l, -p_l times the softmax of
the others elsewhere) is correct at leads of 20, 100 and 1e4 in float32. PyTorch has no built-in for this.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")
POINT_LOSSES = ("mse", "huber")
NEGATIVE_LOSSES = ("mse", "huber", "repulsion")
HUBER_DELTA = 1.0  # cells: quadratic within one cell of the target, linear beyond


def _distance(diff: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite derivative at 0: a tiny epsilon inside keeps the gradient finite (and ~0 there).
    return torch.sqrt((diff ** 2).sum(-1) + 1e-12)


def _huber(e: torch.Tensor) -> torch.Tensor:
    return torch.where(e < HUBER_DELTA, 0.5 * e ** 2, HUBER_DELTA * (e - 0.5 * HUBER_DELTA))


def point_loss(f: torch.Tensor, y: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-sample loss (B,) of predicted points f against targets y, both (B, 2) in cells.
    "mse" is 1/2|f - y|^2 (the form docs/science.md section 1 analyses); "huber" is quadratic within 1
    cell and linear beyond, so rare lapses (a person looking elsewhere) do not dominate the fit."""
    if kind == "mse":
        return 0.5 * ((f - y) ** 2).sum(-1)
    if kind == "huber":
        return _huber(_distance(f - y))
    raise ValueError(f"point loss must be one of {POINT_LOSSES}, not {kind!r}")


def negative_objective(f: torch.Tensor, w: torch.Tensor, kind: str = "mse", margin: float = 2.0) -> torch.Tensor:
    """Per-pair objective the negative step ASCENDS, (B, K), for f (B, 2) and wrong points w (B, K, 2).

    mse:       1/2 |f - w|^2 (unbounded above: ascending it diverges for Lambda >= 1)
    huber:     Huber(|f - w|), the pair of a Huber true-label loss: it grows linearly, like the true-label
               term, so Huber(|f - y|) - lambda Huber(|f - w|) is bounded below for lambda < 1
               (docs/science.md section 2); a quadratic negative term beside a linear positive one never is
    repulsion: -1/2 max(0, m - |f - w|)^2; ascending it descends a bounded penalty that is zero once f
               is m away from w, so y stays a minimiser when m <= D"""
    diff = f[:, None, :] - w
    if kind == "mse":
        return 0.5 * (diff ** 2).sum(-1)
    if kind == "huber":
        return _huber(_distance(diff))
    if kind == "repulsion":
        return -0.5 * torch.clamp(margin - _distance(diff), min=0) ** 2
    raise ValueError(f"negative loss must be one of {NEGATIVE_LOSSES}, not {kind!r}")


def complement_nll(logits: torch.Tensor, wrong: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-log(1 - sum_{l in S} p_l), the negative log-probability that the class is none of the wrong ones.

    logits: (N, C) float. wrong: (N,) or (N, K) integer class indices, the wrong class(es) S of each
    sample; a class listed twice in a row counts once. reduction: "mean", "sum" or "none" ((N,)).
    Raises ValueError if every class of a sample is marked wrong (p(y not in S) = 0, loss = +inf).
    """
    mask = _wrong_mask(logits, wrong, reduction, "complement_nll")
    all_wrong = mask.all(dim=1)
    if bool(all_wrong.any()):
        row = int(all_wrong.nonzero()[0, 0])
        raise ValueError(
            f"complement_nll: every one of the {logits.shape[1]} classes is marked wrong for sample "
            f"{row}; the probability of 'none of these' is 0 and the loss would be +inf"
        )
    # logsumexp ignores -inf entries in value and gradient, so this is log p(y not in S) computed
    # without ever forming 1 - p (which rounds to 0 in float32 once p_S > 1 - 3e-8).
    log_not_wrong = torch.logsumexp(logits.masked_fill(mask, float("-inf")), dim=1) - torch.logsumexp(
        logits, dim=1
    )
    return _reduce(-log_not_wrong, reduction)


def negated_ce(logits: torch.Tensor, wrong: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """+log p_l: minus the cross-entropy on the wrong class (the naive negative-learning-rate step).

    Unbounded below: minimising it pushes log p_l -> -inf with a gradient that never fades. For
    (N, K) wrong classes it is the mean of log p over the K entries of a row (duplicates included).
    """
    _wrong_mask(logits, wrong, reduction, "negated_ce")  # validation only
    log_p = torch.log_softmax(logits, dim=1)
    idx = wrong.long()
    per_sample = log_p.gather(1, idx[:, None]).squeeze(1) if idx.ndim == 1 else log_p.gather(1, idx).mean(1)
    return _reduce(per_sample, reduction)


def _wrong_mask(logits: torch.Tensor, wrong: torch.Tensor, reduction: str, name: str) -> torch.Tensor:
    """Validate the inputs of a wrong-class loss and return the (N, C) bool mask of wrong classes."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        kind = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"{name}: logits must be a floating-point tensor, got {kind}")
    if not isinstance(wrong, torch.Tensor):
        raise TypeError(f"{name}: wrong must be an integer tensor of class indices, got {type(wrong).__name__}")
    if wrong.is_floating_point() or wrong.is_complex() or wrong.dtype == torch.bool:
        raise TypeError(f"{name}: wrong must hold integer class indices, got dtype {wrong.dtype}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, not {reduction!r}")
    if logits.ndim != 2:
        raise ValueError(f"{name}: logits must have shape (N, C), got {tuple(logits.shape)}")
    n, c = logits.shape
    if wrong.ndim not in (1, 2) or wrong.shape[0] != n or (wrong.ndim == 2 and wrong.shape[1] == 0):
        raise ValueError(
            f"{name}: wrong must have shape (N,) or (N, K) with K >= 1 matching logits (N, C); "
            f"got wrong {tuple(wrong.shape)} for logits {tuple(logits.shape)}"
        )
    bad = (wrong < 0) | (wrong >= c)
    if bool(bad.any()):
        raise ValueError(f"{name}: wrong class index {int(wrong[bad][0])} is outside 0..{c - 1}")
    idx = wrong.long().to(logits.device)
    idx = idx[:, None] if idx.ndim == 1 else idx
    mask = torch.zeros(n, c, dtype=torch.bool, device=logits.device)
    return mask.scatter_(1, idx, True)  # scatter sets, so duplicates in a row count once


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
