"""complement_nll against the textbook formula, at extreme leads in float32, and its error messages;
the naive clamped / log1mexp forms it replaces, shown broken; negated_ce."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gazeneg.model.losses import complement_nll, negated_ce

C = 144


def textbook(logits: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """Per-sample -log(1 - sum_{l in S} p_l) straight from the definition (fine in float64 at small leads)."""
    p = torch.softmax(logits, dim=1)
    idx = wrong[:, None] if wrong.ndim == 1 else wrong
    mask = torch.zeros_like(p, dtype=torch.bool).scatter_(1, idx, True)
    return -torch.log1p(-(p * mask).sum(1))


def lead_logits(lead: float, wrong: int = 37, n: int = 1, dtype=torch.float32) -> torch.Tensor:
    """(n, C) logits: zeros except `lead` at class `wrong`."""
    x = torch.zeros(n, C, dtype=dtype)
    x[:, wrong] = lead
    return x


def lead_reference(lead: float) -> tuple[float, float, float]:
    """Exact loss, gradient on f_l and gradient on every other f_j, for one sample with the wrong
    logit at `lead` and the C - 1 others at 0 (float64, with exp(-lead) kept explicitly)."""
    e = math.exp(-lead)  # underflows to 0.0 for lead 1e4, which is the exact limit
    loss = lead - math.log(C - 1) + math.log1p((C - 1) * e)  # log(e^L + C - 1) - log(C - 1)
    p_l = 1.0 / (1.0 + (C - 1) * e)
    # -p_l p_j / (1 - p_l) with p_j = p_l e and 1 - p_l = (C - 1) p_l e: -p_l / (C - 1)
    return loss, p_l, -p_l / (C - 1)


# ---- agreement with the formula --------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 20),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.1, 8.0),
)
def test_matches_textbook_formula_float64(n, c, k, seed, scale):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    wrong = torch.randint(0, c, (n, k), generator=g)
    if k == 1:
        wrong = wrong[:, 0]
    covered = torch.zeros(n, c, dtype=torch.bool).scatter_(1, wrong.reshape(n, -1), True)
    if bool(covered.all(1).any()):  # every class wrong: an error, tested separately
        return
    want = textbook(logits, wrong)
    # the textbook form loses ~1e-16 / (1 - p_S) relative precision; stay where it is trustworthy
    assume(bool((want < 18).all()))
    got = complement_nll(logits, wrong, reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(complement_nll(logits, wrong), want.mean(), rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(complement_nll(logits, wrong, reduction="sum"), want.sum(), rtol=1e-7, atol=1e-12)


def test_several_wrong_classes_equal_minus_log_one_minus_their_sum():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, C, generator=g, dtype=torch.float64)
    wrong = torch.tensor([[0, 1, 143], [17, 18, 19], [5, 100, 6], [2, 3, 4], [140, 141, 142]])
    p = torch.softmax(logits, 1)
    want = -torch.log(1 - p.gather(1, wrong).sum(1))
    torch.testing.assert_close(complement_nll(logits, wrong, reduction="none"), want)


def test_duplicates_in_a_row_count_once():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, C, generator=g, dtype=torch.float64)
    with_dups = torch.tensor([[7, 7, 9], [0, 0, 0], [143, 12, 143]])
    without = [[7, 9], [0], [143, 12]]
    got = complement_nll(logits, with_dups, reduction="none")
    for i, row in enumerate(without):
        want = complement_nll(logits[i : i + 1], torch.tensor([row]), reduction="none")
        torch.testing.assert_close(got[i : i + 1], want)
    p = torch.softmax(logits, 1)
    assert float(got[1]) == pytest.approx(-math.log(1 - float(p[1, 0])), rel=1e-12)


def test_single_column_and_flat_wrong_agree():
    logits = torch.randn(4, C, generator=torch.Generator().manual_seed(5))
    wrong = torch.tensor([3, 140, 0, 77])
    torch.testing.assert_close(complement_nll(logits, wrong), complement_nll(logits, wrong[:, None]))


# ---- extreme leads in float32 -------------------------------------------------------------------

@pytest.mark.parametrize("lead", [20.0, 100.0, 1e4])
def test_float32_exact_at_large_leads(lead):
    logits = lead_logits(lead, wrong=37, n=2).requires_grad_(True)
    loss = complement_nll(logits, torch.tensor([37, 37]))
    (grad,) = torch.autograd.grad(loss, logits)
    loss = loss.detach()
    ref_loss, ref_gl, ref_gj = lead_reference(lead)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(ref_loss, rel=1e-6)
    assert ref_loss == pytest.approx(lead - math.log(C - 1), abs=1e-6)  # the large-lead limit
    # mean over the 2 samples halves each gradient
    assert float(grad[0, 37]) == pytest.approx(ref_gl / 2, rel=1e-5)
    others = torch.cat([grad[:, :37], grad[:, 38:]], dim=1)
    torch.testing.assert_close(others, torch.full_like(others, ref_gj / 2), rtol=1e-5, atol=0)
    assert float(grad[0, 37]) != 0.0
    # the gradient of any softmax-based loss sums to zero across classes
    assert abs(float(grad.sum())) < 1e-6


def test_float32_gradient_matches_float64_textbook_at_moderate_leads():
    g = torch.Generator().manual_seed(6)
    base = torch.randn(6, C, generator=g, dtype=torch.float64)
    wrong = torch.tensor([0, 10, 50, 99, 120, 143])
    leads = torch.tensor([0.0, 1.0, 3.0, 5.0, 8.0, 10.0], dtype=torch.float64)
    base[torch.arange(6), wrong] = base.max(1).values + leads

    x64 = base.clone().requires_grad_(True)
    (g64,) = torch.autograd.grad(textbook(x64, wrong).mean(), x64)
    x32 = base.float().requires_grad_(True)
    (g32,) = torch.autograd.grad(complement_nll(x32, wrong), x32)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-7)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(7)
    logits = (torch.randn(3, 9, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    wrong = torch.tensor([[1, 4], [0, 0], [8, 2]])
    assert torch.autograd.gradcheck(lambda x: complement_nll(x, wrong, reduction="none"), (logits,))
    assert torch.autograd.gradcheck(lambda x: complement_nll(x, wrong[:, 0], reduction="sum"), (logits,))


def test_gradient_fades_as_the_wrong_class_becomes_unlikely():
    """The bounded loss stops pushing by itself: |grad| = 2 p_l -> 0 as the wrong logit falls."""
    norms = []
    for lead in [0.0, -5.0, -10.0, -20.0]:
        x = lead_logits(lead, dtype=torch.float64).requires_grad_(True)
        (grad,) = torch.autograd.grad(complement_nll(x, torch.tensor([37])), x)
        p_l = math.exp(lead) / (math.exp(lead) + C - 1)
        assert float(grad.abs().sum()) == pytest.approx(2 * p_l, rel=1e-9)
        norms.append(float(grad.abs().sum()))
    assert norms == sorted(norms, reverse=True) and norms[-1] < 1e-10


# ---- the naive forms it replaces ----------------------------------------------------------------

def test_naive_clamped_form_has_zero_gradient_at_lead_20():
    lead = 20.0  # over the logsumexp of the others: raw gap 20 + log(143)
    raw = lead + math.log(C - 1)
    x = lead_logits(raw).requires_grad_(True)
    naive = -torch.log(torch.clamp(1 - torch.softmax(x, 1)[:, 37], min=1e-5)).mean()
    (g_naive,) = torch.autograd.grad(naive, x)
    assert float(g_naive.abs().max()) == 0.0
    assert naive.item() == pytest.approx(math.log(1e5), rel=1e-6)  # stuck on the clamp, true loss 20

    x = lead_logits(raw).requires_grad_(True)
    loss = complement_nll(x, torch.tensor([37]))
    (g,) = torch.autograd.grad(loss, x)
    assert loss.item() == pytest.approx(20.0, rel=1e-6)
    assert float(g[0, 37]) == pytest.approx(1.0, rel=1e-6)


def test_naive_log1mexp_form_is_infinite_at_lead_20():
    x = lead_logits(20.0 + math.log(C - 1)).requires_grad_(True)
    naive = -torch.log(-torch.expm1(torch.log_softmax(x, 1)[:, 37])).mean()
    (g,) = torch.autograd.grad(naive, x)
    assert math.isinf(naive.item()) and bool(torch.isnan(g).any())
    assert math.isfinite(complement_nll(x, torch.tensor([37])).item())


# ---- negated_ce ---------------------------------------------------------------------------------

def test_negated_ce_is_plus_log_softmax_at_the_wrong_class():
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(4, C, generator=g, dtype=torch.float64)
    wrong = torch.tensor([1, 2, 3, 143])
    log_p = torch.log_softmax(logits, 1)[torch.arange(4), wrong]
    torch.testing.assert_close(negated_ce(logits, wrong, reduction="none"), log_p)
    torch.testing.assert_close(negated_ce(logits, wrong), log_p.mean())
    torch.testing.assert_close(
        negated_ce(logits, wrong), -torch.nn.functional.cross_entropy(logits, wrong)
    )
    multi = torch.tensor([[1, 5], [2, 2], [3, 0], [143, 7]])
    want = torch.log_softmax(logits, 1).gather(1, multi).mean(1)
    torch.testing.assert_close(negated_ce(logits, multi, reduction="none"), want)


def test_negated_ce_is_unbounded_and_its_gradient_never_fades():
    for lead in [-5.0, -50.0, -500.0]:
        x = lead_logits(lead, dtype=torch.float64).requires_grad_(True)
        loss = negated_ce(x, torch.tensor([37]))
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() < lead + 1e-9  # log p_l <= lead - log(C - 1) -> -inf
        assert float(g[0, 37]) == pytest.approx(1.0, abs=1e-2)  # 1 - p_l: pushes f_l down forever


# ---- bad inputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [complement_nll, negated_ce])
def test_out_of_range_index_is_named(fn):
    logits = torch.zeros(3, C)
    with pytest.raises(ValueError, match="144"):
        fn(logits, torch.tensor([0, 144, 2]))
    with pytest.raises(ValueError, match="-1"):
        fn(logits, torch.tensor([[0, 1], [-1, 2], [3, 4]]))


@pytest.mark.parametrize("fn", [complement_nll, negated_ce])
def test_non_integer_wrong_is_a_type_error(fn):
    with pytest.raises(TypeError, match="float32"):
        fn(torch.zeros(2, C), torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="bool"):
        fn(torch.zeros(2, C), torch.tensor([True, False]))
    with pytest.raises(TypeError, match="list"):
        fn(torch.zeros(2, C), [1, 2])
    with pytest.raises(TypeError, match="logits"):
        fn(torch.zeros(2, C, dtype=torch.long), torch.tensor([1, 2]))


@pytest.mark.parametrize("fn", [complement_nll, negated_ce])
def test_shape_mismatch_names_both_shapes(fn):
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 144\)"):
        fn(torch.zeros(2, C), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"\(2, 0\).*\(2, 144\)"):
        fn(torch.zeros(2, C), torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(2, 1, 1\)"):
        fn(torch.zeros(2, C), torch.zeros(2, 1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(144,\)"):
        fn(torch.zeros(C), torch.tensor([1]))


@pytest.mark.parametrize("fn", [complement_nll, negated_ce])
def test_bad_reduction(fn):
    with pytest.raises(ValueError, match="'avg'"):
        fn(torch.zeros(2, C), torch.tensor([1, 2]), reduction="avg")


def test_all_classes_wrong_is_a_clear_error():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="every one of the 3 classes.*sample 1"):
        complement_nll(logits, torch.tensor([[0, 0, 0], [2, 1, 0]]))


def test_reduction_none_shape_and_numpy_agreement():
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(5, C)) * 2
    wrong = rng.integers(0, C, size=5)
    got = complement_nll(torch.from_numpy(logits), torch.from_numpy(wrong), reduction="none").numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(got, -np.log1p(-p[np.arange(5), wrong]), rtol=1e-10)
