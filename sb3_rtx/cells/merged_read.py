"""The heads' reads merged into the stream in one step with one backward: GaLiTe's and AGaLiTe's
``out(rms(a) + value_skip * values)`` for a training sequence.

Written with autograd, the read ``a``, the convolved values, and the sum fed to the output
projection are all kept for backward; the sum (a ``(T, B, H * d)`` tensor per layer, 2 MB at the
paper's size) is a cheap function of the other two, which the caller keeps anyway. Here it is
rebuilt in backward, so the layer keeps one tensor less while the whole step's backward runs (the
training step's peak is reached in the top layer's backward, with every lower layer's saved tensors
alive). Gradient of the root-mean-square norm ``y = a s``, ``s = (mean(a^2) + eps)^(-1/2)``::

    da = s dy - s^3 a mean(dy * a)
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F


def _merged(a: torch.Tensor, scale: torch.Tensor | None, values: torch.Tensor | None, skip: torch.Tensor | None):
    merged = a * scale if scale is not None else a.clone()
    if values is not None and skip is not None:
        merged.addcmul_(values, skip)
    return merged


class _MergedRead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, values, skip, weight, bias, eps):
        scale = None if eps is None else torch.rsqrt(a.pow(2).mean(-1, keepdim=True).add_(eps))
        merged = _merged(a, scale, values, skip)
        ctx.save_for_backward(a, scale, values, skip, weight)
        ctx.has_bias = bias is not None
        return F.linear(merged.flatten(-2), weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        a, scale, values, skip, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_weight = None
        if needs[3]:
            merged = _merged(a, scale, values, skip)
            grad_weight = flat_grad.t() @ merged.reshape(-1, weight.shape[1])
            del merged
        grad_bias = flat_grad.sum(0) if ctx.has_bias and needs[4] else None
        grad_merged = (flat_grad @ weight).view_as(a)
        grad_values = grad_merged * skip if values is not None and needs[1] else None
        grad_skip = (grad_merged * values).sum(tuple(range(a.dim() - 2))) if values is not None and needs[2] else None
        grad_a = None
        if needs[0]:
            if scale is None:
                grad_a = grad_merged
            else:
                along = (grad_merged * a).mean(-1, keepdim=True).mul_(scale.pow(3))
                grad_a = grad_merged.mul_(scale).sub_(a * along)
        return grad_a, grad_values, grad_skip, grad_weight, grad_bias, None


def merged_read(
    a: torch.Tensor,
    values: torch.Tensor | None,
    skip: torch.Tensor | None,
    out: torch.nn.Linear,
    eps: float | None,
) -> torch.Tensor:
    """``out(flatten(n(a) + skip * values))`` for reads ``a: (T, B, H, d)``, with ``n`` the root-mean-square
    norm over ``d`` (``eps`` added to the mean square) or, with ``eps=None``, the identity; ``values``
    ``(T, B, H, d)`` and ``skip (H, d)`` both given or both None."""
    if (values is None) != (skip is None):
        raise ValueError("merged_read: values and skip must be given together")
    return _MergedRead.apply(a, values, skip, out.weight, out.bias, eps)
