import copy
import math

import pytest
import torch

from gazeneg.model.losses import negative_objective
from gazeneg.model.networks import create_model
from gazeneg.strip import FACE_FEATURES
from gazeneg.wronglabels.guards import (
    GuardCounter,
    Watchdog,
    cap_norm_,
    direction_mask,
    error_bound_mask,
    weights_finite,
)
from tests.conftest import fast_config


def test_error_bound_euclidean_and_max():
    y = torch.tensor([[2.0, 11.0], [2.0, 11.0], [2.0, 11.0]])
    f = torch.tensor([[3.5, 12.5], [2.0, 12.9], [4.5, 11.0]])  # |e| = 2.12 / 1.9 / 2.5; max-axis 1.5 / 1.9 / 2.5
    assert error_bound_mask(f, y, 2.0).tolist() == [False, True, False]
    assert error_bound_mask(f, y, 2.0, "max").tolist() == [True, True, False]


def test_direction_guard():
    y = torch.tensor([[2.0, 11.0], [2.0, 11.0]])
    f = torch.tensor([[2.5, 11.0], [1.5, 11.0]])
    w = torch.tensor([[[4.0, 11.0]], [[4.0, 11.0]]])
    # f between y and w: stepping away from w moves toward y -> allowed. f beyond y: not allowed.
    assert direction_mask(f, w, y).tolist() == [[True], [False]]


def test_repulsion_is_bounded_and_zero_beyond_margin():
    f = torch.tensor([[0.0, 0.0]], requires_grad=True)
    w = torch.tensor([[[3.0, 0.0]], [[0.5, 0.0]]]).reshape(1, 2, 2)
    obj = negative_objective(f, w, "repulsion", margin=2.0)
    assert obj[0, 0].item() == 0.0
    assert obj[0, 1].item() == pytest.approx(-0.5 * 1.5 ** 2)
    assert negative_objective(f, w, "mse")[0].tolist() == pytest.approx([4.5, 0.125])


def test_one_negative_step_increases_distance_to_w():
    torch.manual_seed(0)
    m = create_model("mlp")
    x, face = torch.randn(4, 3, 32, 96), torch.zeros(4, FACE_FEATURES)
    w = torch.tensor([[[2.0, 11.0]]]).expand(4, 1, 2)
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    before = (m(x, face)[:, None, :] - w).norm(dim=-1).mean()
    opt.param_groups[0]["lr"] = -1e-3  # the literal negative learning rate on 1/2|f - w|^2
    opt.zero_grad()
    negative_objective(m(x, face), w).sum().backward()
    opt.step()
    after = (m(x, face)[:, None, :] - w).norm(dim=-1).mean()
    assert after > before


def test_combined_loss_and_literal_step_agree_under_sgd():
    torch.manual_seed(0)
    x, face = torch.randn(16, 3, 32, 96), torch.zeros(16, FACE_FEATURES)
    y = torch.rand(16, 2) * torch.tensor([8.0, 15.0])
    w = (y + torch.tensor([2.0, 0.0]))[:, None, :]
    lam, lr = 0.3, 1e-4
    a = create_model("mlp")
    b = copy.deepcopy(a)
    # combined: one step on 1/2|f-y|^2 - lam 1/2|f-w|^2
    opt = torch.optim.SGD(a.parameters(), lr=lr)
    f = a(x, face)
    (0.5 * ((f - y) ** 2).sum(1).mean() - lam * negative_objective(f, w).sum() / 16).backward()
    opt.step()
    # literal: a step on the true labels, then a separate step at lr -lam*lr on the wrong ones
    pos, neg = torch.optim.SGD(b.parameters(), lr=lr), torch.optim.SGD(b.parameters(), lr=lr)
    (0.5 * ((b(x, face) - y) ** 2).sum(1).mean()).backward()
    pos.step()
    neg.zero_grad()
    neg.param_groups[0]["lr"] = -lam * lr
    (negative_objective(b(x, face), w).sum() / 16).backward()
    neg.step()
    pa = torch.cat([p.flatten() for p in a.parameters()])
    pb = torch.cat([p.flatten() for p in b.parameters()])
    p0 = torch.cat([p.flatten() for p in create_model_like(a)])
    # Both moved, and they moved the same way to within the O(lr^2) difference of evaluation points.
    assert (pa - pb).norm() < 1e-3 * (pa - p0).norm()


def create_model_like(m):
    torch.manual_seed(0)
    return create_model("mlp").parameters()


def test_watchdog_restores_finite_weights_after_injected_nan():
    torch.manual_seed(0)
    m = create_model("mlp")
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    wd = Watchdog(pct=50, patience=2, action="halve")
    wd.observe(1.0, m)
    good = copy.deepcopy(m.state_dict())
    with torch.no_grad():
        next(m.parameters()).fill_(float("nan"))
    assert not weights_finite(m)
    reason = wd.should_trigger(float("nan"), nonfinite=True)
    assert reason
    lam = wd.restore(m, [opt], epoch=3, reason=reason, lam=0.8)
    assert weights_finite(m) and lam == 0.4
    assert all(torch.equal(v, good[k]) for k, v in m.state_dict().items())
    assert wd.events[0]["epoch"] == 3 and wd.events[0]["lambda_after"] == 0.4


def test_watchdog_patience():
    m = create_model("mlp")
    wd = Watchdog(pct=50, patience=2, action="stop")
    wd.observe(1.0, m)
    assert wd.should_trigger(1.4, False) is None
    assert wd.should_trigger(1.6, False) is None  # first bad epoch
    assert "1.7" in wd.should_trigger(1.7, False)  # second in a row
    assert wd.restore(m, [], epoch=5, reason="x", lam=0.8) == 0.0


def _momentum_norm(opt):
    return sum(float(s["momentum_buffer"].norm()) for s in opt.state.values() if s.get("momentum_buffer") is not None)


def test_watchdog_restores_twice_from_one_snapshot_which_stays_unchanged():
    """The snapshot is a copy: training after a restore must not rewrite it (optimizer.load_state_dict
    adopts the given tensors, which in-place momentum updates then change), and a restore starts the
    optimizer afresh (no momentum captured during a run-away comes back)."""
    torch.manual_seed(0)
    m = create_model("mlp")
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
    x, face, y = torch.randn(8, 3, 32, 96), torch.zeros(8, FACE_FEATURES), torch.rand(8, 2) * 8

    def steps(n):
        for _ in range(n):
            opt.zero_grad()
            (0.5 * ((m(x, face) - y) ** 2).sum(1).mean()).backward()
            opt.step()

    steps(3)  # momentum exists when the snapshot is taken
    wd = Watchdog(pct=50, patience=1)
    wd.observe(1.0, m)
    frozen = copy.deepcopy(wd.best_weights)
    for _ in range(2):
        steps(4)
        assert _momentum_norm(opt) > 0
        wd.restore(m, [opt], epoch=1, reason="test", lam=1.0)
        assert _momentum_norm(opt) == 0 and not opt.state  # fresh optimizer moments
        assert all(torch.equal(v, frozen[k]) for k, v in m.state_dict().items())
        assert all(torch.equal(v, frozen[k]) for k, v in wd.best_weights.items())  # snapshot unchanged
    assert len(wd.events) == 2


def test_watchdog_absolute_level_fires_when_the_best_is_near_chance():
    """A best epoch that is itself near chance cannot disarm the watchdog: errors above the absolute level
    (always guessing the centre) count as bad epochs whatever the best."""
    m = create_model("mlp")
    wd = Watchdog(pct=50, patience=2, absolute=5.0)
    wd.observe(5.5, m)                 # best so far is already worse than the centre guess
    assert wd.should_trigger(5.6, False) is None        # within 50% of the best, but above 5.0: 1 bad epoch
    assert "centre" in wd.should_trigger(5.7, False)    # 2 in a row
    wd2 = Watchdog(pct=50, patience=2)                   # no absolute level: never fires here
    wd2.observe(5.5, m)
    assert wd2.should_trigger(5.6, False) is None and wd2.should_trigger(5.7, False) is None


def test_watchdog_run_reports_no_worse_than_its_best_validation_weights(tiny_dataset):
    """Under a diverging Lambda = 1.5 the watchdog restores; the final model the run reports is never worse
    on validation than its best-validation weights."""
    from gazeneg.data.splits import load_splits
    from gazeneg.model.metrics import error_metrics
    from gazeneg.training.loop import evaluate, fit, tensors

    cfg = fast_config(tiny_dataset, epochs=8, optimizer="sgd", lr=0.02, loss="mse", ema=0.0, neg_mode="literal",
                      neg_policy="random", neg_lambda=1.5, watchdog=True, watchdog_patience=1, save_checkpoints=False)
    sp = load_splits(cfg)
    res = fit(cfg, sp, log=lambda *_: None)
    assert res.watchdog_events
    final = copy.deepcopy(res.model)
    final.load_state_dict(res.final_state)
    val_err = error_metrics(evaluate(final, tensors(sp.val), torch.device("cpu")), sp.val.targets)["mean_error_cells"]
    assert val_err <= res.state.best_err + 1e-6


def test_cap_norm_scales_only_above_the_cap():
    a, b = torch.tensor([3.0]), torch.tensor([4.0])
    assert cap_norm_([a, b], 1.0) and torch.allclose(torch.cat([a, b]), torch.tensor([0.6, 0.8]))
    c = torch.tensor([0.3])
    assert not cap_norm_([c], 1.0) and c.item() == pytest.approx(0.3)


def test_guard_counter_round_trips_through_a_checkpoint_dict():
    c = GuardCounter()
    c.add("error_bound", 3)
    c.seen, c.steps = 10, 2
    c.add_step_ratio(0.9)
    d = GuardCounter()
    d.load(c.state())
    assert d.as_dict() == c.as_dict() and d.as_dict()["guard_neg_step_ratio"] == pytest.approx(0.9)


def test_watchdog_runaway_triggers_at_once():
    """Predictions off the screen are a divergence in progress: no waiting for `patience` epochs."""
    from gazeneg import grid

    m = create_model("mlp")
    wd = Watchdog(pct=50, patience=3)
    wd.observe(1.0, m)
    assert wd.should_trigger(grid.DIAGONAL - 0.1, False, runaway=grid.DIAGONAL) is None  # only a bad epoch
    assert "off the screen" in wd.should_trigger(1e6, False, runaway=grid.DIAGONAL)


@pytest.mark.parametrize("watchdog", [True, False])
def test_naive_lambda_above_one_never_writes_a_non_finite_checkpoint(tiny_dataset, tmp_path, watchdog):
    """Lambda = 3 with the literal negative step diverges; with the watchdog on, training is restored
    and goes on; either way every checkpoint on disk holds finite weights and loads as data."""
    import json

    from gazeneg.model.checkpoint import all_finite, read_checkpoint
    from gazeneg.training.loop import run

    cfg = fast_config(tiny_dataset, tmp_path / "runs", epochs=6, optimizer="sgd", lr=0.05, loss="mse",
                      neg_mode="literal", neg_policy="random", neg_lambda=3.0, neg_distance=2.0, watchdog=watchdog,
                      watchdog_patience=1)
    rd = run(cfg, argv=["x"])
    ckpts = sorted(rd.glob("*.pt"))
    assert ckpts
    for p in ckpts:
        assert all_finite(read_checkpoint(p)["state_dict"]), p
    m = json.loads((rd / "metrics.json").read_text())
    if watchdog:
        assert m["watchdog_events"] and all(e["restored"] for e in m["watchdog_events"])
        assert m["watchdog_events"][0]["lambda_after"] == 1.5
    else:
        assert m["diverged"] and "non-finite" in m["stop_reason"]


def _const_model(value: float):
    m = create_model("mlp")
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(value)
    return m


def _weights_equal(m, sd) -> bool:
    return all(torch.equal(v, sd[k]) for k, v in m.state_dict().items())


def test_watchdog_first_snapshot_carries_the_initial_error_so_a_runaway_epoch_is_never_best():
    """The sgd:guard_watchdog failure: 4.81 cells at the start, 15.51 after epoch 0. The run-away epoch
    must not become the best state the restores go back to; the initial weights are."""
    m = _const_model(0.01)
    init = copy.deepcopy(m.state_dict())
    wd = Watchdog(pct=50, patience=1, absolute=6.0)
    wd.snapshot(m, 4.81)
    assert wd.best_err == 4.81
    with torch.no_grad():
        next(m.parameters()).add_(1.0)      # the run-away epoch's weights
    wd.observe(15.51, m)
    assert wd.best_err == 4.81 and _weights_equal(_const_model(0.01), wd.best_weights)
    reason = wd.should_trigger(15.51, False)
    assert reason
    wd.restore(m, [], epoch=0, reason=reason, lam=1.5)
    assert _weights_equal(m, init)


def test_watchdog_never_accepts_an_epoch_worse_than_the_centre_guess():
    m = _const_model(0.01)
    wd = Watchdog(pct=50, patience=2, absolute=5.0)
    wd.snapshot(m, math.inf)                # a fresh initialisation: no usable starting error
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    wd.observe(5.5, m)                      # worse than always guessing the centre: not a best
    assert wd.best_err == math.inf and _weights_equal(_const_model(0.01), wd.best_weights)
    wd.observe(4.0, m)
    assert wd.best_err == 4.0 and _weights_equal(m, wd.best_weights)


def test_watchdog_falls_back_to_the_initial_weights_when_one_state_fails_twice():
    m = _const_model(0.01)
    init = copy.deepcopy(m.state_dict())
    wd = Watchdog(pct=50, patience=1, absolute=5.0)
    wd.snapshot(m, 3.0)
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    wd.observe(2.0, m)                      # a better state S
    s_state = copy.deepcopy(m.state_dict())
    wd.restore(m, [], epoch=3, reason="x", lam=1.0)       # S fails once: back to S
    assert _weights_equal(m, s_state) and wd.events[-1]["restored_to"] == "best"
    with torch.no_grad():
        next(m.parameters()).add_(5.0)
    wd.restore(m, [], epoch=4, reason="x", lam=0.5)       # S fails twice: back to the initial weights
    assert _weights_equal(m, init) and wd.events[-1]["restored_to"] == "initial"
    assert wd.best_err == 3.0


def test_watchdog_fine_tune_run_away_reports_no_worse_than_its_start(tiny_dataset):
    """A fine-tune that runs away in its first epoch (SGD, literal Lambda = 1.5 at a large LR) with the
    watchdog on reports a final model no worse on validation than the weights it started from."""
    from gazeneg.config import from_dict
    from gazeneg.data.splits import load_splits
    from gazeneg.model.metrics import error_metrics
    from gazeneg.training.loop import evaluate, fit, tensors

    base = dict(data=str(tiny_dataset), progress=False, augment=False, flip=False, model="mlp", val_subjects=1,
                test_subjects=1, loss="mse", ema=0.0, save_checkpoints=False)
    cfg0 = from_dict(dict(base, epochs=6, optimizer="adamw", lr=2e-3))
    sp = load_splits(cfg0)
    start = fit(cfg0, sp, log=lambda *_: None)
    init = copy.deepcopy(start.model.state_dict())
    val = tensors(sp.val)
    init_err = error_metrics(evaluate(start.model, val, torch.device("cpu")), sp.val.targets)["mean_error_cells"]
    cfg = from_dict(dict(base, epochs=5, optimizer="sgd", lr=0.2, neg_mode="literal", neg_policy="random",
                         neg_lambda=1.5, watchdog=True, watchdog_patience=1))
    res = fit(cfg, sp, log=lambda *_: None, init_state=init)
    final = copy.deepcopy(res.model)
    final.load_state_dict(res.final_state)
    err = error_metrics(evaluate(final, val, torch.device("cpu")), sp.val.targets)["mean_error_cells"]
    assert err <= init_err + 1e-6
