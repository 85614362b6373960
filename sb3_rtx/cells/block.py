"""The GTrXL-style gated transformer block shared by GaLiTe, AGaLiTe and GTrXL.

Per layer (Parisotto et al. 2020, "Stabilizing Transformers for RL", TrXL-I with GRU gating):

    x <- gate1(x, relu(attention(LN(x))))        (read_merge="gated", GTrXL's and the paper's)
    x <- gate2(x, relu(MLP(LN(x))))

The gates' update bias starts at 2, so a fresh block is close to the identity and the whole cell
starts out as a Markov (memoryless) feature extractor. That is GTrXL's intent (learn reactive
behaviour first), and for a memory it is a cost: the GRU gate mixes the read with the current
observation inside its ``tanh`` and scales it by a ``z`` of about 0.12 that the observation
modulates, so a cue the read carries is mostly lost before the heads see it. With
``read_merge="residual"`` the attention sub-layer is the plain pre-norm residual of the
identity-map reordering (TrXL-I without its gate; the block of later gated linear recurrences such
as RetNet, GLA and xLSTM):

    x <- x + attention(LN(x))
    x <- gate2(x, relu(MLP(LN(x))))

A cell = dense embedding + relu, then ``n_layers`` blocks. Only the attention part differs between
the three cells; it is given by :class:`SequenceMixer`.

What the first layer's memory reads (``memory_input=``): ``"stream"`` is the paper's and GTrXL's,
``LN(x)`` of the embedded stream. With ``"observation"`` the first block's mixer projects the cell's
input itself (the observation features), linearly and without a norm, as an LSTM's gates do; its
residual stream is still the embedding. The embedding and the norm mix every observation dimension
into every feature the memory projects from, so a cue carried by one input dimension shares each of
them with whatever noise the other dimensions carry, and the norm divides the cue by a size the
noise sets: under strong Gaussian observation noise an LSTM stops learning cue recall behind
that embedding and norm, and AGaLiTe learns it once its memory reads the observation (docs,
"Learning memory", "Gaussian noise: the memory reads the observation"). Read raw, though, a step
whose observation is small beside the others' (the plain T-Maze's cue, one bit among several
position bits) writes a small value, where after the norm every step has the same size; with
``"both"`` the first memory projects the two side by side, ``[observation, LN(x)]`` (docs, "How
the defaults were found", "The plain T-Maze"). With ``"standardised"`` the first memory projects the
observation with each dimension standardised by the cell's running statistics of it
(:mod:`~sb3_rtx.cells.input_statistics`, updated by RtxPPO once per rollout): no dimension's size is
set by another's, and a rare input (a cue bit set once per episode) is read large; ``"scaled"``
only divides each dimension by its running root mean square, keeping what is the same at every
step. Later layers read the stream (it carries the layers below).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, cast
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from sb3_rtx.cells.base import CellState, RecurrentCell, check_positive_int, check_positive_number
from sb3_rtx.cells.input_statistics import READS as STATISTICS_READS
from sb3_rtx.cells.input_statistics import RunningStandardiser
from sb3_rtx.cells.variants import CHOICES


def orthogonal_linear(in_features: int, out_features: int, gain: float = math.sqrt(2), bias: bool = True) -> nn.Linear:
    """Linear layer with orthogonal weights and zero bias (the paper's initialisation)."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    nn.init.orthogonal_(layer.weight, gain=gain)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` without ``nn.Module.__call__`` (hook handling costs microseconds per call, and
    the acting path at batch 1 is a few hundred small ops, so per-call overhead is its main cost)."""
    return F.linear(x, layer.weight, layer.bias)


def layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` without ``nn.Module.__call__`` (see :func:`linear`)."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


class GRUGate(nn.Module):
    """GRU-style gating layer g(x, y) of GTrXL, with fused projections.

    r = sigmoid(W_r y + U_r x), z = sigmoid(W_z y + U_z x - b_g), h = tanh(W_h y + U_h (r * x)),
    g = (1 - z) * x + z * h.
    """

    def __init__(self, d_model: int, gate_bias: float = 2.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.from_y = nn.Linear(d_model, 3 * d_model, bias=False)  # W_r, W_z, W_h
        self.from_x = nn.Linear(d_model, 2 * d_model, bias=False)  # U_r, U_z
        self.reset_x = nn.Linear(d_model, d_model, bias=False)  # U_h
        self.gate_bias = nn.Parameter(torch.full((d_model,), float(gate_bias)))
        for layer in (self.from_y, self.from_x, self.reset_x):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = self.d_model
        # split, not two slices: one view op, and in backward one concatenation of the parts'
        # gradients where each slice's backward wrote a zero-filled full-width tensor to be summed
        # (torch.split_with_sizes: Tensor.split's Python wrapper costs more than the two slices did)
        from_y_rz, from_y_h = torch.split_with_sizes(linear(self.from_y, y), [2 * d, d], dim=-1)
        # r and z in one add and one sigmoid (fewer small ops: the acting path is dispatch-bound);
        # the bias is padded to both gates rather than subtracted in place from a slice, which an
        # exported graph would turn into a scatter per gate
        rz = torch.sigmoid(from_y_rz + linear(self.from_x, x) - F.pad(self.gate_bias, (d, 0)))
        r, z = torch.split_with_sizes(rz, [d, d], dim=-1)
        # W_h y + U_h (r * x) as one addmm
        h = torch.addmm(from_y_h.reshape(-1, d), (r * x).reshape(-1, d), self.reset_x.weight.t())
        return torch.lerp(x, torch.tanh(h).view_as(x), z)


class SequenceMixer(nn.Module, ABC):
    """The attention part of a block: mixes information across time, carries a per-layer state."""

    @abstractmethod
    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes (without batch) of this layer's state tensors."""

    @abstractmethod
    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        """``h: (T, B, d_model)`` (already layer-normed) -> ``(T, B, d_model)`` and the new layer state.

        ``context`` is computed once per call by the cell and shared by all layers (reset masks,
        step counters, attention masks).
        """


#: how a block adds the attention's read to its residual stream (see the module docstring)
READ_MERGES = CHOICES["read_merge"]
#: what the first block's mixer reads: the embedded, normed stream, or the cell's input (see the module docstring)
MEMORY_INPUTS = CHOICES["memory_input"]
#: orthogonal gain of a first layer's projections of the observation (``memory_input="observation"``):
#: small, so that what the memory projects (keys, gates, values) starts close to independent of the
#: observation, whatever its scale, and the optimiser grows the columns of the inputs that matter (a
#: layer that reads the stream starts at its cell's gain: GTrXL's and the paper variant's sqrt 2, see
#: galite.STREAM_PROJECTION_GAIN)
OBSERVATION_PROJECTION_GAIN = 0.3


class GatedBlock(nn.Module):
    """One GTrXL-style layer: attention sub-layer (gated, or a plain residual), then gated MLP sub-layer.

    ``reads`` (a :data:`MEMORY_INPUTS` value) is what the mixer reads: ``LN(x)`` (``"stream"``), the
    cell's input as it is (``"observation"``), or the two concatenated in that order (``"both"``)."""

    #: a class default, so that blocks pickled before ``"both"`` existed read as they did
    reads_both: bool = False

    def __init__(
        self, d_model: int, d_ffc: int, mixer: SequenceMixer, read_merge: str = "gated", reads: str = "stream"
    ) -> None:
        super().__init__()
        if read_merge not in READ_MERGES:
            raise ValueError(f"read_merge must be one of {READ_MERGES}, got {read_merge!r}")
        self.norm_attn = None if reads == "observation" else nn.LayerNorm(d_model)
        self.reads_both = reads == "both"
        self.mixer = mixer
        self.gate_attn = GRUGate(d_model) if read_merge == "gated" else None
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(orthogonal_linear(d_model, d_ffc), nn.ReLU(), orthogonal_linear(d_ffc, d_model))
        self.gate_mlp = GRUGate(d_model)

    def forward(
        self, x: torch.Tensor, layer_state: CellState, context: Any, observation: torch.Tensor
    ) -> tuple[torch.Tensor, CellState]:
        if self.norm_attn is None:
            memory_input = observation
        else:
            memory_input = layer_norm(self.norm_attn, x)
            if self.reads_both:
                memory_input = torch.cat([observation, memory_input], dim=-1)
        mixed, new_state = self.mixer(memory_input, layer_state, context)
        # no relu on a residual read: it would zero half of what the read carries
        x = x + mixed if self.gate_attn is None else self.gate_attn.forward(x, F.relu(mixed))
        hidden = F.relu(linear(cast(nn.Linear, self.mlp[0]), layer_norm(self.norm_mlp, x)))
        x = self.gate_mlp.forward(x, F.relu(linear(cast(nn.Linear, self.mlp[2]), hidden)))
        return x, new_state


class GatedTransformerCell(RecurrentCell):
    """Embedding + ``n_layers`` gated blocks; the state is each layer's mixer state, stacked on dim 1.

    State layout: for every per-layer state tensor of shape ``S`` a tensor ``(B, n_layers, *S)``,
    followed by the cell's shared tensors (e.g. a step counter), each ``(B, *S)``.
    Subclasses give the mixer factory (called with the width of what a first layer reads when that
    is not the stream: the observation's, or the observation's plus ``d_model`` with ``"both"``;
    None for a layer that reads the stream, ``d_model`` wide) and, if
    they keep shared state, override :meth:`shared_state_shapes`, :meth:`make_context` and
    :meth:`advance_shared`. ``memory_input`` says what the first block's mixer reads (see the module
    docstring). A first mixer whose state shapes differ from the other layers' (GTrXL's, which stores
    what it reads: the observation) keeps its state in tensors of its own, after the stacked
    layers' and before the shared ones: ``(B, *S_first)`` each. ``output_scale`` multiplies
    the cell's output, what the policy's heads see, by a fixed number, or with ``learn_output_scale``
    by a learned scalar that starts there (docs, "Learning memory", "Control: the output's scale").
    """

    def __init__(
        self,
        input_dim: int,
        n_layers: int,
        d_model: int,
        d_ffc: int,
        make_mixer: Callable[[int | None], SequenceMixer],
        read_merge: str = "gated",
        memory_input: str = "stream",
        output_scale: float = 1.0,
        learn_output_scale: bool = False,
    ) -> None:
        check_positive_int(type(self).__name__, input_dim=input_dim, n_layers=n_layers, d_model=d_model, d_ffc=d_ffc)
        check_positive_number(type(self).__name__, output_scale=output_scale)
        if not isinstance(learn_output_scale, bool):
            raise ValueError(f"{type(self).__name__}: learn_output_scale must be a bool, got {learn_output_scale!r}")
        if memory_input not in MEMORY_INPUTS:
            raise ValueError(f"{type(self).__name__}: memory_input must be one of {MEMORY_INPUTS}, got {memory_input!r}")
        super().__init__(input_dim, d_model)
        self.n_layers = n_layers
        self.d_model = d_model
        self.d_ffc = d_ffc
        self.embed = orthogonal_linear(input_dim, d_model)
        blocks = []
        # the width of what the first layer's mixer reads when that is not the stream (None: d_model)
        by_statistics = memory_input in STATISTICS_READS
        first_width = None if memory_input == "stream" else input_dim + (d_model if memory_input == "both" else 0)
        #: what the first layer reads when it is the observation by its running statistics (None otherwise)
        self.input_standardiser = (
            RunningStandardiser(input_dim, centre=memory_input == "standardised") if by_statistics else None
        )
        for index in range(n_layers):
            # a block reads the observation it is given; the cell standardises it first
            reads = ("observation" if by_statistics else memory_input) if index == 0 else "stream"
            blocks.append(GatedBlock(d_model, d_ffc, make_mixer(first_width if index == 0 else None), read_merge, reads))
        self.blocks = nn.ModuleList(blocks)
        self._layer_shapes = tuple(blocks[-1].mixer.layer_state_shapes())
        first_shapes = tuple(blocks[0].mixer.layer_state_shapes())
        #: the first layer's state shapes when they differ from the stacked layers' (else empty; with
        #: one layer that layer is the stacked one, whatever it reads)
        self._first_layer_shapes = first_shapes if first_shapes != self._layer_shapes else ()
        self.output_scale = float(output_scale)
        # a learned scalar that starts at output_scale (LayerScale's idea, Touvron et al. 2021, "Going
        # deeper with image transformers": a branch's scale starts small and is learned), or a constant
        self.output_gain = nn.Parameter(torch.tensor(self.output_scale)) if learn_output_scale else None

    # -- shared state hooks (none by default)
    def shared_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ()

    def make_context(self, shared: CellState, starts: torch.Tensor) -> Any:
        """Per-call information every layer needs (computed once, not per layer)."""
        return starts

    def advance_shared(self, shared: CellState, starts: torch.Tensor, context: Any) -> CellState:
        return shared

    # -- RecurrentCell
    @property
    def has_input_statistics(self) -> bool:
        return self.input_standardiser is not None

    def update_input_statistics(self, inputs: torch.Tensor) -> None:
        if self.input_standardiser is not None:
            self.input_standardiser.update(inputs)

    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        stacked_layers = self.n_layers - (1 if self._first_layer_shapes else 0)
        per_layer = tuple((stacked_layers, *shape) for shape in self._layer_shapes)
        return per_layer + self._first_layer_shapes + tuple(self.shared_state_shapes())

    def _forward(self, x: torch.Tensor, state: CellState, starts: torch.Tensor) -> tuple[torch.Tensor, CellState]:
        n_stacked, n_first = len(self._layer_shapes), len(self._first_layer_shapes)
        layer_tensors, first_layer = state[:n_stacked], tuple(state[n_stacked : n_stacked + n_first])
        shared = state[n_stacked + n_first :]
        context = self.make_context(shared, starts)
        h = F.relu(linear(self.embed, x))
        observation = x if self.input_standardiser is None else self.input_standardiser(x)
        new_layer_states, new_first_layer = [], ()
        for index, block in enumerate(self.blocks):
            if n_first and index == 0:  # a first layer with a state of its own shape
                h, new_first_layer = block.forward(h, first_layer, context, observation)
                continue
            stacked_index = index - (1 if n_first else 0)
            h, new_state = block.forward(h, tuple(s[:, stacked_index] for s in layer_tensors), context, observation)
            new_layer_states.append(new_state)
        if self.output_gain is not None:
            h = h * self.output_gain
        elif self.output_scale != 1.0:
            h = h * self.output_scale
        stacked = tuple(torch.stack(parts, dim=1) for parts in zip(*new_layer_states, strict=True))
        return h, stacked + tuple(new_first_layer) + tuple(self.advance_shared(shared, starts, context))
