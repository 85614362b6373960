"""The scan primitives: chunked form equals the loop, its hand-written backward is right,
and the chunked attention's decay factors equal brute-force products."""

from __future__ import annotations

import pytest
import torch

from sb3_rtx.cells.scan import (
    CHUNK_LEN,
    GatedChunks,
    chunked_scan,
    doubling_scan,
    floor_decay,
    floor_log_decay,
    linear_scan,
    linear_scan_sequential,
)


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


@pytest.mark.parametrize("seq_len", [1, 2, 3, 7, 16, 17, 128])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("decay_shape", [(3, 4), (3, 1)])
def test_doubling_scan_equals_the_chunked_scan(seq_len, reverse, decay_shape):
    """The accelerators' form (run here on the CPU, where chunked_scan itself loops), both directions,
    with a decay shared over the state's last axis, resets and an initial state."""
    a, b, h0 = random_recurrence(seq_len, decay_shape=decay_shape)
    expected = chunked_scan(a, b, h0, 4, reverse=reverse)
    if not reverse:
        assert (expected - linear_scan_sequential(a, b, h0)).abs().max() <= 1e-12
    assert (doubling_scan(a, b, h0, reverse=reverse) - expected).abs().max() <= 1e-12


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
    for got, want in zip(*grads, strict=True):
        assert (got - want).abs().max() <= 1e-12


def test_scan_rejects_mismatched_initial_state():
    a, b, h0 = random_recurrence(4)
    with pytest.raises(ValueError, match="h0 has shape"):
        linear_scan(a, b, h0[:2])


def brute_force_decay(decay, starts, t, s):
    """prod_{r=s+1..t} decay_r, or 0 if an episode starts in (s, t]; s = -1 is the carried state."""
    if s > t:
        return torch.zeros_like(decay[0])
    cut = starts[s + 1 : t + 1].any(0).view(-1, *([1] * (decay.dim() - 2)))  # per env
    return torch.where(cut, 0.0, torch.prod(decay[s + 1 : t + 1], dim=0))


def test_chunk_factors_equal_brute_force_products():
    seq_len, chunk = 11, 4
    gen = torch.Generator().manual_seed(0)
    decay = floor_decay(torch.rand(seq_len, 2, 1, 3, generator=gen, dtype=torch.float64))
    starts = torch.zeros(seq_len, 2, dtype=torch.float64)
    starts[2, 0] = starts[5, 0] = starts[6, 0] = starts[9, 1] = 1.0
    chunks = GatedChunks(starts, chunk_len=chunk)
    assert (chunks.n_chunks, chunks.pad) == (3, 1)
    gate = chunks.log_decay_factors(chunks.chunk(torch.log(decay), 0.0))
    for t in range(seq_len):
        c, i = divmod(t, chunk)
        begin = c * chunk
        for j in range(chunk):  # pairs inside the chunk
            s = begin + j
            got = gate.inflate[c, i] * gate.deflate[c, j] * chunks.pair_mask[c, :, 0, i, j, None, None]
            want = brute_force_decay(decay, starts, t, s)
            assert torch.allclose(got, want, atol=1e-12), (t, s)
        got = gate.from_start[c, i]
        assert torch.allclose(got, brute_force_decay(decay, starts, t, begin - 1), atol=1e-12)
    for c in range(chunks.n_chunks):
        end = min((c + 1) * chunk, seq_len) - 1
        for j in range(chunk):
            s = c * chunk + j
            if s <= end:
                want = brute_force_decay(decay, starts, end, s)
                assert torch.allclose(gate.to_end[c, j], want, atol=1e-12)
        assert torch.allclose(gate.whole[c], brute_force_decay(decay, starts, end, c * chunk - 1), atol=1e-12)


def test_chunk_masks_hold_no_overflow_even_at_the_decay_floor():
    """At the floor, unmasked factors reach exp(+-40); masked scores must still come out finite."""
    decay = torch.zeros(16, 1, 1, 2)  # float32, every gate fully saturated -> floored
    chunks = GatedChunks(torch.zeros(16, 1), chunk_len=CHUNK_LEN)
    gate = chunks.log_decay_factors(chunks.chunk(floor_log_decay(torch.log(decay)), 0.0))
    assert torch.isfinite(gate.inflate).all() and torch.isfinite(gate.deflate).all()
    keys = torch.ones(chunks.n_chunks, CHUNK_LEN, 1, 1, 2) * gate.deflate
    scores = chunks.masked_scores(torch.ones_like(keys) * gate.inflate, keys)
    assert torch.isfinite(scores).all() and scores.max() <= 2.0 + 1e-4
