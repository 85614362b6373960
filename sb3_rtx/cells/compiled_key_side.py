"""The key side's element-wise work per group of chunks as two fused kernels, through ``torch.compile``.

:mod:`~sb3_rtx.cells.factored_attention`'s eager form makes a few dozen passes over ``eta * d``-wide
tensors per group (decays, running products, queries, keys, their gradients, the factors' sums):
each pass is cheap, and together they are most of AGaLiTe's training step on a CPU. Written as plain
tensor expressions and compiled (inductor: C++ loops on a CPU, Triton on a GPU), each direction's
element-wise work becomes a few loops that read the small factors and write only what the matrix
products need, recomputing the wide intermediates in registers instead of storing them:

* :func:`chunk_features` -- the group's scaled queries and keys ``Q~ = q P_t / P_m`` and
  ``K~ = gamma k P_m / P_t``, and the decay products at the middle and last steps;
* :func:`factor_gradients` -- from the gradients of ``Q~`` and ``K~`` (and of the last step's
  running product), the six factors' gradients.

The ratio ``P_t / P_m`` is built from the middle step outwards (a product of the decays between
them, or its inverse), so neither kernel divides one running product by another.

Compiling needs a C++ compiler on a CPU and takes tens of seconds the first time (inductor caches
its kernels on disk for later processes); if it fails, a warning says why and the same expressions
run eagerly (correct, and slower than the hand-tuned eager form). Used when a cell's
``compile_training`` is on (:meth:`~sb3_rtx.cells.base.RecurrentCell.compile_training`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from sb3_rtx.cells.base import is_compile_failure
from sb3_rtx.cells.scan import DECAY_FLOOR


def _outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.unsqueeze(-1) * b.unsqueeze(-2)).flatten(-2)


def _decay_and_inflate(gate_outer: torch.Tensor, gate_inner: torch.Tensor, floored: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``decay = max(1 - gamma, floor)`` and ``inflate_t = P_t / P_m`` (``m`` the middle step) of ``(N, L, F)``."""
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
    return decay, torch.stack(steps, 1)


def chunk_features(
    k_outer: torch.Tensor,
    k_inner: torch.Tensor,
    q_outer: torch.Tensor,
    q_inner: torch.Tensor,
    gate_outer: torch.Tensor,
    gate_inner: torch.Tensor,
    floored: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Q~, K~, P_m, P_last)`` of a group, ``(N, L, F)`` twice and ``(N, 1, F)`` twice, from its
    ``(N, L, A)`` and ``(N, L, D)`` factors (the same as :class:`~sb3_rtx.cells.factored_attention._ChunkFeatures`)."""
    decay, inflate = _decay_and_inflate(gate_outer, gate_inner, floored)
    at_middle = decay[:, : decay.shape[1] // 2 + 1].prod(1, keepdim=True)
    at_last = at_middle * inflate[:, -1:]
    queries = _outer(q_outer, q_inner) * inflate
    keys = _outer(gate_outer * k_outer, gate_inner * k_inner) / inflate
    return queries, keys, at_middle, at_last


def _outer_gradients(grad: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    grid = grad.unflatten(-1, (a.shape[-1], b.shape[-1]))
    return (grid * b.unsqueeze(-2)).sum(-1), (grid * a.unsqueeze(-1)).sum(-2)


def factor_gradients(
    k_outer: torch.Tensor,
    k_inner: torch.Tensor,
    q_outer: torch.Tensor,
    q_inner: torch.Tensor,
    gate_outer: torch.Tensor,
    gate_inner: torch.Tensor,
    d_queries: torch.Tensor,
    d_keys: torch.Tensor,
    d_last: torch.Tensor,
    floored: bool,
) -> tuple[torch.Tensor, ...]:
    """The six factors' gradients (in :func:`chunk_features`' argument order) from those of ``Q~`` and
    ``K~`` (``(N, L, F)``) and of the last step's log running product (``d_last``, ``(N, 1, F)``);
    the gradient formulas of :mod:`~sb3_rtx.cells.factored_attention`'s docstring."""
    decay, inflate = _decay_and_inflate(gate_outer, gate_inner, floored)
    write_outer, write_inner = gate_outer * k_outer, gate_inner * k_inner
    queries = _outer(q_outer, q_inner) * inflate
    keys = _outer(write_outer, write_inner) / inflate
    d_running = queries * d_queries - keys * d_keys  # d/dc_t, c the running sum of log-decays
    length = decay.shape[1]
    total = d_running[:, -1] + d_last[:, 0]  # c_last sums every step of the chunk
    sums = [total] * length
    for t in range(length - 2, -1, -1):  # d log decay_u = sum_{t >= u} dc_t
        total = total + d_running[:, t]
        sums[t] = total
    d_decay = torch.stack(sums, 1) / decay
    if floored:  # no gradient where the floor holds the decay
        d_decay = torch.where(decay > DECAY_FLOOR, d_decay, 0.0)
    d_write_outer, d_write_inner = _outer_gradients(d_keys / inflate, write_outer, write_inner)
    d_gate_outer, d_gate_inner = _outer_gradients(d_decay, gate_outer, gate_inner)  # d(1 - gamma) = -d gamma
    d_q_outer, d_q_inner = _outer_gradients(d_queries * inflate, q_outer, q_inner)
    return (
        d_write_outer * gate_outer,
        d_write_inner * gate_inner,
        d_q_outer,
        d_q_inner,
        d_write_outer * k_outer - d_gate_outer,
        d_write_inner * k_inner - d_gate_inner,
    )


class _Kernel:
    """``function`` through ``torch.compile``, compiled on first use; eager from then on if compiling
    fails (until :func:`retry_compiling`)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.compiled: Callable[..., Any] | None = None
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.function(*args)
        if self.compiled is None:
            # one kernel per shape (a training run meets a few: its minibatch's groups, a smaller last
            # group): kernels compiled for dynamic sizes ran slower than the eager form
            self.compiled = torch.compile(self.function, dynamic=False)
        try:
            return self.compiled(*args)
        except Exception as error:  # no C++ compiler, an unsupported backend, ...
            if not is_compile_failure(error):
                raise
            warnings.warn(
                f"compile_training: torch.compile failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); the key side trains eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            self.failed = True
            return self.function(*args)


#: the compiled kernels, shared by every cell in the process (inductor caches per shape)
compiled_chunk_features = _Kernel(chunk_features)
compiled_factor_gradients = _Kernel(factor_gradients)
_KERNELS = (compiled_chunk_features, compiled_factor_gradients)


def compiling_failed() -> bool:
    """Whether compiling a kernel failed in this process (the key side then runs their eager form)."""
    return any(kernel.failed for kernel in _KERNELS)


def retry_compiling() -> None:
    """Forget an earlier failure: the next call compiles again (a cell's ``compile_training`` calls this)."""
    for kernel in _KERNELS:
        kernel.failed = False
