"""The key side's work per group of chunks as three fused kernels, through ``torch.compile``.

:mod:`~sb3_rtx.cells.factored_attention`'s eager form makes a few dozen passes over ``eta * d``-wide
tensors per group (decays, running products, queries, keys, the products inside each chunk, their
gradients, the factors' sums): each pass is cheap, and together they are most of AGaLiTe's training
step on a CPU. Written as plain tensor expressions and compiled (inductor: C++ loops on a CPU,
Triton on a GPU), what each direction does with the wide tensors becomes a few loops that read the
small factors and write only the small results, recomputing the wide intermediates in registers
instead of storing them; the products inside a chunk are sums over its ``L`` steps, not matrix
products of stored wide tensors:

* :func:`chunk_forward` -- per chunk, the reads of the chunk's own writes, what the chunk adds to
  the state by its end, the decay products at its middle and last steps, and the scaled queries
  ``Q~`` (which the read of the carried state needs once the carry is known);
* :func:`chunk_read_back` -- in backward, what the chunk's reads pass back to the state entering it;
* :func:`chunk_gradients` -- once the gradient at each chunk's end is carried back, the six
  factors' gradients.

Only the carry from chunk to chunk (small ``J x F`` states) and the read of the carried state stay
eager. The ratio ``P_t / P_m`` is built from the middle step outwards (a product of the decays
between them, or its inverse), so no kernel divides one running product by another. The idea of
fusing a chunk's whole work and recomputing its features instead of storing them is that of the
chunked gated linear attention kernels of flash-linear-attention (Yang et al. 2024).

Compiling needs a C++ compiler on a CPU and takes tens of seconds the first time (inductor caches
its kernels on disk for later processes); if it fails, a warning says why and the same expressions
run eagerly (correct, and slower than the hand-tuned eager form; :mod:`~sb3_rtx.cells.compiled_kernels`).
Used when a cell's ``compile_training`` is on (:meth:`~sb3_rtx.cells.base.RecurrentCell.compile_training`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from sb3_rtx.cells.compiled_kernels import Kernel
from sb3_rtx.cells.scan import DECAY_FLOOR


def _outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.unsqueeze(-1) * b.unsqueeze(-2)).flatten(-2)


class _Features(NamedTuple):
    """A group's wide tensors ``(N, L, F)`` (``at_middle`` and ``at_last`` ``(N, 1, F)``), as expressions."""

    decay: torch.Tensor
    inflate: torch.Tensor  # P_t / P_m
    write_outer: torch.Tensor
    write_inner: torch.Tensor
    queries: torch.Tensor  # Q~ = q P_t / P_m
    keys: torch.Tensor  # K~ = gamma k P_m / P_t
    at_middle: torch.Tensor  # P_m
    at_last: torch.Tensor  # P_last


def _features(factors: tuple[torch.Tensor, ...], floored: bool) -> _Features:
    """The group's features from its factors ``(k_outer, k_inner, q_outer, q_inner, gate_outer,
    gate_inner)``, ``(N, L, A)`` and ``(N, L, D)`` (the quantities of
    :class:`~sb3_rtx.cells.factored_attention._ChunkFeatures`)."""
    k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner = factors
    decay = 1.0 - _outer(gate_outer, gate_inner)
    if floored:
        decay = decay.clamp_min(DECAY_FLOOR)
    length = decay.shape[1]
    middle = length // 2
    steps: list[torch.Tensor] = [torch.ones_like(decay[:, middle])] * length
    for t in range(middle + 1, length):  # P_t / P_m = prod_{m < u <= t} decay_u
        steps[t] = steps[t - 1] * decay[:, t]
    for t in range(middle - 1, -1, -1):  # P_t / P_m = 1 / prod_{t < u <= m} decay_u
        steps[t] = steps[t + 1] / decay[:, t + 1]
    inflate = torch.stack(steps, 1)
    at_middle = decay[:, : middle + 1].prod(1, keepdim=True)
    write_outer, write_inner = gate_outer * k_outer, gate_inner * k_inner
    queries = _outer(q_outer, q_inner) * inflate
    keys = _outer(write_outer, write_inner) / inflate
    return _Features(decay, inflate, write_outer, write_inner, queries, keys, at_middle, at_middle * inflate[:, -1:])


def group_forward(
    factors: tuple[torch.Tensor, ...],
    weights: torch.Tensor,
    pairs: torch.Tensor,
    reads: torch.Tensor,
    written_weights: torch.Tensor,
    keeps: torch.Tensor,
    state: torch.Tensor,
    floored: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A group's forward, ``C`` chunks of ``R`` rows (env-heads) each, rows ``N = C * R`` chunk-major.

    :param factors: ``(k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner)``, ``(N, L, A)`` / ``(N, L, D)``
    :param weights: ``(N, L, J)`` value weights; ``written_weights`` the same where the write survives
        to the chunk's end
    :param pairs: ``(N, L, L)`` bool, step ``t`` reads step ``s``'s write; ``reads`` ``(N, L, 1)``, step
        ``t`` reads the state carried into the chunk
    :param keeps: ``(C, R, 1, 1)``, the carried state survives the chunk (no episode start in it)
    :param state: ``(R, J, F)``, the state entering the group's first chunk
    :return: the outputs ``(N, L, J)`` and the state after each chunk ``(C, R, J, F)``
    """
    f = _features(factors, floored)
    chunks, rows = keeps.shape[:2]
    # outside the mask a product may be huge (P_t / P_s for s > t): where, not a multiplication by 0
    scores = torch.where(pairs, (f.queries.unsqueeze(2) * f.keys.unsqueeze(1)).sum(-1), 0.0)
    # what each chunk adds to the state by its end, over P_last: sum_s written_weights_s K~_s / P_m
    written = ((written_weights.unsqueeze(-1) * f.keys.unsqueeze(2)).sum(1) / f.at_middle).unflatten(0, (chunks, rows))
    at_last = f.at_last.unflatten(0, (chunks, rows))
    states = [state]
    for c in range(chunks):  # the carry from chunk to chunk: B_c+1 = P_last (keeps B_c + written)
        states.append(at_last[c] * (keeps[c] * states[c] + written[c]))
    before = torch.stack(states[:-1]).flatten(0, 1)  # (N, J, F): the state entering each row's chunk
    # plus the carried state, read by steps before the chunk's first episode start
    read = (f.queries.unsqueeze(2) * (f.at_middle * before).unsqueeze(1)).sum(-1)
    return (scores.unsqueeze(-1) * weights.unsqueeze(1)).sum(2) + reads * read, torch.stack(states[1:])


def _outer_gradients(grad: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    grid = grad.unflatten(-1, (a.shape[-1], b.shape[-1]))
    return (grid * b.unsqueeze(-2)).sum(-1), (grid * a.unsqueeze(-1)).sum(-2)


def group_backward(
    factors: tuple[torch.Tensor, ...],
    weights: torch.Tensor,
    pair_weights: torch.Tensor,
    reads: torch.Tensor,
    written_weights: torch.Tensor,
    keeps: torch.Tensor,
    before: torch.Tensor,
    after: torch.Tensor,
    d_out: torch.Tensor,
    carried: torch.Tensor,
    floored: bool,
) -> tuple[torch.Tensor, ...]:
    """The gradients of :func:`group_forward`'s group (the formulas of
    :mod:`~sb3_rtx.cells.factored_attention`'s docstring), with ``pair_weights`` its pair mask as
    0/1, ``before`` and ``after`` the states entering and leaving each chunk ``(C, R, J, F)``,
    ``d_out`` the outputs' gradient ``(N, L, J)`` and ``carried`` the gradient of the state after
    the group's last chunk ``(R, J, F)``.

    :return: the six factors' gradients (in the factors' order) and the gradient of the state
        entering the group ``(R, J, F)``
    """
    k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner = factors
    f = _features(factors, floored)
    chunks, rows = keeps.shape[:2]
    gate = (d_out.unsqueeze(2) * weights.unsqueeze(1)).sum(-1) * pair_weights  # G = mask (dout @ weights^T)
    d_read = d_out * reads
    # what each chunk's reads of the state carried into it pass back to that state, then the carry
    # back in time: G_c = read_back_c + keeps_c P_last,c G_c+1
    read_back = ((d_read.unsqueeze(-1) * f.queries.unsqueeze(2)).sum(1) * f.at_middle).unflatten(0, (chunks, rows))
    at_last = f.at_last.unflatten(0, (chunks, rows))
    at_ends = [carried] * chunks
    for c in reversed(range(chunks)):
        at_ends[c] = carried
        carried = read_back[c] + keeps[c] * at_last[c] * carried
    d_end = torch.stack(at_ends).flatten(0, 1)  # (N, J, F): the gradient at each row's chunk end
    before, after = before.flatten(0, 1), after.flatten(0, 1)
    d_queries = (gate.unsqueeze(-1) * f.keys.unsqueeze(1)).sum(2)
    d_queries = d_queries + (d_read.unsqueeze(-1) * (f.at_middle * before).unsqueeze(1)).sum(2)
    d_written = d_end * (f.at_last / f.at_middle)
    d_keys = (gate.unsqueeze(-1) * f.queries.unsqueeze(2)).sum(1)
    d_keys = d_keys + (written_weights.unsqueeze(-1) * d_written.unsqueeze(1)).sum(2)
    d_running = f.queries * d_queries - f.keys * d_keys  # d/dc_t, c the running sum of log-decays
    length = f.decay.shape[1]
    total = d_running[:, -1] + (d_end * after).sum(1)  # c_last sums every step of the chunk
    sums = [total] * length
    for t in range(length - 2, -1, -1):  # d log decay_u = sum_{t >= u} dc_t
        total = total + d_running[:, t]
        sums[t] = total
    d_decay = torch.stack(sums, 1) / f.decay
    if floored:  # no gradient where the floor holds the decay
        d_decay = torch.where(f.decay > DECAY_FLOOR, d_decay, 0.0)
    d_write_outer, d_write_inner = _outer_gradients(d_keys / f.inflate, f.write_outer, f.write_inner)
    d_gate_outer, d_gate_inner = _outer_gradients(d_decay, gate_outer, gate_inner)  # d(1 - gamma) = -d gamma
    d_q_outer, d_q_inner = _outer_gradients(d_queries * f.inflate, q_outer, q_inner)
    return (
        d_write_outer * gate_outer,
        d_write_inner * gate_inner,
        d_q_outer,
        d_q_inner,
        d_write_outer * k_outer - d_gate_outer,
        d_write_inner * k_inner - d_gate_inner,
        carried,
    )


#: the compiled kernels, shared by every cell in the process (inductor caches per shape)
compiled_group_forward = Kernel(group_forward, "the key side")
compiled_group_backward = Kernel(group_backward, "the key side")
