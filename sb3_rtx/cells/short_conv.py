"""A short causal convolution over time, one filter per channel, that never reaches across episodes.

A gated linear memory reads a weighted average of everything it wrote, with weights that decay
with age and carry no position, so it cannot pick out the item of exactly ``k`` steps ago from its
neighbours, nor take the difference of two consecutive observations (a velocity from positions).
Later linear recurrences put a short causal convolution before their memory for such local,
position-exact patterns (H3's shift SSM, Fu et al. 2023; Mamba's ``d_conv = 4``, Gu & Dao 2023;
the short convolutions of the GLA and DeltaNet layers in flash-linear-attention). Here it is
applied to the values: each value channel becomes a learned mix of its projection at the current
step and the ``kernel - 1`` steps before it, so a head that overwrites its memory every step
(write gate near 1) reads ``x_{t-j}`` exactly, and a value can be a difference of consecutive steps.

Three starts (``init=``): ``"identity"`` (tap 0 = 1, the others 0), so a fresh cell computes what
it did without the convolution; ``"mamba"``, every tap uniform in ``+-1 / sqrt(kernel)``
(PyTorch's default for a depthwise ``Conv1d``, as Mamba leaves its short convolution), with the
cell's direct path (``value_skip``) open at 1 as Mamba's ``D``; and ``"anchored"`` (the default
variant's, AGaLiTe's and GaLiTe's), Mamba's with tap 0 kept at 1 (the memory writes the current
value as from the identity). From the identity a tap ``j >= 1`` gets a gradient only through the
memory's decayed average until the direct path, which starts closed, has grown: a saddle.
Supervised, the identity start learns the item one step back and not three; both others learn both
(``benchmarks/probes/lag_recall.py``). In RL, on the development set, Mamba's start lowered T-Maze
40 and was rejected; the anchored start held every development task within the seeds' spread over
ten seeds and became AGaLiTe's default, then GaLiTe's (docs, "Learning memory").

The state is the last ``kernel - 1`` inputs of each channel, newest first; an episode start zeroes
what came before it, on the acting step and inside a training sequence alike.
"""

from __future__ import annotations

import torch
from torch import nn

from sb3_rtx.cells.base import check_positive_int
from sb3_rtx.cells.compiled_convolution import compiled_convolution_backward, compiled_convolution_forward
from sb3_rtx.cells.variants import check_choice


class ShortConvolution(nn.Module):
    """``y_t[c] = sum_j weight[c, j] * x_{t-j}[c]`` for ``j < kernel``, taps before the episode's start zero.

    :param channels: number of channels (each has its own ``kernel`` taps)
    :param kernel: taps, the current step included (>= 2; 1 would be a per-channel scale)
    :param init: ``"identity"``, ``"mamba"`` or ``"anchored"`` (see the module docstring)
    """

    def __init__(self, channels: int, kernel: int, init: str = "identity") -> None:
        super().__init__()
        check_positive_int("ShortConvolution", channels=channels, kernel=kernel)
        if kernel < 2:
            raise ValueError(f"ShortConvolution: kernel must be >= 2 (the current step and at least one before), got {kernel}")
        self.channels, self.kernel = channels, kernel
        check_choice("ShortConvolution", "value_conv_init", init)
        weight = torch.zeros(channels, kernel)
        if init in ("mamba", "anchored"):
            bound = kernel**-0.5
            weight.uniform_(-bound, bound)
        if init in ("identity", "anchored"):  # the current step's tap at 1
            weight[:, 0] = 1.0
        self.weight = nn.Parameter(weight)

    def state_shape(self) -> tuple[int, int]:
        """Shape (without batch) of the carried inputs: ``(kernel - 1, channels)``, newest first."""
        return self.kernel - 1, self.channels

    def step(self, x: torch.Tensor, past: torch.Tensor, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step: ``x: (B, C)``, ``past: (B, kernel - 1, C)``, ``keep: (B, 1, 1)`` (0 where an
        episode starts) or None -> ``y: (B, C)`` and the new ``past``."""
        if keep is not None:
            past = past * keep
        # (B, kernel, C) newest first, times the taps (kernel, C), summed over the taps
        window = torch.cat([x.unsqueeze(1), past], dim=1)
        y = (window * self.weight.t()).sum(1)
        return y, window[:, :-1]

    def forward(
        self, x: torch.Tensor, past: torch.Tensor, starts: torch.Tensor, compiled: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sequence: ``x: (T, B, C)``, ``past: (B, kernel - 1, C)``, ``starts: (T, B)`` (1 where an
        episode starts, before that step) -> ``y: (T, B, C)`` and the ``past`` after the last step;
        ``compiled``: the convolution as the fused kernels of :mod:`~sb3_rtx.cells.compiled_convolution`."""
        seq_len, kernel = x.shape[0], self.kernel
        # every input, oldest first: the carried ones, then the sequence's
        padded = torch.cat([past.flip(1).transpose(0, 1), x], dim=0)  # (kernel - 1 + T, B, C)
        # tap j at step t reads x_{t-j} if no episode starts in (t - j, t]: the count of starts up to t
        # equals the count up to t - j (the carried steps count none)
        started = torch.cumsum(starts, dim=0)
        started = torch.cat([started.new_zeros(kernel - 1, *started.shape[1:]), started], dim=0)
        latest = started[kernel - 1 :]
        same_episode = torch.stack(
            [(started[kernel - 1 - j : kernel - 1 - j + seq_len] == latest) for j in range(kernel)], dim=-1
        ).to(x.dtype)  # (T, B, kernel), tap 0 always 1
        y = _MaskedCausalConvolution.apply(padded, same_episode, self.weight, compiled)
        # the new past: x_{T-1-j} for j < kernel - 1, zero where an episode started after it
        new_past = (padded[-kernel + 1 :].flip(0) * same_episode[-1, :, : kernel - 1].t().unsqueeze(-1)).transpose(0, 1)
        return y, new_past


class _MaskedCausalConvolution(torch.autograd.Function):
    """``y_t = sum_j weight[:, j] * padded[kernel - 1 + t - j] * mask[t, :, j]``, saving only the padded
    input and the small mask for backward (written with autograd, every tap's masked, shifted copy of
    the input was kept: ``kernel`` copies of the values per layer)."""

    @staticmethod
    def forward(ctx, padded: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, compiled: bool) -> torch.Tensor:
        ctx.save_for_backward(padded, mask, weight)
        ctx.compiled = compiled
        if compiled:
            return compiled_convolution_forward(padded, mask, weight)
        kernel = weight.shape[1]
        seq_len = padded.shape[0] - kernel + 1
        y = padded[kernel - 1 :] * weight[:, 0]
        for j in range(1, kernel):
            y.addcmul_(padded[kernel - 1 - j : kernel - 1 - j + seq_len], mask[..., j : j + 1] * weight[:, j])
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        padded, mask, weight = ctx.saved_tensors
        if ctx.compiled:
            grad_padded, grad_weight = compiled_convolution_backward(grad_y, padded, mask, weight)
            return grad_padded, None, grad_weight, None
        kernel = weight.shape[1]
        seq_len = grad_y.shape[0]
        grad_padded = torch.zeros_like(padded) if ctx.needs_input_grad[0] else None
        grad_weight = torch.empty_like(weight) if ctx.needs_input_grad[2] else None
        for j in range(kernel):
            window = slice(kernel - 1 - j, kernel - 1 - j + seq_len)
            masked = grad_y * mask[..., j : j + 1] if j else grad_y
            if grad_padded is not None:
                grad_padded[window].addcmul_(masked, weight[:, j])
            if grad_weight is not None:
                grad_weight[:, j] = (masked * padded[window]).sum((0, 1))
        return grad_padded, None, grad_weight, None
