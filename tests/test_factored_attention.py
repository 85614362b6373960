"""AGaLiTe's key side: the chunked form with its hand-written backward equals the step-by-step
recurrence (values and gradients), across chunk boundaries, episode starts and the decay floor."""

from __future__ import annotations

import pytest
import torch

from conftest import needs_compiler
from sb3_rtx.cells import factored_attention
from sb3_rtx.cells.compiled_kernels import compiling_failed
from sb3_rtx.cells.factored_attention import (
    DECAY_FLOOR,
    factored_gated_attention,
    factored_gated_attention_sequential,
)


def random_inputs(seq_len, batch=4, heads=2, outer_dim=3, inner_dim=5, n_values=3, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def uniform(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    factors = [uniform(seq_len, batch, heads, dim) for dim in (outer_dim, inner_dim) * 3]
    weights = torch.randn(seq_len, batch, n_values, generator=gen, dtype=torch.float64)
    starts = (uniform(seq_len, batch) < 0.15).to(torch.float64)
    # a start at the first step, consecutive starts, one at the last step, none (as the batch allows)
    starts[0, 0] = 1.0
    starts[min(5, seq_len - 1) : 8, 1 % batch] = 1.0
    starts[-1, 2 % batch] = 1.0
    starts[:, -1] = 0.0
    state = torch.randn(batch, heads, n_values, outer_dim * inner_dim, generator=gen, dtype=torch.float64)
    return factors, weights, starts, state


@pytest.mark.parametrize("seq_len", [1, 2, 8, 9, 33])
@pytest.mark.parametrize("chunk_len", [1, 3, 8])
def test_chunked_form_equals_the_recurrence(seq_len, chunk_len):
    factors, weights, starts, state = random_inputs(seq_len)
    out, final = factored_gated_attention(*factors, weights, starts, state, chunk_len)
    want_out, want_final = factored_gated_attention_sequential(*factors, weights, starts, state)
    assert (out - want_out).abs().max() <= 1e-12
    assert (final - want_final).abs().max() <= 1e-12


@pytest.mark.parametrize("group_elements", [None, 1 * 4 * 2 * 8 * 15, 2 * 4 * 2 * 8 * 15, 3 * 8 * 15, "accelerator"])
def test_gradients_equal_autograd_through_the_recurrence(group_elements, monkeypatch, request):
    """Every factor and the incoming state, with gradients flowing into both outputs; with the
    chunks processed all at once (these sizes fit one group), in groups of 1 and 2 chunks (one chunk
    here: 4 envs * 2 heads * 8 steps * 15 features), and one chunk at a time split into blocks of 3
    of its 8 env-heads, as at larger sizes (the backward then rebuilds the states inside each group);
    and on the accelerators' path (one group, cumprod, chunk-to-chunk carries as doubling scans)."""
    if group_elements == "accelerator":
        request.getfixturevalue("accelerator_paths")
    elif group_elements is not None:
        monkeypatch.setattr(factored_attention, "GROUP_ELEMENTS", group_elements)
    factors, weights, starts, state = random_inputs(21)
    gen = torch.Generator().manual_seed(1)
    out_weights = torch.randn(21, 4, 2, 3, generator=gen, dtype=torch.float64)
    state_weights = torch.randn(state.shape, generator=gen, dtype=torch.float64)
    grads = []
    for fn in (factored_gated_attention, factored_gated_attention_sequential):
        leaves = [t.clone().requires_grad_() for t in (*factors, state)]
        out, final = fn(*leaves[:6], weights, starts, leaves[6])
        ((out * out_weights).sum() + (final * state_weights).sum()).backward()
        grads.append([leaf.grad for leaf in leaves])
    for got, want in zip(*grads, strict=True):
        assert (got - want).abs().max() <= 1e-12


@pytest.mark.filterwarnings("error:.*compile_training:RuntimeWarning")
@pytest.mark.parametrize(
    ("saturated", "group_elements"), [(False, 3 * 8 * 15), (True, 3 * 8 * 15), (False, None), (True, 2 * 4 * 2 * 8 * 15)]
)
def test_compiled_kernels_equal_autograd_through_the_recurrence(saturated, group_elements, monkeypatch):
    """compiled=True (each group's whole work, the carry from chunk to chunk included, as the fused
    kernels of compiled_key_side): outputs, the final state and the gradients of every factor and
    the incoming state equal autograd through the recurrence, with each chunk split into row blocks,
    with every chunk in one group and in groups of two chunks, and a padded last chunk; with gates
    of 1 for three steps, the kernels' floored form (no gradient where the floor holds)."""
    needs_compiler()
    if group_elements is not None:
        monkeypatch.setattr(factored_attention, "GROUP_ELEMENTS", group_elements)
    factors, weights, starts, state = random_inputs(21)
    if saturated:
        factors[4][3:6] = 1.0
        factors[5][3:6] = 1.0
    gen = torch.Generator().manual_seed(1)
    out_weights = torch.randn(21, 4, 2, 3, generator=gen, dtype=torch.float64)
    results = []
    for compiled in (True, None):
        leaves = [t.clone().requires_grad_() for t in (*factors, state)]
        if compiled:
            out, final = factored_gated_attention(*leaves[:6], weights, starts, leaves[6], compiled=True)
        else:
            out, final = factored_gated_attention_sequential(*leaves[:6], weights, starts, leaves[6])
        ((out * out_weights).sum() + final.sum()).backward()
        results.append((out.detach(), final.detach(), [leaf.grad for leaf in leaves]))
    assert not compiling_failed()  # the kernels ran compiled
    (out, final, got), (want_out, want_final, want) = results
    assert (out - want_out).abs().max() <= 1e-12
    assert (final - want_final).abs().max() <= 1e-12
    for got_grad, want_grad in zip(got, want, strict=True):
        assert (got_grad - want_grad).abs().max() <= 1e-10 * (1.0 + want_grad.abs().max())


def test_backward_matches_numerical_gradient():
    factors, weights, starts, state = random_inputs(7, batch=2, heads=1, outer_dim=2, inner_dim=2, n_values=2)
    starts[-1] = 0.0
    inputs = tuple(t.clone().requires_grad_() for t in (*factors, state))

    def fn(*leaves):
        return factored_gated_attention(*leaves[:6], weights, starts, leaves[6], 3)

    assert torch.autograd.gradcheck(fn, inputs)


def test_saturated_gates_hit_the_decay_floor_in_both_forms():
    """Gates of 1 would erase the state in one step; the floor keeps exp(-10) of it, on both paths,
    and the gradient treats the floored decay as constant, as autograd through the clamp does."""
    factors, weights, starts, state = random_inputs(12)
    factors[4][3:6] = 1.0  # gamma = 1 for three steps
    factors[5][3:6] = 1.0
    grads = []
    for fn in (factored_gated_attention, factored_gated_attention_sequential):
        leaves = [t.clone().requires_grad_() for t in (*factors, state)]
        out, _ = fn(*leaves[:6], weights, starts, leaves[6])
        out.sum().backward()
        grads.append((out.detach(), [leaf.grad for leaf in leaves]))
    (out, got), (want_out, want) = grads
    assert (out - want_out).abs().max() <= 1e-12
    for got_grad, want_grad in zip(got, want, strict=True):
        assert torch.isfinite(got_grad).all()
        assert (got_grad - want_grad).abs().max() <= 1e-10 * (1.0 + want_grad.abs().max())
    assert DECAY_FLOOR == pytest.approx(4.54e-5, rel=1e-2)


def test_float32_at_the_papers_size_agrees_with_float64():
    """The chunked products rescale by up to floor ** -(L/2) = exp(40); float32 must not overflow."""
    factors, weights, starts, state = random_inputs(64, batch=4, heads=2, outer_dim=8, inner_dim=16)
    factors[4][10:20] = 0.99999  # near-saturated gates: decays near the floor
    want, want_final = factored_gated_attention(*factors, weights, starts, state)
    got, got_final = factored_gated_attention(*(t.float() for t in factors), weights.float(), starts.float(), state.float())
    assert torch.isfinite(got).all()
    assert (got.double() - want).abs().max() <= 1e-4 * want.abs().max()
    assert (got_final.double() - want_final).abs().max() <= 1e-4 * want_final.abs().max()


def test_running_product_is_cumprod():
    """The CPU's running product (whole steps at a time) is ``cumprod`` along the chunk's steps."""
    x = torch.rand(5, 8, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(factored_attention.running_product(x), x.cumprod(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_gradients_equal_autograd_through_the_recurrence_on_cuda():
    """The accelerator's path (one group for the whole sequence, one cumprod kernel) on CUDA."""
    factors, weights, starts, state = (
        x.cuda() if torch.is_tensor(x) else tuple(f.cuda() for f in x) for x in random_inputs(21)
    )
    grads = []
    for fn in (factored_gated_attention, factored_gated_attention_sequential):
        leaves = [t.clone().requires_grad_() for t in (*factors, state)]
        out, final = fn(*leaves[:6], weights, starts, leaves[6])
        (out.square().sum() + final.sum()).backward()
        grads.append([out.detach(), *(leaf.grad for leaf in leaves)])
    for got, want in zip(*grads, strict=True):
        assert (got - want).abs().max() <= 1e-10
