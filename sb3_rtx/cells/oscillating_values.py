"""AGaLiTe's value side over a sequence, with a backward that recomputes the value memory.

Per head, with ``r`` oscillator weights ``w_t,j = cos(omega_j n_t)`` and the key side's products
``kq_t,j = kt_j,t . q_t`` and ``sq_t = s_t . q_t`` (:mod:`sb3_rtx.cells.factored_attention`)::

    vt_j,t = keep_t * max(1 - beta_t, floor) * vt_j,t-1 + w_t,j * beta_t * v_t      (R^d)
    a_t    = sum_j vt_j,t kq_t,j / normaliser(sq_t)

Written with autograd this keeps, per layer, every step's ``r`` value vectors, their inputs, the
decays and the numerator for backward (about 12 MB per layer at the paper's size, T=128, B=16,
more than the key side's chunk-boundary states). The value memory is small and its scan cheap,
so this backward runs the scan again from ``beta``, ``v`` and the first state, which the caller
keeps anyway, and saves only the small per-step ``kq`` and ``sq`` (and the state where each
backward block starts). The same trade (recompute the recurrence in backward instead of storing
its states) as the key side's chunks. The backward walks
back over blocks of steps (:data:`BACKWARD_BLOCK_ELEMENTS`), each scanned again from its first
state (kept by the forward), so its temporaries are a block's, not the sequence's: the
backward of the top layer's value read was the training step's peak.

Gradient, with ``D_t = keep_t max(1 - beta_t, floor)``, ``G`` the gradient of every ``vt`` (carried
back: ``G_t = dvt_t + D_t+1 G_t+1``)::

    d(beta v)_t = sum_j w_t,j G_t,j,   dD_t = sum_j G_t,j . vt_j,t-1,   dvt_j,-1 = D_0 G_0,j
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from sb3_rtx.cells.compiled_values import COMPILED_BLOCK_LEN, compiled_block_backward, compiled_block_forward
from sb3_rtx.cells.galite import NORMALISER_EPS, normalise
from sb3_rtx.cells.scan import DECAY_FLOOR, chunked_scan, default_chunk_len, launch_bound


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
    block_len: int | None = None,
    compiled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The read ``a`` and the last value state, for a whole sequence (see the module docstring).

    :param beta, v: ``(T, B, H, d)``, the value gate (in [0, 1]) and the values
    :param weights: ``(T, B, r)`` oscillator weights (no gradient is computed for them)
    :param starts: ``(T, B)`` episode starts (0/1)
    :param vt: ``(B, H, r, d)`` the value state before the first step
    :param kq, sq: ``(T, B, H, r)`` and ``(T, B, H)``, the key side's products
    :param divisor: multiplies ``sq`` in the normaliser
    :param bounded: ``max(divisor sq, 1)`` as the normaliser, else ``divisor sq + eps``
    :param block_len: steps per block of the backward (default: :func:`backward_block_len`, or
        :data:`~sb3_rtx.cells.compiled_values.COMPILED_BLOCK_LEN` with ``compiled``)
    :param compiled: each block's scan and read, forward and backward, as the fused kernels of
        :mod:`~sb3_rtx.cells.compiled_values` (``torch.compile``) instead of eager passes
    :return: ``a: (T, B, H, d)`` and ``vt`` after the last step ``(B, H, r, d)``
    """
    if compiled:
        return _CompiledValueRead.apply(beta, v, weights, starts, vt, kq, sq, divisor, bounded, block_len)
    return _OscillatingValueRead.apply(beta, v, weights, starts, vt, kq, sq, divisor, bounded, block_len)


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


#: value-state elements (``steps * B * H * r * d``) whose backward is handled at once: the backward
#: walks back over blocks of steps, running the scan again from each block's first state, so its
#: temporaries (states, their gradients, decays: about five tensors of a block's size) do not grow
#: with the sequence; 1 MB of float32, as the key side's groups (at the paper's size, T=128, B=16,
#: four blocks of 32 steps instead of a peak of about 18 MB per layer; one block at the small size)
BACKWARD_BLOCK_ELEMENTS = 1 << 18
#: the same on an accelerator, where every op is a kernel launch and the step is launch-bound (each
#: block runs the scan again; ``python -m benchmarks.op_count`` counts the ops): the whole sequence
#: as one block at the sizes the benchmarks use (64 MB of value state)
ACCELERATOR_BACKWARD_BLOCK_ELEMENTS = 1 << 24


def backward_block_len(beta: torch.Tensor, r: int) -> int:
    """Steps per backward block for values ``beta (T, B, H, d)`` with ``r`` terms (see :data:`BACKWARD_BLOCK_ELEMENTS`)."""
    budget = ACCELERATOR_BACKWARD_BLOCK_ELEMENTS if launch_bound(beta.device) else BACKWARD_BLOCK_ELEMENTS
    per_step = beta[0].numel() * r
    return max(1, min(beta.shape[0], budget // max(1, per_step)))


def _blocks(seq_len: int, block_len: int) -> list[slice]:
    """The steps ``0:seq_len`` in consecutive blocks of ``block_len`` (the last one may be shorter)."""
    return [slice(first, min(first + block_len, seq_len)) for first in range(0, seq_len, block_len)]


class _OscillatingValueRead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, beta, v, weights, starts, vt, kq, sq, divisor, bounded, block_len):
        states, _ = _scan_values(beta, v, weights, starts, vt)
        read = normalise(_products_of_terms(states, kq.unsqueeze(-1)), divisor * sq.unsqueeze(-1), bounded)
        block_len = ctx.block_len = block_len or backward_block_len(beta, vt.shape[-2])
        # the state entering each backward block after the first: one small state per block, kept
        # so that backward need not run the scan once more to find them
        entering = states[block_len - 1 : -1 : block_len].clone()
        ctx.save_for_backward(beta, v, weights, starts, vt, kq, sq, entering)
        ctx.divisor, ctx.bounded = divisor, bounded
        return read, states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_read, grad_final):
        beta, v, weights, starts, vt, kq, sq, later_entering = ctx.saved_tensors
        blocks = _blocks(beta.shape[0], ctx.block_len)
        entering = [vt, *later_entering.unbind(0)]  # the value state entering each block
        grads = [torch.empty_like(x) for x in (beta, v, kq, sq)]
        carry = grad_final  # D_e G_e: what the steps after a block pass back to its last state
        for block, first_state in zip(reversed(blocks), reversed(entering), strict=True):
            carry = _block_backward(
                ctx.divisor,
                ctx.bounded,
                [x[block] for x in (beta, v, weights, starts, kq, sq, grad_read)],
                first_state,
                carry,
                [g[block] for g in grads],
            )
        grad_beta, grad_v, grad_kq, grad_sq = grads
        return grad_beta, grad_v, None, None, carry, grad_kq, grad_sq, None, None, None


def _block_backward(divisor, bounded, inputs, first_state, carry, grads):
    """Gradients of one block of steps, written into ``grads`` (views of the whole sequence's); returns
    ``D_s G_s``, the gradient of the state before the block."""
    beta, v, weights, starts, kq, sq, grad_read = inputs
    grad_beta, grad_v, grad_kq, grad_sq = grads
    states, decay = _scan_values(beta, v, weights, starts, first_state)
    scaled = divisor * sq.unsqueeze(-1)  # (T, B, H, 1)
    denominator = scaled.clamp_min(1.0) if bounded else scaled + NORMALISER_EPS
    grad_numerator = grad_read / denominator
    grad_denominator = -(grad_numerator * _products_of_terms(states, kq.unsqueeze(-1))).sum(-1, keepdim=True) / denominator
    if bounded:
        grad_denominator = grad_denominator * (scaled > 1.0)
    torch.mul(grad_denominator.squeeze(-1), divisor, out=grad_sq)
    for j in range(states.shape[-2]):
        torch.sum(states[..., j, :] * grad_numerator, dim=-1, out=grad_kq[..., j])
    # every state's gradient, carried back in time: G_t = dvt_t + D_t+1 G_t+1
    direct = grad_numerator.unsqueeze(3) * kq.unsqueeze(-1)
    if carry is not None:
        direct[-1] += carry
    next_decay = torch.cat([decay[1:], torch.zeros_like(decay[:1])])
    carried = chunked_scan(
        next_decay, direct, torch.zeros_like(first_state), default_chunk_len(beta.shape[0]), reverse=True, overwrite=True
    )
    del direct, next_decay
    grad_written = _products_of_terms(carried, weights[:, :, None, :, None])  # d(beta v)
    # dD_t = sum_j G_t,j . vt_j,t-1 (the block's first state before its first step), without a shifted copy
    grad_decay = torch.empty_like(beta)
    grad_decay[1:] = _products_of_terms(carried[1:], states[:-1])
    grad_decay[0] = _products_of_terms(carried[0], first_state)
    carry_back = decay[0] * carried[0]
    del states, carried, decay  # the largest tensors here: free them before the gradients' temporaries
    # no gradient where an episode starts or the floor holds the decay
    grad_decay.mul_((1.0 - starts)[:, :, None, None]).masked_fill_((1.0 - beta) <= DECAY_FLOOR, 0.0)
    torch.mul(grad_written, v, out=grad_beta).sub_(grad_decay)
    torch.mul(grad_written, beta, out=grad_v)
    return carry_back


class _CompiledValueRead(torch.autograd.Function):
    """The same function as :class:`_OscillatingValueRead`, a block of steps at a time through the
    fused kernels of :mod:`~sb3_rtx.cells.compiled_values`: forward keeps the state entering each
    block, backward walks back over the blocks, each kernel running its block's scan again."""

    @staticmethod
    def forward(ctx, beta, v, weights, starts, vt, kq, sq, divisor, bounded, block_len):
        blocks = _blocks(beta.shape[0], block_len or COMPILED_BLOCK_LEN)
        keep = 1.0 - starts
        entering, reads = [vt], []
        for block in blocks:
            read, after = compiled_block_forward(
                beta[block], v[block], weights[block], keep[block], entering[-1], kq[block], sq[block], divisor, bounded
            )
            reads.append(read)
            entering.append(after)
        final = entering.pop()
        ctx.save_for_backward(beta, v, weights, keep, kq, sq, *entering)
        ctx.divisor, ctx.bounded, ctx.blocks = divisor, bounded, blocks
        return torch.cat(reads), final

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_read, grad_final):
        beta, v, weights, keep, kq, sq, *entering = ctx.saved_tensors
        grads = [torch.empty_like(x) for x in (beta, v, kq, sq)]
        carry = torch.zeros_like(entering[0]) if grad_final is None else grad_final
        for block, first_state in zip(reversed(ctx.blocks), reversed(entering), strict=True):
            *block_grads, carry = compiled_block_backward(
                *(x[block] for x in (beta, v, weights, keep)),
                first_state,
                kq[block],
                sq[block],
                grad_read[block],
                carry,
                ctx.divisor,
                ctx.bounded,
            )
            for grad, block_grad in zip(grads, block_grads, strict=True):
                grad[block] = block_grad
        grad_beta, grad_v, grad_kq, grad_sq = grads
        return grad_beta, grad_v, None, None, carry, grad_kq, grad_sq, None, None, None
