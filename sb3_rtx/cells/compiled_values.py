"""AGaLiTe's value side per block of steps as two fused kernels, through ``torch.compile``.

:mod:`~sb3_rtx.cells.oscillating_values`' eager form scans the ``r`` value vectors of every head
with a two-level scan and, in backward, runs it again, then scans the gradient back: a few dozen
passes over tensors of ``steps * B * H * r * d`` elements, each cheap, together about a tenth of
AGaLiTe's training step on a CPU. Written as a plain loop over a block's steps and compiled, every
step is element-wise in ``(B, H, r, d)``, so inductor fuses the whole block into a few loops that
keep the running state in registers and write only the reads (forward), or only the gradients
(backward, which runs the block's scan again from its first state, as the eager form does):

* :func:`block_forward` -- the reads of a block of steps and the state after it;
* :func:`block_backward` -- the gradients of ``beta``, ``v``, ``kq`` and ``sq`` over a block, and
  what the block passes back to the state before it.

Used by :func:`~sb3_rtx.cells.oscillating_values.oscillating_value_read` with ``compiled=True``
(the cell's ``compile_training``), a block of :data:`COMPILED_BLOCK_LEN` steps at a time.
"""

from __future__ import annotations

import torch

from sb3_rtx.cells.compiled_kernels import Kernel
from sb3_rtx.cells.galite import NORMALISER_EPS, normalise
from sb3_rtx.cells.scan import DECAY_FLOOR

#: steps per compiled block: the loop is unrolled in the kernel, so longer blocks compile for
#: longer (about a second per step, once per shape; inductor caches kernels on disk) and shorter
#: ones pay a call per block (chosen by timing the paper-size training step, one thread)
COMPILED_BLOCK_LEN = 16


def _decays(beta: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``D_t = keep_t max(1 - beta_t, floor)``, ``(L, B, H, d)``."""
    return (1.0 - beta).clamp_min(DECAY_FLOOR) * keep[:, :, None, None]


def _step(state: torch.Tensor, decay: torch.Tensor, weights: torch.Tensor, written: torch.Tensor) -> torch.Tensor:
    """One step of the value memory: ``(B, H, r, d)`` from the step's decay and ``beta v`` ``(B, H, d)``
    and its oscillator weights ``(B, r)``."""
    return decay.unsqueeze(2) * state + weights[:, None, :, None] * written.unsqueeze(2)


def block_forward(
    beta: torch.Tensor,
    v: torch.Tensor,
    weights: torch.Tensor,
    keep: torch.Tensor,
    state: torch.Tensor,
    kq: torch.Tensor,
    sq: torch.Tensor,
    divisor: float,
    bounded: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reads ``(L, B, H, d)`` of a block of ``L`` steps and the state ``(B, H, r, d)`` after it, from
    the state before it (shapes as :func:`~sb3_rtx.cells.oscillating_values.oscillating_value_read`'s,
    ``keep = 1 - starts``)."""
    decay, written = _decays(beta, keep), beta * v
    numerators = []
    for t in range(beta.shape[0]):
        state = _step(state, decay[t], weights[t], written[t])
        numerators.append((state * kq[t].unsqueeze(-1)).sum(-2))
    return normalise(torch.stack(numerators), divisor * sq.unsqueeze(-1), bounded), state


def block_backward(
    beta: torch.Tensor,
    v: torch.Tensor,
    weights: torch.Tensor,
    keep: torch.Tensor,
    first_state: torch.Tensor,
    kq: torch.Tensor,
    sq: torch.Tensor,
    grad_read: torch.Tensor,
    carry: torch.Tensor,
    divisor: float,
    bounded: bool,
) -> tuple[torch.Tensor, ...]:
    """Gradients of ``beta``, ``v``, ``kq`` and ``sq`` over a block, and ``D_s G_s``, what the block
    passes back to the state before it (the gradient formulas of
    :mod:`~sb3_rtx.cells.oscillating_values`); ``carry`` is what the steps after the block pass back
    to its last state (zeros for the sequence's last block without a final-state gradient)."""
    decay, written = _decays(beta, keep), beta * v
    length = beta.shape[0]
    states = [first_state]  # states[t + 1]: the state after step t
    for t in range(length):
        states.append(_step(states[t], decay[t], weights[t], written[t]))
    scaled = divisor * sq.unsqueeze(-1)
    denominator = scaled.clamp_min(1.0) if bounded else scaled + NORMALISER_EPS
    grad_numerator = grad_read / denominator
    numerators = torch.stack([(states[t + 1] * kq[t].unsqueeze(-1)).sum(-2) for t in range(length)])
    grad_denominator = -(grad_numerator * numerators).sum(-1, keepdim=True) / denominator
    if bounded:
        grad_denominator = grad_denominator * (scaled > 1.0)
    grad_sq = grad_denominator.squeeze(-1) * divisor
    grad_kq = torch.stack([(states[t + 1] * grad_numerator[t].unsqueeze(2)).sum(-1) for t in range(length)])
    # every state's gradient, carried back in time: G_t = dvt_t + D_t+1 G_t+1 (G_L := carry)
    carried = carry
    grad_written, grad_decay = [carry] * length, [carry] * length
    for t in range(length - 1, -1, -1):
        if t < length - 1:
            carried = decay[t + 1].unsqueeze(2) * carried
        carried = carried + grad_numerator[t].unsqueeze(2) * kq[t].unsqueeze(-1)
        grad_written[t] = (carried * weights[t][:, None, :, None]).sum(2)  # d(beta v)
        grad_decay[t] = (carried * states[t]).sum(2)  # dD_t = sum_j G_t,j . vt_j,t-1
    written_grad, decay_grad = torch.stack(grad_written), torch.stack(grad_decay)
    # no gradient where an episode starts or the floor holds the decay
    decay_grad = torch.where((1.0 - beta) > DECAY_FLOOR, decay_grad * keep[:, :, None, None], 0.0)
    return written_grad * v - decay_grad, written_grad * beta, grad_kq, grad_sq, decay[0].unsqueeze(2) * carried


#: the compiled kernels, shared by every cell in the process (inductor caches per shape)
compiled_block_forward = Kernel(block_forward, "the value side")
compiled_block_backward = Kernel(block_backward, "the value side")
