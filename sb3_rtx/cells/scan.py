"""Gated (element-wise) linear recurrences with episode resets.

Every linear cell in this package is built from the recurrence

    h_t = a_t * h_{t-1} + b_t            (element-wise, t = 0 .. T-1, h_{-1} = h0)

where ``a_t`` is a decay in [0, 1] and a reset before step ``t`` is expressed by ``a_t = 0`` (every
cell's initial state is zero). This module gives three forms of it:

* :func:`linear_step` - one step, the acting path;
* :func:`linear_scan_sequential` - a plain loop over time, the reference the tests compare with;
* :func:`linear_scan` - the training path: a two-level chunked scan that needs about ``2*sqrt(T)``
  vectorised steps instead of ``T``, with a hand-written backward (the same scan run backwards in
  time) so autograd keeps only the outputs, not every intermediate.

and :func:`pairwise_decays`, the within-chunk decay products that the chunked attention form of
GaLiTe needs (its state is too large to materialise at every step).

Nothing here knows about cells or SB3.
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def linear_step(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of ``h = a * h + b``."""
    return torch.addcmul(b, a, h)


def linear_scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Reference form: a Python loop over time. Returns every ``h_t``, shape ``(T, *b.shape[1:])``."""
    out = []
    h = h0
    for t in range(b.shape[0]):
        h = linear_step(a[t], b[t], h)
        out.append(h)
    return torch.stack(out)


def default_chunk_len(seq_len: int) -> int:
    """Chunk length that balances the two levels of :func:`linear_scan` (about sqrt(T))."""
    return max(1, int(math.ceil(math.sqrt(seq_len))))


def _chunked_scan_forward(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_len: int) -> torch.Tensor:
    """Two-level scan without autograd. ``a`` broadcasts against ``b``; returns ``(T, *b.shape[1:])``.

    Level 1 runs the recurrence inside every chunk at once (a loop over the ``L`` positions of a
    chunk, vectorised over chunks), from a zero state, keeping the running product of decays.
    Level 2 carries the true state across chunks (a loop over ``T / L`` chunks). A final
    vectorised fix-up adds each chunk's carried-in state, decayed to every position.
    """
    seq_len = b.shape[0]
    a = a.expand_as(b)
    n_chunks = -(-seq_len // chunk_len)
    pad = n_chunks * chunk_len - seq_len
    if pad:
        # Padding with a=1, b=0 leaves the state unchanged; padded outputs are dropped.
        a = torch.cat([a, a.new_ones((pad, *a.shape[1:]))])
        b = torch.cat([b, b.new_zeros((pad, *b.shape[1:]))])
    a = a.reshape(n_chunks, chunk_len, *b.shape[1:])
    b = b.reshape(n_chunks, chunk_len, *b.shape[1:])

    local = torch.empty_like(b)  # chunk-local states from zero
    decay = torch.empty_like(b)  # running decay product inside each chunk
    local[:, 0] = b[:, 0]
    decay[:, 0] = a[:, 0]
    for i in range(1, chunk_len):
        torch.addcmul(b[:, i], a[:, i], local[:, i - 1], out=local[:, i])
        torch.mul(a[:, i], decay[:, i - 1], out=decay[:, i])

    carried = torch.empty((n_chunks, *h0.shape), dtype=b.dtype, device=b.device)
    h = h0
    for c in range(n_chunks):
        carried[c] = h
        h = torch.addcmul(local[c, -1], decay[c, -1], h)

    out = torch.addcmul(local, decay, carried.unsqueeze(1))
    return out.reshape(n_chunks * chunk_len, *b.shape[2:])[:seq_len]


class _LinearScan(torch.autograd.Function):
    """Autograd wrapper: the backward of a linear recurrence is the same recurrence reversed in time.

    With g_t = dL/dh_t (total), g_t = grad_t + a_{t+1} * g_{t+1}; then dL/db_t = g_t,
    dL/da_t = g_t * h_{t-1} and dL/dh0 = a_0 * g_0. Only ``a``, ``h0`` and the outputs are saved.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_len: int) -> torch.Tensor:
        with torch.no_grad():
            h = _chunked_scan_forward(a, b, h0, chunk_len)
        ctx.save_for_backward(a, h0, h)
        ctx.chunk_len = chunk_len
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        a, h0, h = ctx.saved_tensors
        a_full = a.expand_as(h)
        # reversed decays: position u (time T-1-u) is decayed by a_{t+1}; a_T does not exist (0).
        a_next = torch.cat([a_full[1:], torch.zeros_like(a_full[:1])])
        g = _chunked_scan_forward(
            a_next.flip(0), grad_h.flip(0), torch.zeros_like(h0), ctx.chunk_len
        ).flip(0)
        grad_a = grad_b = grad_h0 = None
        if ctx.needs_input_grad[0]:
            h_prev = torch.cat([h0.unsqueeze(0).expand_as(h[:1]), h[:-1]])
            grad_a = (g * h_prev).sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = g
        if ctx.needs_input_grad[2]:
            grad_h0 = (a_full[0] * g[0]).sum_to_size(h0.shape)
        return grad_a, grad_b, grad_h0, None


def linear_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_len: Optional[int] = None
) -> torch.Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` for ``t = 0..T-1``, chunked-parallel.

    :param a: decays, shape ``(T, ...)`` broadcastable to ``b`` (e.g. one gate shared by several
        state vectors); set ``a_t = 0`` to reset before step ``t``
    :param b: inputs, shape ``(T, *S)``
    :param h0: state before step 0, shape ``S``
    :param chunk_len: chunk length of the two-level scan (default about ``sqrt(T)``)
    :return: ``(T, *S)``
    """
    if b.shape[0] == 0:
        raise ValueError("linear_scan needs at least one time step")
    if h0.shape != b.shape[1:]:
        raise ValueError(f"linear_scan: h0 has shape {tuple(h0.shape)}, expected {tuple(b.shape[1:])}")
    if chunk_len is None:
        chunk_len = default_chunk_len(b.shape[0])
    return _LinearScan.apply(a, b, h0, int(chunk_len))


def pairwise_decays(a: torch.Tensor) -> torch.Tensor:
    """Decay products between every pair of positions of each chunk.

    :param a: decays of shape ``(n_chunks, L, *F)``
    :return: ``G`` of shape ``(n_chunks, L, L + 1, *F)`` with
        ``G[c, t, 0] = prod_{r=0..t} a[c, r]`` (how much of the chunk's initial state reaches ``t``) and
        ``G[c, t, s + 1] = prod_{r=s+1..t} a[c, r]`` for ``s <= t`` (how much of input ``s`` reaches
        ``t``; 1 for ``s == t``), and 0 for ``s > t``. Resets (``a = 0``) cut every product across
        them, which is what isolates episodes.
    """
    n_chunks, chunk_len = a.shape[:2]
    feature_dims = a.dim() - 2
    t_idx = torch.arange(chunk_len, device=a.device).view(chunk_len, 1)
    j_idx = torch.arange(chunk_len + 1, device=a.device).view(1, chunk_len + 1)
    # Column j holds the products over r in [j, t]: a_r enters when r >= j, else a neutral 1.
    include = (t_idx >= j_idx).view(1, chunk_len, chunk_len + 1, *([1] * feature_dims))
    factors = torch.where(include, a.unsqueeze(2), torch.ones((), dtype=a.dtype, device=a.device))
    products = torch.cumprod(factors, dim=1)
    # s > t (column j > t + 1) gets nothing from the future.
    causal = (j_idx <= t_idx + 1).view(1, chunk_len, chunk_len + 1, *([1] * feature_dims))
    return products * causal.to(a.dtype)
