"""Per-dimension running statistics of a cell's input, and the input standardised by them.

What a first layer with ``memory_input="standardised"`` reads: each input dimension minus its
running mean, divided by its running standard deviation, clipped to +-10; with ``"scaled"``, each
dimension divided by its running root mean square, not centred, clipped the same. The statistics are those
of SB3's ``VecNormalize`` (a running mean and variance merged batch by batch with the parallel
update of Chan, Golub and LeVeque 1979, and ``VecNormalize``'s epsilon and clip), kept as buffers of
the cell so that a saved model and every export carry them. Unlike ``VecNormalize`` they change
only when whoever trains the cell calls :meth:`RunningStandardiser.update` (RtxPPO does once per
rollout, after its update), never inside ``forward``: the forward pass computes the same thing in
training and in acting, step by step and over a sequence, and an untrained cell reads its input as
it is (mean 0, variance 1).

The divisor (``sqrt(var + eps)``, or ``sqrt(var + mean^2 + eps)``) is kept as a buffer of its own,
recomputed whenever the statistics change (an update, a load, a cast), not taken in ``forward``:
the acting step at batch 1 costs its dispatches, and this saves four of them per step, with the
same bits (the same ops in the same order, in the statistics' dtype). It is not saved: a loaded
model recomputes it from the saved statistics.

Why per dimension: each dimension is standardised by its own statistics, so no dimension's noise
sets another's size (what a LayerNorm of the observation does, docs, "Noise"), and a rare input (a
bit set once per episode, as a cue is) is read large, where raw it is one bit beside several.
"""

from __future__ import annotations

import torch
from torch import nn

#: ``VecNormalize``'s defaults: the variance's epsilon and the clip of the standardised value
EPSILON = 1e-8
CLIP = 10.0
#: the ``memory_input`` values whose first layer reads the observation by these statistics
READS = ("standardised", "scaled")


class RunningStandardiser(nn.Module):
    """``clamp((x - mean) / sqrt(var + eps), -clip, clip)`` over the last dimension, with ``mean``
    and ``var`` running statistics updated only by :meth:`update` (see the module docstring); with
    ``centre=False``, ``clamp(x / sqrt(var + mean^2 + eps), -clip, clip)``: each dimension divided by
    its root mean square, what is the same at every step kept.

    :param size: the input's last dimension
    :param centre: subtract the running mean (True) or only divide by the running root mean square
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor
    divisor: torch.Tensor

    def __init__(self, size: int, centre: bool = True) -> None:
        super().__init__()
        self.size = size
        self.centre = centre
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        # an integer, which ``module.to(dtype)`` leaves as it is
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._refresh_divisor()

    def _refresh_divisor(self) -> None:
        """(Re)make the ``divisor`` buffer from ``mean`` and ``var``: derived, so not in the state dict."""
        # the ops forward took before the divisor was kept, in the same order and dtype: same bits;
        # outside inference mode, so that a divisor refreshed there is not an inference tensor,
        # which a later training step could not save for backward
        with torch.inference_mode(False), torch.no_grad():
            mean, var = self.mean, self.var
            divisor = torch.sqrt(var + EPSILON) if self.centre else torch.sqrt(var + mean * mean + EPSILON)
        self.register_buffer("divisor", divisor, persistent=False)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        # a cast (``.double()``, ``.to(dtype)``) recomputes the divisor from the cast statistics, as
        # forward did before it was kept
        result = super()._apply(fn, recurse)
        self._refresh_divisor()
        return result

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._refresh_divisor()

    def __setstate__(self, state: dict) -> None:
        # a module pickled before the divisor was kept has none: make it from its statistics
        super().__setstate__(state)
        if "divisor" not in self._buffers:
            self._refresh_divisor()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        divisor = self.divisor.to(x.dtype)
        if not self.centre:
            return torch.clamp(x / divisor, -CLIP, CLIP)
        return torch.clamp((x - self.mean.to(x.dtype)) / divisor, -CLIP, CLIP)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the statistics of ``x`` (any shape ending in ``size``; NaN-free) into the running ones."""
        if x.shape[-1] != self.size:
            raise ValueError(f"input statistics: expected inputs with {self.size} features, got shape {tuple(x.shape)}")
        batch = x.detach().reshape(-1, self.size).to(torch.float64)
        if batch.shape[0] == 0:
            return
        batch_count = float(batch.shape[0])
        batch_mean = batch.mean(dim=0)
        batch_var = batch.var(dim=0, unbiased=False)
        count = float(self.count)
        total = count + batch_count
        mean, var = self.mean.to(torch.float64), self.var.to(torch.float64)
        delta = batch_mean - mean
        # Chan et al.'s merge of two (mean, sum of squared deviations) pairs; at count 0, the batch's own
        m2 = var * count + batch_var * batch_count + delta.square() * count * batch_count / total
        self.mean.copy_(mean + delta * batch_count / total)
        self.var.copy_(m2 / total)
        self.count.fill_(int(total))
        self._refresh_divisor()

    def extra_repr(self) -> str:
        return f"size={self.size}, centre={self.centre}, count={int(self.count)}"
