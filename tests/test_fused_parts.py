"""The training path's hand-written parts besides the key side: AGaLiTe's value read (which
recomputes its scan in backward) and the activated projection (one backward for every factor)
equal plain autograd, in values and gradients, across episode starts, the decay floor and both
normalisers; and the projection names a bad column layout."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.nn import functional as F

from conftest import needs_compiler
from sb3_rtx.cells.activated_projection import activated_projection
from sb3_rtx.cells.compiled_kernels import compiling_failed
from sb3_rtx.cells.merged_read import merged_read
from sb3_rtx.cells.oscillating_values import oscillating_value_read, oscillating_value_read_sequential
from sb3_rtx.cells.scan import DECAY_FLOOR


def value_inputs(seq_len: int, batch: int = 3, heads: int = 2, r: int = 2, d: int = 5):
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    beta = rand(seq_len, batch, heads, d)
    beta[1, 0, 0, :2] = 1.0  # the decay floor holds here: no gradient through 1 - beta
    v = torch.randn(seq_len, batch, heads, d, generator=gen, dtype=torch.float64)
    weights = torch.randn(seq_len, batch, r, generator=gen, dtype=torch.float64)
    starts = (rand(seq_len, batch) < 0.2).to(torch.float64)
    starts[0, 0] = starts[-1, 1] = 1.0
    vt = torch.randn(batch, heads, r, d, generator=gen, dtype=torch.float64)
    kq = torch.randn(seq_len, batch, heads, r, generator=gen, dtype=torch.float64)
    sq = 0.2 + 2 * rand(seq_len, batch, heads)  # on both sides of the bounded normaliser's 1
    return beta, v, weights, starts, vt, kq, sq


@pytest.mark.parametrize("seq_len", [2, 17, 40])
@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("block_len", [None, 1, 7, "accelerator"])  # one block, walking back over blocks, or fewest ops
def test_value_read_equals_the_recurrence_in_values_and_gradients(seq_len, bounded, block_len, request):
    if block_len == "accelerator":
        request.getfixturevalue("accelerator_paths")
        block_len = None
    beta, v, weights, starts, vt, kq, sq = value_inputs(seq_len)
    gen = torch.Generator().manual_seed(1)
    read_weights = torch.randn(*beta.shape, generator=gen, dtype=torch.float64)
    final_weights = torch.randn(*vt.shape, generator=gen, dtype=torch.float64)
    results = []
    for fn in (functools.partial(oscillating_value_read, block_len=block_len), oscillating_value_read_sequential):
        leaves = [t.clone().requires_grad_() for t in (beta, v, vt, kq, sq)]
        read, final = fn(leaves[0], leaves[1], weights, starts, *leaves[2:], 1.5, bounded)
        ((read * read_weights).sum() + (final * final_weights).sum()).backward()
        results.append((read.detach(), final.detach(), [leaf.grad for leaf in leaves]))
    (read, final, grads), (want_read, want_final, want_grads) = results
    assert (read - want_read).abs().max() <= 1e-12
    assert (final - want_final).abs().max() <= 1e-12
    for name, grad, want in zip(("beta", "v", "vt", "kq", "sq"), grads, want_grads, strict=True):
        assert (grad - want).abs().max() <= 1e-10, name
    assert grads[0][1, 0, 0, :2].abs().max() > 0  # beta's write path still has a gradient at the floor


@pytest.mark.filterwarnings("error:.*compile_training:RuntimeWarning")
@pytest.mark.parametrize(("bounded", "block_len", "final_gradient"), [(False, None, True), (True, 7, True), (True, 7, False)])
def test_compiled_value_read_equals_the_recurrence(bounded, block_len, final_gradient):
    """compiled=True (each block's scan and read as the fused kernels of compiled_values): the reads,
    the final state and the gradients of beta, v, the incoming state, kq and sq equal autograd
    through the recurrence, in one block and walking back over blocks (a shorter last one), with
    and without a gradient of the final state, across episode starts and the decay floor."""
    needs_compiler()
    beta, v, weights, starts, vt, kq, sq = value_inputs(17)
    gen = torch.Generator().manual_seed(1)
    read_weights = torch.randn(*beta.shape, generator=gen, dtype=torch.float64)
    results = []
    compiled = functools.partial(oscillating_value_read, block_len=block_len, compiled=True)
    for fn in (compiled, oscillating_value_read_sequential):
        leaves = [t.clone().requires_grad_() for t in (beta, v, vt, kq, sq)]
        read, final = fn(leaves[0], leaves[1], weights, starts, *leaves[2:], 1.5, bounded)
        loss = (read * read_weights).sum() + (final.square().sum() if final_gradient else 0.0)
        loss.backward()
        results.append((read.detach(), final.detach(), [leaf.grad for leaf in leaves]))
    assert not compiling_failed()  # the kernels ran compiled
    (read, final, grads), (want_read, want_final, want_grads) = results
    assert (read - want_read).abs().max() <= 1e-12
    assert (final - want_final).abs().max() <= 1e-12
    for name, grad, want in zip(("beta", "v", "vt", "kq", "sq"), grads, want_grads, strict=True):
        assert (grad - want).abs().max() <= 1e-10 * (1.0 + want.abs().max()), name
    assert 1.0 - beta[1, 0, 0, 0] <= DECAY_FLOOR


@pytest.mark.parametrize("feature_map", ["softplus", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("values_gradient", ["dense", "transposed", "none"])
def test_activated_projection_equals_autograd_through_split_and_activations(feature_map, bias, values_gradient):
    """Every output and gradient as autograd's split-then-activate gives them, with or without a bias,
    and whether the values' (the identity run's only slice's) gradient arrives dense, transposed (not
    contiguous) or not at all."""
    gen = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(6, 2 * 9, bias=bias).double()
    columns = [(3, feature_map), (2, "identity"), (3, "sigmoid"), (1, feature_map)]
    x = torch.randn(4, 5, 6, generator=gen, dtype=torch.float64)
    activations = {"identity": lambda t: t, "sigmoid": torch.sigmoid, "softplus": F.softplus, "relu": torch.relu}
    out_weights = [torch.randn(4, 5, 2, width, generator=gen, dtype=torch.float64) for width, _ in columns]
    results = []
    for fused in (True, False):
        layer.zero_grad()
        leaf = x.clone().requires_grad_()
        if fused:
            outputs = activated_projection(leaf, layer, 2, columns)
        else:
            parts = layer(leaf).view(4, 5, 2, 9).split([width for width, _ in columns], dim=-1)
            outputs = [activations[kind](part) for part, (_, kind) in zip(parts, columns, strict=True)]
        # the last output unused: its gradient arrives as None
        loss = (outputs[0] * out_weights[0]).sum() + (outputs[2] * out_weights[2]).sum()
        if values_gradient == "dense":
            loss = loss + (outputs[1] * out_weights[1]).sum()
        elif values_gradient == "transposed":
            transposed = out_weights[1].transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
            loss = loss + (outputs[1] * transposed).sum()
        loss.backward()
        grads = [leaf.grad, layer.weight.grad.clone(), *([layer.bias.grad.clone()] if bias else [])]
        results.append([*(o.detach() for o in outputs), *grads])
    for got, want in zip(*results, strict=True):
        assert (got - want).abs().max() <= 1e-12


def test_activated_projection_names_a_bad_layout():
    layer = torch.nn.Linear(6, 10)
    with pytest.raises(ValueError, match="do not match the layer's 10 outputs"):
        activated_projection(torch.randn(2, 6), layer, 2, [(3, "sigmoid"), (3, "identity")])
    with pytest.raises(ValueError, match="unknown activation"):
        activated_projection(torch.randn(2, 6), layer, 2, [(3, "tanh"), (2, "identity")])


@pytest.mark.parametrize("eps", [None, 1e-12])
@pytest.mark.parametrize("with_values", [False, True])
def test_merged_read_equals_autograd_through_norm_skip_and_projection(eps, with_values):
    gen = torch.Generator().manual_seed(0)
    out = torch.nn.Linear(2 * 5, 7).double()
    a = torch.randn(4, 3, 2, 5, generator=gen, dtype=torch.float64)
    a[0, 0, 0] = 1e-4  # a tiny read: the norm's eps matters there
    values = torch.randn(4, 3, 2, 5, generator=gen, dtype=torch.float64) if with_values else None
    skip = torch.randn(2, 5, generator=gen, dtype=torch.float64) if with_values else None
    out_weights = torch.randn(4, 3, 7, generator=gen, dtype=torch.float64)
    results = []
    for fused in (True, False):
        out.zero_grad()
        leaves = [x.clone().requires_grad_() if x is not None else None for x in (a, values, skip)]
        la, lv, ls = leaves
        if fused:
            y = merged_read(la, lv, ls, out, eps)
        else:
            merged = la if eps is None else la * torch.rsqrt(la.pow(2).mean(-1, keepdim=True) + eps)
            if lv is not None:
                merged = merged + ls * lv
            y = out(merged.flatten(-2))
        (y * out_weights).sum().backward()
        results.append(
            [y.detach(), *(x.grad for x in leaves if x is not None), out.weight.grad.clone(), out.bias.grad.clone()]
        )
    for got, want in zip(*results, strict=True):
        assert (got - want).abs().max() <= 1e-10 * (1.0 + want.abs().max())


def test_merged_read_needs_values_and_skip_together():
    with pytest.raises(ValueError, match="values and skip"):
        merged_read(torch.zeros(2, 1, 1, 3), torch.zeros(2, 1, 1, 3), None, torch.nn.Linear(3, 3), None)
