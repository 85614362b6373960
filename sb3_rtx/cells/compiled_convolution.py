"""The values' short causal convolution over a sequence as two fused kernels, through ``torch.compile``.

:class:`~sb3_rtx.cells.short_conv.ShortConvolution`'s eager form makes a pass over the values per
tap, each way (a few cheap passes over ``T * B * C`` elements per layer); compiled, each direction
is one loop that reads the inputs once and writes only its result. Used with ``compiled=True``
(AGaLiTe's ``compile_training``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from sb3_rtx.cells.compiled_kernels import Kernel


def convolution_forward(padded: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The values' short causal convolution over a sequence, ``y (T, B, C)`` from the inputs ``padded
    (kernel - 1 + T, B, C)`` (the carried ones first), the taps' episode mask ``(T, B, kernel)`` and the
    taps ``(C, kernel)`` (:class:`~sb3_rtx.cells.short_conv.ShortConvolution`'s form)."""
    kernel = weight.shape[1]
    seq_len = padded.shape[0] - kernel + 1
    y = padded[kernel - 1 :] * weight[:, 0]
    for j in range(1, kernel):
        y = y + padded[kernel - 1 - j : kernel - 1 - j + seq_len] * (mask[..., j : j + 1] * weight[:, j])
    return y


def convolution_backward(
    grad_y: torch.Tensor, padded: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of :func:`convolution_forward`'s ``padded`` and ``weight``: each input's is the sum
    of what every tap that read it passes back (the taps' shifted terms, padded to the inputs' length,
    so the sum is one loop), each tap's the sum over steps and envs of its input times the gradient."""
    kernel = weight.shape[1]
    seq_len = grad_y.shape[0]
    grad_padded = torch.zeros_like(padded)
    grad_weight = []
    for j in range(kernel):
        masked = grad_y * mask[..., j : j + 1] if j else grad_y
        first = kernel - 1 - j
        grad_padded = grad_padded + F.pad(masked * weight[:, j], (0, 0, 0, 0, first, j))
        grad_weight.append((masked * padded[first : first + seq_len]).sum((0, 1)))
    return grad_padded, torch.stack(grad_weight, 1)


#: the compiled kernels, shared by every cell in the process (inductor caches per shape)
compiled_convolution_forward = Kernel(convolution_forward, "the value convolution")
compiled_convolution_backward = Kernel(convolution_backward, "the value convolution")
