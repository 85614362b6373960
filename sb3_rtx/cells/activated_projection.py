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
that are not activated (the values), which the caller's convolution copies anyway. The columns are
computed in an order of their own (:class:`_KindMajor`: each activation one long run across the
heads, not a few columns per head), through a row gather of the weight; the layer's parameters keep
their order.
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


class _KindMajor:
    """The projection's columns reordered so that every column group is one contiguous run across
    all groups (the heads) and the runs of one activation are adjacent: the layer's columns, per
    head ``[wk wq v beta g p1 p2 p3]``, are computed as ``[wk(all heads) wq p1 p2 | beta g p3 | v]``.

    Why: a slice of a few columns per head (``eta = 8`` wide, strided by the head's 344) is a loop
    of 8 elements per row for torch's element-wise kernels, ~25x slower per element than a long
    contiguous run (the paper-size training step spent ~4 ms per layer on softplus over such
    slices). The reorder costs a row gather of the weight (the layer's parameters keep their order,
    so saved models read the same)."""

    def __init__(self, groups: int, slices: Sequence[tuple[int, int, str]]) -> None:
        width = sum(end - start for start, end, _ in slices)
        kinds = [k for k in ACTIVATIONS if k != "identity"] + ["identity"]
        ordered = sorted(range(len(slices)), key=lambda i: kinds.index(slices[i][2]))
        order: list[int] = []
        #: per slice (in the caller's order): its run's offset in the reordered columns
        self.offsets = [0] * len(slices)
        for i in ordered:
            start, end, _ = slices[i]
            self.offsets[i] = len(order)
            order += [g * width + c for g in range(groups) for c in range(start, end)]
        self.order = order
        #: the activated columns are the reordered ones before this (the identity runs come last)
        self.n_activated = sum(groups * (end - start) for start, end, kind in slices if kind != "identity")
        #: (first, end, kind): maximal runs of one activation in the reordered columns
        self.runs: list[tuple[int, int, str]] = []
        for i in ordered:
            start, end, kind = slices[i]
            first, last = self.offsets[i], self.offsets[i] + groups * (end - start)
            if kind == "identity":
                continue
            if self.runs and self.runs[-1][2] == kind and self.runs[-1][1] == first:
                self.runs[-1] = (self.runs[-1][0], last, kind)
            else:
                self.runs.append((first, last, kind))
        self._index: dict[torch.device, torch.Tensor] = {}

    def index(self, device: torch.device) -> torch.Tensor:
        if device not in self._index:
            self._index[device] = torch.tensor(self.order, dtype=torch.long, device=device)
        return self._index[device]


_LAYOUTS: dict[tuple[int, tuple[tuple[int, int, str], ...]], _KindMajor] = {}


def _kind_major(groups: int, slices: tuple[tuple[int, int, str], ...]) -> _KindMajor:
    key = (groups, slices)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _KindMajor(groups, slices)
    return _LAYOUTS[key]


class ActivatedProjection(torch.autograd.Function):
    """``linear(x)`` viewed as ``(..., groups, columns)``, with column slices activated and returned
    as views of one buffer, identity slices as copies (see the module docstring and :class:`_KindMajor`)."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, slices: tuple[tuple[int, int, str], ...]):
        layout = _kind_major(groups, slices)
        index = layout.index(weight.device)
        projected = F.linear(x, weight.index_select(0, index), None if bias is None else bias.index_select(0, index))
        # the activated columns in one buffer, which backward keeps (an activation's derivative is
        # taken from its output); identity columns come out as copies of their own, which nothing
        # here keeps
        activated = projected.new_empty((*projected.shape[:-1], layout.n_activated))
        for first, end, kind in layout.runs:
            _activate(kind, projected[..., first:end], activated[..., first:end])
        outputs = []
        for (start, end, kind), offset in zip(slices, layout.offsets, strict=True):
            span = (offset, offset + groups * (end - start))
            if kind == "identity":
                part = projected[..., span[0] : span[1]].clone()
            else:
                part = activated[..., span[0] : span[1]]
            outputs.append(part.view(*part.shape[:-1], groups, end - start))
        ctx.save_for_backward(x, weight, activated)
        ctx.slices, ctx.groups = slices, groups
        ctx.has_bias = bias is not None
        return tuple(outputs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        x, weight, activated = ctx.saved_tensors
        slices, groups = ctx.slices, ctx.groups
        layout = _kind_major(groups, slices)
        index = layout.index(weight.device)
        grad_projected = activated.new_empty((*activated.shape[:-1], weight.shape[0]))
        for (start, end, kind), offset, grad in zip(slices, layout.offsets, grads, strict=True):
            span = slice(offset, offset + groups * (end - start))
            target = grad_projected[..., span]
            if grad is None:
                target.zero_()
            elif kind == "identity":
                target.copy_(grad.reshape(target.shape))
            else:
                _derivative_times(kind, grad.reshape(target.shape), activated[..., span], target)
        flat = grad_projected.view(-1, weight.shape[0])
        needs = ctx.needs_input_grad
        grad_x = (flat @ weight.index_select(0, index)).view_as(x) if needs[0] else None
        # the gradients of the reordered rows, put back in the parameters' order
        grad_weight, grad_bias = None, None
        if needs[1]:
            grad_weight = torch.empty_like(weight).index_copy_(0, index, flat.t() @ x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and needs[2]:
            grad_bias = weight.new_empty(weight.shape[0]).index_copy_(0, index, flat.sum(0))
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
