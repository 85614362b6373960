"""The scan primitives: chunked form equals the loop, its hand-written backward is right,
and pairwise chunk decays equal brute-force products."""

from __future__ import annotations

import pytest
import torch

from sb3_rtx.cells.scan import linear_scan, linear_scan_sequential, pairwise_decays


def random_recurrence(seq_len, shape=(3, 4), decay_shape=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    decay_shape = decay_shape or shape
    a = torch.rand(seq_len, *decay_shape, generator=gen, dtype=torch.float64)
    a[seq_len // 2] = 0.0  # a reset in the middle
    b = torch.randn(seq_len, *shape, generator=gen, dtype=torch.float64)
    h0 = torch.randn(*shape, generator=gen, dtype=torch.float64)
    return a, b, h0


@pytest.mark.parametrize("seq_len", [1, 2, 7, 16, 17, 128])
@pytest.mark.parametrize("chunk_len", [None, 1, 3, 200])
def test_chunked_scan_equals_loop(seq_len, chunk_len):
    a, b, h0 = random_recurrence(seq_len)
    expected = linear_scan_sequential(a, b, h0)
    assert (linear_scan(a, b, h0, chunk_len) - expected).abs().max() <= 1e-12


def test_decay_broadcasts_over_state_vectors():
    """One gate shared by several state vectors (how AGaLiTe uses it)."""
    a, b, h0 = random_recurrence(11, shape=(2, 5, 4), decay_shape=(2, 1, 4))
    assert (linear_scan(a, b, h0) - linear_scan_sequential(a, b, h0)).abs().max() <= 1e-12


@pytest.mark.parametrize("decay_shape", [(3, 4), (3, 1)])
def test_backward_matches_numerical_gradient(decay_shape):
    a, b, h0 = random_recurrence(9, decay_shape=decay_shape)
    inputs = tuple(t.clone().requires_grad_() for t in (a, b, h0))
    assert torch.autograd.gradcheck(lambda a, b, h: linear_scan(a, b, h, chunk_len=4), inputs)


def test_backward_equals_autograd_through_the_loop():
    a, b, h0 = random_recurrence(20)
    weights = torch.randn(20, 3, 4, dtype=torch.float64)
    grads = []
    for fn in (linear_scan, linear_scan_sequential):
        leaves = tuple(t.clone().requires_grad_() for t in (a, b, h0))
        (fn(*leaves) * weights).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for got, want in zip(*grads):
        assert (got - want).abs().max() <= 1e-12


def test_scan_rejects_mismatched_initial_state():
    a, b, h0 = random_recurrence(4)
    with pytest.raises(ValueError, match="h0 has shape"):
        linear_scan(a, b, h0[:2])


def test_pairwise_decays_equal_brute_force_products():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 5, 3, generator=gen, dtype=torch.float64)
    a[1, 2] = 0.0
    g = pairwise_decays(a)
    assert g.shape == (2, 5, 6, 3)
    for c in range(2):
        for t in range(5):
            for j in range(6):  # column j = s + 1: products over r in [j, t]
                want = torch.prod(a[c, j : t + 1], dim=0) if j <= t + 1 else torch.zeros(3, dtype=a.dtype)
                assert torch.allclose(g[c, t, j], want)
