"""AGaLiTe's value side over a sequence, with a backward that recomputes the value memory.

Per head, with ``r`` oscillator weights ``w_t,j = cos(omega_j n_t)`` and the key side's products
``kq_t,j = kt_j,t . q_t`` and ``sq_t = s_t . q_t`` (:mod:`sb3_rtx.cells.factored_attention`)::

    vt_j,t = keep_t * max(1 - beta_t, floor) * vt_j,t-1 + w_t,j * beta_t * v_t      (R^d)
    a_t    = sum_j vt_j,t kq_t,j / normaliser(sq_t)

Written with autograd this keeps, per layer, every step's ``r`` value vectors, their inputs, the
decays and the numerator for backward (about 12 MB per layer at the paper's size, T=128, B=16,
more than the key side's chunk-boundary states). The value memory is small and its scan cheap,
so this backward runs the scan again from ``beta``, ``v`` and the first state, which the caller
keeps anyway, and saves only the small per-step ``kq`` and ``sq``. The same trade (recompute the
recurrence in backward instead of storing its states) as the key side's chunks.

Gradient, with ``D_t = keep_t max(1 - beta_t, floor)``, ``G`` the gradient of every ``vt`` (carried
back: ``G_t = dvt_t + D_t+1 G_t+1``)::

    d(beta v)_t = sum_j w_t,j G_t,j,   dD_t = sum_j G_t,j . vt_j,t-1,   dvt_j,-1 = D_0 G_0,j
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from sb3_rtx.cells.galite import NORMALISER_EPS, normalise
from sb3_rtx.cells.scan import DECAY_FLOOR, chunked_scan, default_chunk_len


def oscillating_value_read(
    beta: torch.Tensor,
    v: torch.Tensor,
    weights: torch.Tensor,
    starts: torch.Tensor,
    vt: torch.Tensor,
    kq: torch.Tensor,
    sq: torch.Tensor,
    divisor: float,
    bounded: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The read ``a`` and the last value state, for a whole sequence (see the module docstring).

    :param beta, v: ``(T, B, H, d)``, the value gate (in [0, 1]) and the values
    :param weights: ``(T, B, r)`` oscillator weights (no gradient is computed for them)
    :param starts: ``(T, B)`` episode starts (0/1)
    :param vt: ``(B, H, r, d)`` the value state before the first step
    :param kq, sq: ``(T, B, H, r)`` and ``(T, B, H)``, the key side's products
    :param divisor: multiplies ``sq`` in the normaliser
    :param bounded: ``max(divisor sq, 1)`` as the normaliser, else ``divisor sq + eps``
    :return: ``a: (T, B, H, d)`` and ``vt`` after the last step ``(B, H, r, d)``
    """
    return _OscillatingValueRead.apply(beta, v, weights, starts, vt, kq, sq, divisor, bounded)


def oscillating_value_read_sequential(beta, v, weights, starts, vt, kq, sq, divisor, bounded):
    """Reference form: step by step with plain autograd (what the tests compare with)."""
    reads = []
    for t in range(beta.shape[0]):
        decay = (1.0 - beta[t]).clamp_min(DECAY_FLOOR) * (1.0 - starts[t])[:, None, None]
        vt = decay.unsqueeze(2) * vt + weights[t][:, None, :, None] * (beta[t] * v[t]).unsqueeze(2)
        numerator = (vt * kq[t].unsqueeze(-1)).sum(-2)
        reads.append(normalise(numerator, divisor * sq[t].unsqueeze(-1), bounded))
    return torch.stack(reads), vt


def _scan_values(beta, v, weights, starts, vt):
    """Every step's value state ``(T, B, H, r, d)`` and the decays ``D (T, B, H, 1, d)``."""
    decay = (1.0 - beta).clamp_min_(DECAY_FLOOR).mul_((1.0 - starts)[:, :, None, None]).unsqueeze(3)
    written = weights[:, :, None, :, None] * (beta * v).unsqueeze(3)
    return chunked_scan(decay, written, vt, default_chunk_len(beta.shape[0]), overwrite=True), decay


def _products_of_terms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_j a[..., j, :] * b[..., j, :]`` for ``a (..., r, d)`` and ``b`` broadcasting against it
    (``(..., r, 1)`` for one weight per term), one term at a time, so no ``r``-times larger product
    is made."""
    total = a[..., 0, :] * b[..., 0, :]
    for j in range(1, a.shape[-2]):
        total.addcmul_(a[..., j, :], b[..., j, :])
    return total


class _OscillatingValueRead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, beta, v, weights, starts, vt, kq, sq, divisor, bounded):
        states, _ = _scan_values(beta, v, weights, starts, vt)
        read = normalise(_products_of_terms(states, kq.unsqueeze(-1)), divisor * sq.unsqueeze(-1), bounded)
        ctx.save_for_backward(beta, v, weights, starts, vt, kq, sq)
        ctx.divisor, ctx.bounded = divisor, bounded
        return read, states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_read, grad_final):
        beta, v, weights, starts, vt, kq, sq = ctx.saved_tensors
        divisor, bounded = ctx.divisor, ctx.bounded
        states, decay = _scan_values(beta, v, weights, starts, vt)
        scaled = divisor * sq.unsqueeze(-1)  # (T, B, H, 1)
        denominator = scaled.clamp_min(1.0) if bounded else scaled + NORMALISER_EPS
        grad_numerator = grad_read / denominator
        grad_denominator = -(grad_numerator * _products_of_terms(states, kq.unsqueeze(-1))).sum(-1, keepdim=True) / denominator
        if bounded:
            grad_denominator = grad_denominator * (scaled > 1.0)
        grad_sq = (grad_denominator * divisor).squeeze(-1)
        terms = range(states.shape[-2])
        grad_kq = torch.stack([(states[..., j, :] * grad_numerator).sum(-1) for j in terms], dim=-1)
        # every state's gradient, carried back in time: G_t = dvt_t + D_t+1 G_t+1
        direct = grad_numerator.unsqueeze(3) * kq.unsqueeze(-1)
        if grad_final is not None:
            direct[-1] += grad_final
        next_decay = torch.cat([decay[1:], torch.zeros_like(decay[:1])])
        chunk_len = default_chunk_len(beta.shape[0])
        carried = chunked_scan(next_decay, direct, torch.zeros_like(vt), chunk_len, reverse=True, overwrite=True)
        del direct, next_decay
        grad_written = _products_of_terms(carried, weights[:, :, None, :, None])  # d(beta v)
        # dD_t = sum_j G_t,j . vt_j,t-1 (vt_j,-1 the incoming state), without a shifted copy of the states
        grad_decay = torch.empty_like(beta)
        grad_decay[1:] = _products_of_terms(carried[1:], states[:-1])
        grad_decay[0] = _products_of_terms(carried[0], vt)
        grad_vt = decay[0] * carried[0]
        del states, carried, decay  # the largest tensors here: free them before the gradients' temporaries
        # no gradient where an episode starts or the floor holds the decay
        grad_decay.mul_((1.0 - starts)[:, :, None, None]).masked_fill_((1.0 - beta) <= DECAY_FLOOR, 0.0)
        grad_beta = torch.mul(grad_written, v).sub_(grad_decay)
        grad_v = grad_written.mul_(beta)
        return grad_beta, grad_v, None, None, grad_vt, grad_kq, grad_sq, None, None
