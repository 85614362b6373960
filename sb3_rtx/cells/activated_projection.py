"""One linear projection whose output columns go through different activations, with one backward.

GaLiTe's and AGaLiTe's training path projects the stream once into every head's keys, queries,
values and gates, then applies a feature map to some columns and a sigmoid to others. Written with
autograd (``split``, then an activation per slice), the backward builds each slice's gradient on its
own and concatenates them into a full-width gradient before the projection's backward: at the
paper's size an extra 11 MB written per layer and step, and a sigmoid and a feature-map backward
per slice. Here the activations write their outputs into one buffer, the backward writes each
slice's gradient straight into one full-width buffer (the derivative taken from the saved output:
``softplus' = 1 - exp(-y)``, ``relu' = [y > 0]``, ``sigmoid' = y (1 - y)``), and the projection's
three gradients are one matmul each. The pre-activation output is never kept, nor are the columns
that are not activated (the values), which the caller's convolution copies anyway.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

#: the activations a column group may have
ACTIVATIONS = ("identity", "sigmoid", "softplus", "relu")


def _activate(kind: str, x: torch.Tensor, out: torch.Tensor) -> None:
    if kind == "sigmoid":
        torch.sigmoid(x, out=out)
    elif kind == "softplus":
        torch.ops.aten.softplus.out(x, 1, 20, out=out)  # F.softplus's defaults (it has no out= form)
    else:
        torch.clamp_min(x, 0.0, out=out)


def _derivative_times(kind: str, grad: torch.Tensor, y: torch.Tensor, out: torch.Tensor) -> None:
    """``out = grad * f'(x)``, with ``f'`` from the output ``y = f(x)``."""
    if kind == "sigmoid":
        torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=out)  # grad * y (1 - y), one pass
    elif kind == "softplus":
        # 1 - exp(-y) = -expm1(-y), exact where y is tiny; built in ``out`` (no temporary: this
        # backward runs at the training step's peak)
        torch.neg(y, out=out).expm1_().mul_(grad).neg_()
    else:
        torch.mul(grad, y > 0, out=out)


class ActivatedProjection(torch.autograd.Function):
    """``linear(x)`` viewed as ``(..., groups, columns)``, with column slices activated and returned
    as views of one buffer, identity slices as copies (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, slices: Sequence[tuple[int, int, str]]):
        projected = F.linear(x, weight, bias)
        projected = projected.view(*projected.shape[:-1], groups, -1)
        # the activated columns packed into one buffer, which backward keeps (an activation's
        # derivative is taken from its output); identity columns come out as copies of their own,
        # which nothing here keeps
        packed = [(start, end, kind) for start, end, kind in slices if kind != "identity"]
        activated = projected.new_empty((*projected.shape[:-1], sum(end - start for start, end, _ in packed)))
        outputs, offset = [], 0
        for start, end, kind in slices:
            if kind == "identity":
                outputs.append(projected[..., start:end].clone())
                continue
            out = activated[..., offset : offset + end - start]
            _activate(kind, projected[..., start:end], out)
            outputs.append(out)
            offset += end - start
        ctx.save_for_backward(x, weight, activated)
        ctx.slices = slices
        ctx.has_bias = bias is not None
        return tuple(outputs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        x, weight, activated = ctx.saved_tensors
        grad_projected = activated.new_empty((*activated.shape[:-1], weight.shape[0] // activated.shape[-2]))
        offset = 0
        for (start, end, kind), grad in zip(ctx.slices, grads, strict=True):
            target = grad_projected[..., start:end]
            if grad is None:
                target.zero_()
            elif kind == "identity":
                target.copy_(grad)
            else:
                _derivative_times(kind, grad, activated[..., offset : offset + end - start], target)
            offset += 0 if kind == "identity" else end - start
        flat = grad_projected.view(-1, weight.shape[0])
        needs = ctx.needs_input_grad
        grad_x = (flat @ weight).view_as(x) if needs[0] else None
        grad_weight = flat.t() @ x.reshape(-1, x.shape[-1]) if needs[1] else None
        grad_bias = flat.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias, None, None


def activated_projection(
    x: torch.Tensor, layer: torch.nn.Linear, groups: int, columns: Sequence[tuple[int, str]]
) -> tuple[torch.Tensor, ...]:
    """``layer(x)`` as ``(..., groups, sum of widths)``, cut into consecutive ``columns``
    ``(width, activation)``, each activated (a view of a shared buffer; an ``"identity"`` one a copy)."""
    total = sum(width for width, _ in columns)
    if groups * total != layer.out_features:
        raise ValueError(
            f"activated_projection: {groups} groups of columns {[width for width, _ in columns]} "
            f"do not match the layer's {layer.out_features} outputs"
        )
    unknown = {kind for _, kind in columns} - set(ACTIVATIONS)
    if unknown:
        raise ValueError(f"activated_projection: unknown activation(s) {sorted(unknown)}; known: {ACTIVATIONS}")
    ends = itertools.accumulate(width for width, _ in columns)
    slices = tuple((end - width, end, kind) for end, (width, kind) in zip(ends, columns, strict=True))
    return ActivatedProjection.apply(x, layer.weight, layer.bias, groups, slices)
