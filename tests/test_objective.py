"""The wrong-label objective as units: its guards, gradient cap, schedule, the prediction-side arm's
geometry, the Huber pairing, and the classification terms."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gazeneg import grid, seeding
from gazeneg.config import ConfigError, TrainConfig, from_dict
from gazeneg.model.losses import complement_nll, negative_objective, point_loss
from gazeneg.study.sweep import SweepConfig, all_arms, run_config
from gazeneg.wronglabels.objective import WrongLabelObjective
from tests.conftest import fast_config


def _obj(**kw) -> WrongLabelObjective:
    base = dict(neg_mode="combined", neg_lambda=0.5, loss="mse", optimizer="sgd")
    return WrongLabelObjective.from_config(from_dict({**base, **kw}), n_train=64)


# ----------------------------------------------------------------------------------------------
# The original scheme: w on the prediction's side, every pair it lets through pulls f toward y


PRED_SIDE = [a for a in all_arms() if a.overrides.get("neg_policy") == "prediction_side"]


@pytest.mark.parametrize("arm", PRED_SIDE, ids=lambda a: a.name)
@settings(max_examples=300, deadline=None)
@given(y=st.tuples(st.floats(-0.5, grid.ROW_MAX + 0.5), st.floats(-0.5, grid.COL_MAX + 0.5)),
       r=st.floats(0.01, 3.0), ang=st.floats(0, 2 * math.pi))
def test_prediction_side_pairs_always_point_toward_the_truth(arm, y, r, ang):
    """For every pair the arm's objective lets through, <f - w, y - f> > 0: stepping away from w moves f
    toward y, also next to the screen's edges (a 'reflect' boundary breaks this)."""
    cfg = run_config(arm, 0, 1, SweepConfig())
    obj = WrongLabelObjective.from_config(cfg, n_train=1)
    yt = torch.tensor([y], dtype=torch.float32)
    f = yt + r * torch.tensor([[math.cos(ang), math.sin(ang)]], dtype=torch.float32)
    w, valid = obj.generator(yt, torch.tensor([0]), step=0, f=f)
    mask = valid & (torch.linalg.vector_norm(f - yt, dim=1) < cfg.guard_bound)[:, None]
    dot = ((f[:, None, :] - w) * (yt - f)[:, None, :]).sum(-1)
    # Exactly: <f - w, y - f> = |f - y| (D - |f - y|) > 0; at |f - y| = D to float32 rounding it is ~0.
    assert bool((dot[mask] > (0 if abs(r - cfg.guard_bound) > 1e-3 else -1e-4)).all())


# ----------------------------------------------------------------------------------------------
# Huber: refused beside a quadratic negative term, bounded with a Huber-shaped one


def test_huber_with_a_quadratic_negative_term_is_refused():
    with pytest.raises(ConfigError, match="unbounded below"):
        from_dict({"loss": "huber", "neg_loss": "mse", "neg_mode": "combined", "neg_lambda": 0.3})
    assert TrainConfig().loss == "huber" and _obj(loss="huber").resolved_neg_loss == "huber"   # "match" pairs them
    assert _obj(loss="mse").resolved_neg_loss == "mse"


def _descend_point(true_loss, neg_loss, lam, start=-3.0, steps=1200, lr=0.1):
    """Minimise true_loss(|f - y|) - lam * neg(f, w) over a free point f, w = y + (2, 0), from f = y + (start, 0)."""
    y = torch.tensor([[4.0, 7.5]])
    w = (y + torch.tensor([2.0, 0.0]))[:, None, :]
    f = (y + torch.tensor([[start, 0.1]])).clone().requires_grad_(True)
    opt = torch.optim.SGD([f], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (point_loss(f, y, true_loss) - lam * negative_objective(f, w, neg_loss)).sum().backward()
        opt.step()
        if not torch.isfinite(f).all() or (f - y).norm() > 1e3:
            return math.inf
    return float((f - y)[0, 0].detach())


def test_huber_pairing_settles_at_the_predicted_bias_and_mse_pairing_runs_away():
    """docs/science.md section 2: under Huber + Huber-shaped repulsion the one-sided fixed point is lambda
    cells away from w; Huber beside a quadratic negative term is unbounded below (a start 3 cells from y
    on the far side of w runs away; near y a local minimum may hold it while lambda/(1 - lambda) D < 1);
    MSE + MSE gives -lambda/(1 - lambda) D."""
    for lam in (0.3, 0.5):
        assert _descend_point("huber", "huber", lam) == pytest.approx(-lam, abs=1e-3)
        assert _descend_point("huber", "mse", lam) == math.inf
        assert _descend_point("mse", "mse", lam) == pytest.approx(-lam / (1 - lam) * 2.0, abs=1e-3)


# ----------------------------------------------------------------------------------------------
# Guards inside the objective


def test_error_bound_and_direction_guards_count_what_they_block():
    obj = _obj(neg_policy="one_sided", guard_bound=1.0, guard_direction=True)
    y = torch.tensor([[2.0, 11.0]] * 4)
    # errors 0.5 (down), 0.5 (up), 2.0 (down), 0 ... w is 2 cells straight down
    f = y + torch.tensor([[0.5, 0.0], [-0.5, 0.0], [2.0, 0.0], [0.0, 0.3]])
    val = obj.negative_term(f, y, None, 0)
    c = obj.counter.as_dict()
    assert c["guard_pairs_seen"] == 4
    assert c["guard_error_bound_fired"] == 1          # |f - y| = 2.0 >= B
    assert c["guard_direction_fired"] == 2            # beyond y (up) and sideways-beyond: <f - w, y - f> <= 0
    w = y[:1] + torch.tensor([[2.0, 0.0]])
    assert float(val) == pytest.approx(0.5 * float(((f[:1] - w) ** 2).sum()) / 4)


def test_combined_grad_cap_caps_only_the_negative_gradient():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    x, y = torch.randn(8, 3), torch.rand(8, 2) * 5
    params = list(lin.parameters())

    def grads(cap):
        obj = _obj(neg_policy="one_sided", guard_grad_cap=cap, neg_lambda=0.5)
        for p in params:
            p.grad = None
        f = lin(x)
        pos = point_loss(f, y, "mse").mean()
        obj.backward_combined(pos, f, y, None, 0, 0.5, params, lambda loss: loss.backward())
        return torch.cat([p.grad.flatten() for p in params]), obj.counter

    f = lin(x)
    gpos = torch.cat([g.flatten() for g in torch.autograd.grad(point_loss(f, y, "mse").mean(), params)])
    g_uncapped, c0 = grads(0.0)
    g_capped, c1 = grads(1e-3)
    assert c1.fired["grad_cap"] == 1 and c0.fired["grad_cap"] == 0 and c1.steps == 1
    assert float((g_capped - gpos).norm()) == pytest.approx(1e-3, rel=1e-4)      # the negative part, capped
    assert float((g_uncapped - gpos).norm()) > 1e-2


def test_lambda_schedule_and_warmup():
    obj = _obj(neg_lambda=0.4, neg_warmup_epochs=2, neg_lambda_schedule="linear", epochs=10)
    lams = [obj.lambda_at(e) for e in range(10)]
    assert lams[:2] == [0.0, 0.0]
    assert lams[2:6] == pytest.approx([0.1, 0.2, 0.3, 0.4])      # ramp over (10 - 2) // 2 = 4 epochs
    assert lams[6:] == pytest.approx([0.4] * 4)
    assert _obj(neg_mode="off").lambda_at(5) == 0.0


def test_negative_step_on_other_photos_uses_other_indices(tiny_dataset, monkeypatch):
    from gazeneg.data.splits import load_splits
    from gazeneg.training.loop import fit

    seen = []
    real = WrongLabelObjective.negative_term

    def spy(self, f, y, idx, step):
        seen.append(idx.clone())
        return real(self, f, y, idx, step)

    monkeypatch.setattr(WrongLabelObjective, "negative_term", spy)
    cfg = fast_config(tiny_dataset, loss="mse", optimizer="sgd", lr=1e-3, ema=0.0, batch_size=64, neg_mode="literal",
                      neg_lambda=0.1, neg_policy="random", neg_other_photos=True, save_checkpoints=False)
    sp = load_splits(cfg)
    res = fit(cfg, sp, log=lambda *_: None)
    order = torch.randperm(len(sp.train), generator=seeding.torch_generator(cfg.seed, "order", 0))
    assert len(seen) == res.state.guards.steps == math.ceil(len(sp.train) / 64)
    assert not torch.equal(seen[0], order[:64])                      # not the batch the true step used
    assert sorted(torch.cat(seen).tolist()) == list(range(len(sp.train)))   # but every photo once an epoch


# ----------------------------------------------------------------------------------------------
# Classification


def test_complement_only_and_confidence_guard():
    obj = WrongLabelObjective.from_config(from_dict({"head": "classification", "cls_complement_only": True,
                                                     "neg_k": 5}), n_train=4)
    logits = torch.randn(4, grid.N_CELLS)
    true = torch.tensor([0, 17, 77, 143])
    term = obj.classification_term(logits, true, torch.arange(4), 0, lam=0.0)   # weight 1 whatever lambda
    assert term is not None and float(term) > 0
    guarded = WrongLabelObjective.from_config(from_dict({"head": "classification", "cls_neg_weight": 1.0,
                                                         "cls_neg_confidence": 0.5}), n_train=4)
    confident = torch.zeros(4, grid.N_CELLS)
    confident[0, 0] = confident[1, 17] = 20.0   # samples 0 and 1 are confident in their true cell
    val = guarded.classification_term(confident, true, torch.arange(4), 0, lam=1.0)
    assert guarded.counter.fired["confidence"] == 2
    assert float(val) >= 0 and torch.isfinite(val)
    wrong = complement_nll(confident, torch.tensor([5, 5, 5, 5]), reduction="none")
    assert torch.isfinite(wrong).all()


def test_watchdog_action_stop_ends_the_wrong_labels(tiny_dataset):
    from gazeneg.data.splits import load_splits
    from gazeneg.training.loop import fit

    cfg = fast_config(tiny_dataset, epochs=5, loss="mse", optimizer="sgd", lr=0.05, ema=0.0, neg_mode="literal",
                      neg_lambda=3.0, neg_policy="random", watchdog=True, watchdog_patience=1, watchdog_action="stop",
                      save_checkpoints=False)
    res = fit(cfg, load_splits(cfg), log=lambda *_: None)
    assert res.watchdog_events and res.watchdog_events[0]["lambda_after"] == 0.0
    assert all(h["lambda"] == 0.0 for h in res.state.history[res.watchdog_events[0]["epoch"] + 1:])
    assert np.isfinite([h["val_mean_error_cells"] for h in res.state.history]).all()


def _adam_head():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    return lin, torch.optim.AdamW(lin.parameters(), lr=1e-2, weight_decay=0.0)


def test_the_recipe_as_asked_uses_the_training_optimizer_and_gives_it_its_lr_back():
    """neg_optimizer "same": the negative step is taken by the training optimizer itself (its moments get the
    wrong-label gradient), at LR -lambda x LR, and the optimizer's own LR comes back after it; "separate"
    leaves the training optimizer's state alone."""
    from gazeneg.config import from_dict
    from gazeneg.wronglabels.objective import WrongLabelObjective

    x, y = torch.randn(8, 3), torch.rand(8, 2) * 4 + 2
    for which in ("same", "separate"):
        lin, opt = _adam_head()
        cfg = from_dict(dict(neg_mode="literal", neg_policy="random", neg_lambda=0.5, neg_optimizer=which,
                             optimizer="adamw", loss="mse"))
        obj = WrongLabelObjective.from_config(cfg, n_train=8)
        opt.zero_grad()
        (0.5 * ((lin(x) - y) ** 2).sum(1).mean()).backward()
        opt.step()
        m_before = [opt.state[p]["exp_avg"].clone() for p in lin.parameters()]
        params = list(lin.parameters())
        neg_opt = obj.pick_neg_optimizer(opt, lambda ps=params: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.0))
        assert (neg_opt is opt) == (which == "same")
        obj.literal_step(lin, neg_opt, x, None, y, torch.arange(8), 0, 0.5, 1e-2, lambda loss: loss.backward(),
                         lambda xb, fb, m=lin: m(xb))
        assert opt.param_groups[0]["lr"] == 1e-2
        changed = any(not torch.equal(opt.state[p]["exp_avg"], m) for p, m in zip(lin.parameters(), m_before,
                                                                                   strict=True))
        assert changed == (which == "same")


def test_every_sweep_family_measures_all_three_implementations_and_says_which():
    from gazeneg.study.sweep import all_arms

    arms = {a.name: a for a in all_arms()}
    for fam in ("sgd", "adam"):
        assert "second optimizer" in arms[f"{fam}:original_pred_side"].implementation
        assert "training optimizer itself" in arms[f"{fam}:original_same_opt"].implementation
        assert "combined" in arms[f"{fam}:original_combined"].implementation
        # the literal step's second step of lambda x lr is matched by the baseline at (1 + lambda) x lr
        assert arms[f"{fam}:original_pred_side"].same_as == f"{fam}:lr_control_1.5"
        assert arms[f"{fam}:lr_control_1.5"].overrides["lr_scale"] == 1.5
        # repulsion never reflects a wrong point to within the margin of y
        assert arms[f"{fam}:repulsion"].overrides["neg_boundary"] == "keep"
    from gazeneg.study.personal import personal_arms

    p = {a.name: a for a in personal_arms()}
    assert p["ft:original_l0.5_B2_same"].overrides["neg_optimizer"] == "same"
    assert p["ft:original_l0.5_B2_combined"].overrides["neg_mode"] == "combined"


# ----------------------------------------------------------------------------------------------
# Each option written once: the objective reads the config's fields by name


METHOD_PREFIXES = ("neg_", "guard_", "watchdog", "cls_neg_", "cls_complement_only")


def _non_default_config() -> TrainConfig:
    """A valid config with every plain field the objective copies away from its default, so a field read
    from the wrong place (or left at its default) shows."""
    return from_dict(dict(neg_mode="literal", neg_lambda=0.7, neg_lambda_schedule="linear", neg_distance=3.0, neg_k=2,
                          neg_policy="symmetric", neg_warmup_epochs=1, neg_other_photos=True, neg_optimizer="same",
                          guard_bound=2.5, guard_bound_norm="max", guard_direction=True, guard_grad_cap=0.3,
                          watchdog=True, watchdog_pct=20.0, watchdog_patience=3, watchdog_action="stop",
                          cls_neg_loss="negated_ce", cls_neg_confidence=0.4, cls_neg_uniform=True, epochs=7, seed=5,
                          loss="mse", neg_loss="repulsion", neg_margin=1.5))


def test_every_method_option_is_read_by_name_or_listed_as_derived():
    """Each wrong-label option of TrainConfig reaches the objective exactly one way: a field of the same name
    (config_values copies it), or a source of a value the objective derives (DERIVED). A new option, or a
    renamed field, that is neither fails here; so does a derived value that names a field TrainConfig lacks."""
    from gazeneg.wronglabels.objective import DERIVED

    config = {f.name for f in dataclasses.fields(TrainConfig)}
    objective = {f.name for f in dataclasses.fields(WrongLabelObjective)}
    copied = objective - set(DERIVED)
    assert set(DERIVED) <= objective
    assert copied <= config, f"objective fields named unlike any config field: {sorted(copied - config)}"
    sources = {s for names in DERIVED.values() for s in names}
    assert sources <= config, sorted(sources - config)
    method = {n for n in config if n.startswith(METHOD_PREFIXES)}
    assert method - copied - sources == set(), "wrong-label options the objective never reads"


def test_copied_fields_hold_the_config_values_and_defaults():
    from gazeneg.wronglabels.objective import DERIVED

    cfg = _non_default_config()
    obj = WrongLabelObjective.from_config(cfg, n_train=10)
    cls_cfg = from_dict(dict(head="classification", cls_complement_only=True))
    cls_obj = WrongLabelObjective.from_config(cls_cfg, n_train=10)
    copied = [f.name for f in dataclasses.fields(WrongLabelObjective) if f.name not in DERIVED]
    assert len(copied) >= 20
    for name in copied:
        assert getattr(obj, name) == getattr(cfg, name) and getattr(cls_obj, name) == getattr(cls_cfg, name), name
        assert any(getattr(o, name) != getattr(TrainConfig(), name) for o in (obj, cls_obj)), f"{name} untried"
    # the derived values, from their sources
    assert (obj.mode, obj.lam, obj.resolved_neg_loss, obj.margin, obj.cell_policy, obj.n_train) == (
        "literal", 0.7, "repulsion", 1.5, "symmetric", 10)
    assert obj.generator is not None and obj.generator.k == 2
    cls = WrongLabelObjective.from_config(from_dict(dict(head="classification", cls_neg_weight=0.4,
                                                         neg_policy="prediction_side")), n_train=3)
    assert (cls.mode, cls.lam, cls.generator, cls.cell_policy) == ("off", 0.4, None, "random")
    # WrongLabelObjective() is the objective of the default config: its defaults are TrainConfig's
    assert WrongLabelObjective() == WrongLabelObjective.from_config(TrainConfig(), n_train=0)


def test_a_field_named_unlike_any_config_field_is_refused():
    from gazeneg.config import config_values

    @dataclasses.dataclass
    class Drifted:
        neg_lambda: float = 0.0
        guard_error_bound: float = 0.0   # not a TrainConfig field: a hand copy under a new name would hide here

    with pytest.raises(TypeError, match="guard_error_bound is not a TrainConfig field"):
        config_values(Drifted, TrainConfig())
    assert config_values(Drifted, TrainConfig(neg_lambda=0.5), derived=("guard_error_bound",)) == {"neg_lambda": 0.5}
