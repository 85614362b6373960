"""GTrXL baseline (Parisotto et al. 2020): GRU-gated TrXL-I with a sliding memory of ``memory_len`` steps.

Each layer keeps the (layer-normed) inputs of its last ``memory_len`` steps. A query at step t
attends, with causal softmax attention, to the ``memory_len`` steps before it and to itself - the
same window whether the steps arrive one at a time (acting) or as a whole sequence (training), so
both forms agree. Positions are encoded by a learned per-head bias on the relative distance
(0..memory_len), which depends only on distances and so survives the window sliding.

The multi-step form is one ``scaled_dot_product_attention`` call per layer over
``[memory; sequence]`` with a mask that enforces the window, causality and episode boundaries
(slots from before an episode start are never attended to). Its cost and state grow with
``memory_len``: that is the comparison the AGaLiTe paper makes.

Keys and values are recomputed from the stored inputs at every step rather than cached, so the
state is the paper's ``memory_len x d_model`` per layer (caching them would cost 2 * heads * d_head
per slot instead of d_model).

``memory_input="observation"`` (an option; the default is the paper's ``"stream"``): the first
layer attends over the cell's inputs themselves, not over ``LN`` of the embedded stream (see
:mod:`sb3_rtx.cells.block` for why that matters under observation noise), and so stores
``memory_len x input_dim`` in that layer.

``value_gain`` and ``query_key_gain`` (options): the gains every layer's value projection, and its
query and key projections, start with, in place of the projection's own (sqrt 2 reading the stream,
0.3 reading the observation). GTrXL's softmax read is a weighted average of the values, so their gain
sets the read's size against the stream it joins; the queries' and keys' gain sets how sharply the
attention can tell steps apart by content at the start (the logits are their products). AGaLiTe's
read is normalised per head, so there one gain serves both.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sb3_rtx.cells.base import CellState, check_positive_int, check_positive_number
from sb3_rtx.cells.block import (
    OBSERVATION_PROJECTION_GAIN,
    GatedTransformerCell,
    SequenceMixer,
    linear,
    orthogonal_linear,
)


class WindowContext:
    """Attention mask pieces shared by all layers of one call (computed once per call)."""

    def __init__(self, valid_len: torch.Tensor, starts: torch.Tensor, memory_len: int) -> None:
        seq_len = starts.shape[0]
        device = starts.device
        started = starts.bool()
        # episode index of each sequence step: number of starts at or before it
        episode = started.long().cumsum(0).transpose(0, 1)  # (B, T)
        # memory slot i (0 oldest .. M-1 newest) is i - M steps before the sequence; it belongs to the
        # current episode (index 0) if it is among the last valid_len steps, else to none (-1)
        slot_age = torch.arange(memory_len, 0, -1, device=device)  # (M,)
        slot_valid = slot_age.unsqueeze(0) <= valid_len.round().long().unsqueeze(1)  # (B, M)
        memory_episode = torch.where(slot_valid, 0, -1)
        key_episode = torch.cat([memory_episode, episode], dim=1)  # (B, M + T)
        same_episode = key_episode.unsqueeze(1) == episode.unsqueeze(2)  # (B, T, M + T)
        # relative distance query -> key in the concatenated sequence; allowed if 0 <= dist <= M
        query_pos = torch.arange(seq_len, device=device).unsqueeze(1) + memory_len
        key_pos = torch.arange(memory_len + seq_len, device=device).unsqueeze(0)
        distance = query_pos - key_pos  # (T, M + T)
        in_window = (distance >= 0) & (distance <= memory_len)
        self.allowed = (same_episode & in_window.unsqueeze(0)).unsqueeze(1)  # (B, 1, T, M + T)
        self.distance = distance.clamp(0, memory_len)
        self.starts = started
        # steps of the current episode held in memory after this call
        steps = torch.arange(1, seq_len + 1, device=device).unsqueeze(1)
        last_start = torch.where(started, steps - 1, torch.full_like(steps, -1)).max(0).values  # (B,)
        continuing = valid_len.round().long() + seq_len
        self.new_valid_len = torch.where(last_start >= 0, seq_len - last_start, continuing).clamp(max=memory_len)


class GTrXLMixer(SequenceMixer):
    """Multi-head softmax attention over a sliding memory of what it reads; state ``(memory: (M, d_in),)``.

    ``in_features``: the width of what it reads when that is not the stream (``d_model``): a first
    layer that reads the observation, whose projections then start with a small gain
    (:data:`~sb3_rtx.cells.block.OBSERVATION_PROJECTION_GAIN`), as GaLiTe's and AGaLiTe's do.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_head: int,
        memory_len: int,
        in_features: int | None = None,
        value_gain: float | None = None,
        query_key_gain: float | None = None,
    ) -> None:
        super().__init__()
        self.d_model, self.n_heads, self.d_head, self.memory_len = d_model, n_heads, d_head, memory_len
        self.d_in = in_features or d_model
        gain = math.sqrt(2) if in_features is None else OBSERVATION_PROJECTION_GAIN
        self.query = orthogonal_linear(self.d_in, n_heads * d_head, gain=gain if query_key_gain is None else query_key_gain)
        self.key_value = orthogonal_linear(self.d_in, 2 * n_heads * d_head, gain=gain)  # fused K and V
        with torch.no_grad():  # rows that start at a gain of their own start again, orthogonal at it
            if query_key_gain is not None:
                nn.init.orthogonal_(self.key_value.weight[: n_heads * d_head], gain=query_key_gain)
            if value_gain is not None:
                nn.init.orthogonal_(self.key_value.weight[n_heads * d_head :], gain=value_gain)
        self.out = orthogonal_linear(n_heads * d_head, d_model)
        self.position_bias = nn.Parameter(torch.zeros(n_heads, memory_len + 1))

    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.memory_len, self.d_in),)

    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        window: WindowContext = context
        seq_len, batch, _ = h.shape
        (memory,) = layer_state  # (B, M, D)
        inputs = torch.cat([memory, h.transpose(0, 1)], dim=1)  # (B, M + T, D)
        q = linear(self.query, h).view(seq_len, batch, self.n_heads, self.d_head).permute(1, 2, 0, 3)  # (B, H, T, d)
        k, v = (
            linear(self.key_value, inputs)
            .view(batch, self.memory_len + seq_len, 2, self.n_heads, self.d_head)
            .permute(2, 0, 3, 1, 4)
        )  # each (B, H, M + T, d)
        bias = self.position_bias[:, window.distance].unsqueeze(0)  # (1, H, T, M + T)
        mask = bias.masked_fill(~window.allowed, float("-inf"))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, d)
        out = linear(self.out, attended.permute(2, 0, 1, 3).reshape(seq_len, batch, self.n_heads * self.d_head))
        return out, (inputs[:, seq_len:],)


class GTrXL(GatedTransformerCell):
    """GTrXL cell (gated Transformer-XL with a sliding window memory).

    State per env: ``n_layers * memory_len * d_model + 1`` floats (the 1 counts the valid memory
    slots of the current episode); with ``memory_input="observation"`` the first layer's memory
    holds ``memory_len * input_dim`` instead, in a state tensor of its own after the other layers'.

    :param input_dim: size of each input vector
    :param n_layers, d_model, n_heads, d_head, d_ffc: sizes (paper's T-Maze defaults)
    :param memory_len: steps each layer remembers
    :param memory_input: ``"stream"`` (the paper's), ``"observation"``, ``"both"`` (the two side by
        side), ``"standardised"`` or ``"scaled"`` (the observation by its running statistics), what the first layer
        attends over (see :mod:`sb3_rtx.cells.block`)
    :param value_gain: the gain every layer's value projection starts with (orthogonal); None: its
        projection's (sqrt 2 reading the stream, 0.3 reading the observation, standardised or not, or both; see the module
        docstring)
    :param query_key_gain: the same for every layer's query and key projections
    :param output_scale: a factor on the cell's output (see :class:`~sb3_rtx.cells.block.GatedTransformerCell`)
    :param learn_output_scale: the factor is a learned scalar starting at ``output_scale``
    """

    name = "gtrxl"

    def __init__(
        self,
        input_dim: int,
        n_layers: int = 4,
        d_model: int = 128,
        n_heads: int = 4,
        d_head: int = 64,
        d_ffc: int = 128,
        memory_len: int = 128,
        memory_input: str = "stream",
        value_gain: float | None = None,
        query_key_gain: float | None = None,
        output_scale: float = 1.0,
        learn_output_scale: bool = False,
    ) -> None:
        check_positive_int("GTrXL", n_heads=n_heads, d_head=d_head, memory_len=memory_len)
        gains = {
            key: value
            for key, value in dict(value_gain=value_gain, query_key_gain=query_key_gain).items()
            if value is not None
        }
        check_positive_number("GTrXL", False, **gains)
        self.n_heads, self.d_head, self.memory_len, self.memory_input = n_heads, d_head, memory_len, memory_input
        self.gains = {key: float(value) for key, value in gains.items()}  # the gains given (recorded)
        super().__init__(
            input_dim,
            n_layers,
            d_model,
            d_ffc,
            lambda in_features: GTrXLMixer(d_model, n_heads, d_head, memory_len, in_features, **self.gains),
            memory_input=memory_input,
            output_scale=output_scale,
            learn_output_scale=learn_output_scale,
        )

    def recorded_choices(self) -> dict[str, Any]:
        # each recorded only where it is not the paper's (the only choice before it existed), so that
        # what earlier releases recorded (and the benchmarks' runs keyed on it) stays what it was
        recorded: dict[str, Any] = {} if self.memory_input == "stream" else {"memory_input": self.memory_input}
        return {**recorded, **self.gains}

    def shared_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((),)  # number of valid memory slots (steps of the current episode), one per env

    def make_context(self, shared: CellState, starts: torch.Tensor) -> Any:
        (valid_len,) = shared
        return WindowContext(valid_len, starts, self.memory_len)

    def advance_shared(self, shared: CellState, starts: torch.Tensor, context: Any) -> CellState:
        return (context.new_valid_len.to(shared[0].dtype),)
