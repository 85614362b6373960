"""One linear projection whose output columns go through different activations, with one backward.

GaLiTe's and AGaLiTe's training path projects the stream once into every head's keys, queries,
values and gates, then applies a feature map to some columns and a sigmoid to others. Written with
autograd (``split``, then an activation per slice), the backward builds each slice's gradient on its
own and concatenates them into a full-width gradient before the projection's backward: at the
paper's size an extra 11 MB written per layer and step, and a sigmoid and a feature-map backward
per slice. Here the columns of each activation are one matrix product of their own into one
contiguous buffer, activated in place; the backward writes each slice's gradient straight into its
activation's contiguous gradient buffer, takes the derivative over the whole run from the saved
output (``softplus' = 1 - exp(-y)``, ``relu' = [y > 0]``, ``sigmoid' = y (1 - y)``), and the
projection's gradients are a matmul or two per run. The pre-activation output is never kept, nor
are the columns that are not activated (the values). Why a product per run, not one wide product
sliced: an activation reading a slice of a wide buffer (or its derivative writing one) ran 2-3x
slower per element than over a contiguous one on a CPU, and the wide buffer was a copy more (the
values' columns); the projection's forward and backward took 15-25% less time per layer, measured
at the efficiency benchmark's sizes (T=128, B=16, one thread). The columns are computed in an order
of their own (:class:`_KindRuns`: each activation one long run across the heads, not a few columns
per head), through a row gather of the weight; the layer's parameters keep their order.
"""

from __future__ import annotations

import functools
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


#: elements of a run's derivative built at once in backward (the softplus derivative needs a
#: temporary; in blocks of rows it stays 1 MB, not the run's whole size)
DERIVATIVE_BLOCK_ELEMENTS = 1 << 18


def _times_derivative(kind: str, grad: torch.Tensor, y: torch.Tensor) -> None:
    """``grad *= f'(x)`` in place, with ``f'`` from the output ``y = f(x)``; both ``(N, width)``."""
    if kind == "sigmoid":
        torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=grad)  # grad * y (1 - y), one pass
    elif kind == "softplus":
        # 1 - exp(-y) = -expm1(-y), exact where y is tiny
        rows = max(1, DERIVATIVE_BLOCK_ELEMENTS // max(1, y.shape[-1]))
        for first in range(0, y.shape[0], rows):
            block = slice(first, first + rows)
            grad[block].mul_(torch.neg(y[block]).expm1_()).neg_()
    else:
        grad.mul_(y > 0)


class _KindRuns:
    """The projection's columns reordered so that the columns of one activation are one contiguous
    run per row: the layer's columns, per head ``[wk wq v beta g p1 p2 p3]``, are computed as
    ``[(beta g p3) per head | (wk wq p1 p2) per head | v per head]`` (activations in the order of
    :data:`ACTIVATIONS`, identity last), and each activation is one element-wise op over its run.

    Why: a slice of a few columns per head (``eta = 8`` wide, strided by the head's 344) is a loop
    of 8 elements per row for torch's element-wise kernels, ~25x slower per element than a long
    contiguous run (the paper-size training step spent ~4 ms per layer on softplus over such
    slices). Within a run the columns stay head-major, so every factor comes out as a view of a
    ``(..., groups, per-head width)`` buffer, whose env and head dimensions merge without a copy
    (the key side's chunk layout relies on that: a factor-major order made it copy every factor,
    7 MB more at the paper size's peak). The reorder costs a row gather of the weight; the layer's
    parameters keep their order, so saved models read the same."""

    def __init__(self, groups: int, slices: Sequence[tuple[int, int, str]]) -> None:
        width = sum(end - start for start, end, _ in slices)
        kinds = sorted({kind for *_, kind in slices}, key=lambda k: (k == "identity", ACTIVATIONS.index(k)))
        order: list[int] = []
        #: per kind: (first, end) of its run in the reordered columns and its width per group
        self.runs: list[tuple[str, int, int, int]] = []
        #: per slice (in the caller's order): (index of its run, its offset within a group's part)
        self.places: list[tuple[int, int]] = [(0, 0)] * len(slices)
        for run, kind in enumerate(kinds):
            members = [i for i, (*_, k) in enumerate(slices) if k == kind]
            per_group = 0
            for i in members:
                self.places[i] = (run, per_group)
                per_group += slices[i][1] - slices[i][0]
            first = len(order)
            order += [g * width + c for g in range(groups) for i in members for c in range(slices[i][0], slices[i][1])]
            self.runs.append((kind, first, len(order), per_group))
        self.order = order
        self._index: dict[torch.device, torch.Tensor] = {}

    def index(self, device: torch.device) -> torch.Tensor:
        if device not in self._index:
            self._index[device] = torch.tensor(self.order, dtype=torch.long, device=device)
        return self._index[device]


@functools.cache
def _kind_runs(groups: int, slices: tuple[tuple[int, int, str], ...]) -> _KindRuns:
    """The layout of one projection's columns, made once per layout (forward and backward share it)."""
    return _KindRuns(groups, slices)


class ActivatedProjection(torch.autograd.Function):
    """``linear(x)`` viewed as ``(..., groups, columns)``, with column slices activated and returned
    as views of one buffer per activation (see the module docstring and :class:`_KindRuns`)."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, slices: tuple[tuple[int, int, str], ...]):
        layout = _kind_runs(groups, slices)
        index = layout.index(weight.device)
        ordered = weight.index_select(0, index)
        ordered_bias = None if bias is None else bias.index_select(0, index)
        flat_x = x.reshape(-1, x.shape[-1])
        # one matrix product per activation run, so every buffer is contiguous: an activation (and
        # in backward its derivative) over a slice of one wide product ran 2-3x slower per element
        buffers = []
        for kind, first, end, per_group in layout.runs:
            buffer = F.linear(flat_x, ordered[first:end], None if ordered_bias is None else ordered_bias[first:end])
            if kind != "identity":
                _activate(kind, buffer, buffer)
            buffers.append(buffer.view(*x.shape[:-1], groups, per_group))
        outputs = []
        for (start, end, _), (run, offset) in zip(slices, layout.places, strict=True):
            outputs.append(buffers[run][..., offset : offset + end - start])
        # backward keeps an activation's output (its derivative is taken from it), not the values'
        kept = [buffer for buffer, (kind, *_) in zip(buffers, layout.runs, strict=True) if kind != "identity"]
        ctx.save_for_backward(x, weight, *kept)  # not ``ordered``: backward gathers it again (cheap, and not kept)
        ctx.slices, ctx.groups = slices, groups
        ctx.has_bias = bias is not None
        return tuple(outputs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        x, weight, *kept = ctx.saved_tensors
        slices, groups = ctx.slices, ctx.groups
        layout = _kind_runs(groups, slices)
        index = layout.index(weight.device)
        ordered = weight.index_select(0, index)
        needs = ctx.needs_input_grad
        flat_x = x.reshape(-1, x.shape[-1])
        grad_x = None
        grad_ordered = ordered.new_empty(ordered.shape) if needs[1] else None
        grad_ordered_bias = ordered.new_empty(ordered.shape[0]) if ctx.has_bias and needs[2] else None
        outputs = iter(kept)
        members: list[list[tuple[int, int, torch.Tensor | None]]] = [[] for _ in layout.runs]
        for (start, end, _), (run, offset), grad in zip(slices, layout.places, grads, strict=True):
            members[run].append((offset, end - start, grad))
        for (kind, first, end, per_group), run_members in zip(layout.runs, members, strict=True):
            # the run's gradient, one contiguous (N, width) buffer; a run of one slice whose gradient
            # is already laid out so is used as it is (the values': their gradient, unactivated)
            only = run_members[0][2] if len(run_members) == 1 else None
            if only is not None and kind == "identity" and only.is_contiguous():
                grad_run = only.view(flat_x.shape[0], end - first)
            else:
                grad_run = x.new_empty((flat_x.shape[0], end - first))
                places = grad_run.view(-1, groups, per_group)
                for offset, width, grad in run_members:
                    target = places[..., offset : offset + width]
                    if grad is None:
                        target.zero_()
                    else:
                        target.copy_(grad.reshape(target.shape))
            if kind != "identity":
                _times_derivative(kind, grad_run, next(outputs).view(grad_run.shape))
            rows = ordered[first:end]
            if needs[0]:
                # addmm with out=, not addmm_: the same kernel, and torch's FLOP counter sees it
                grad_x = grad_run @ rows if grad_x is None else torch.addmm(grad_x, grad_run, rows, out=grad_x)
            if grad_ordered is not None:
                torch.mm(grad_run.t(), flat_x, out=grad_ordered[first:end])
            if grad_ordered_bias is not None:
                torch.sum(grad_run, 0, out=grad_ordered_bias[first:end])
        # the gradients of the reordered rows, put back in the parameters' order
        grad_weight = None if grad_ordered is None else torch.empty_like(weight).index_copy_(0, index, grad_ordered)
        grad_bias = None
        if grad_ordered_bias is not None:
            grad_bias = torch.empty_like(grad_ordered_bias).index_copy_(0, index, grad_ordered_bias)
        return None if grad_x is None else grad_x.view_as(x), grad_weight, grad_bias, None, None


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
