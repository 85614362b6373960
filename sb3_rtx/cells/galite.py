"""GaLiTe: Gated Linear Transformer (Pramanik et al., TMLR 2024, arXiv 2310.15719), exact form.

Per layer and head (d = head dim, eta = feature-map expansion, F = eta * d):

    k_t = flatten(phi(W_k x) outer phi(W_p1 x))          q_t likewise with W_q, W_p2      (R^F)
    v_t = W_v x,  beta_t = sigmoid(W_beta x)                                              (R^d)
    gamma_t = flatten(sigmoid(W_g x) outer sigmoid(W_p3 x))                               (R^F)
    C_t = ((1 - beta_t)(1 - gamma_t)^T) * C_{t-1} + (beta_t * v_t)(gamma_t * k_t)^T        (d x F)
    s_t = (1 - gamma_t) * s_{t-1} + gamma_t * k_t                                         (R^F)
    a_t = C_t q_t / (s_t . q_t + eps)

The state ``C`` is ``d x F`` per head, far too large to materialise at every step of a training
sequence, so the multi-step form is chunked (:class:`~sb3_rtx.cells.scan.GatedChunks`): inside a
chunk the output is a gated attention over the chunk's positions, computed with matrix products,
and ``C`` is only carried from chunk to chunk. Decays are floored at exp(-10) on every path
(see :data:`~sb3_rtx.cells.scan.LOG_DECAY_FLOOR`).

Variants (``variant="default" | "paper"``, shared with AGaLiTe) are defined in
:mod:`sb3_rtx.cells.variants`; each choice can also be set on its own. ``"paper"`` is the equations
above with ``phi = relu``, zero-bias gates and GTrXL's block. The library's ``"default"`` changes
(docs, "Cells", says what each does and why; "Learning memory", what each measured):

- ``feature_map="softplus"``: a relu feature is zero, with zero gradient, wherever its projection is
  negative, so a memory can be unable ever to learn to read an input (positive feature maps for
  linear attention: Katharopoulos et al. 2020);
- ``gate_init="long"`` (GaLiTe; AGaLiTe's is ``"long_first"``): gate biases that start the memory with
  a long span (:data:`GATE_INIT_BIAS`, :data:`PER_HEAD_SPANS`), where zero biases forget a cue in a
  few steps (Tallec & Ollivier 2018; Gu et al. 2020; per-head decays: Sun et al. 2023, RetNet);
- ``read_norm="rms"``: each head's read divided by its root mean square, so a read written through
  slow gates is not drowned by the block's stream (RetNet's GroupNorm, GLA, xLSTM's head-wise norm);
- ``read_merge="residual"``: the read added to the block's stream, not through GTrXL's gate
  (:mod:`sb3_rtx.cells.block`);
- ``memory_input="observation"``: the first layer's memory projects the observation itself
  (gain :data:`OBSERVATION_PROJECTION_GAIN`), not ``LN`` of the embedded stream
  (:mod:`sb3_rtx.cells.block`);
- ``value_conv=4``: a short causal convolution of the values over time, with a direct path to the
  output (:mod:`sb3_rtx.cells.short_conv`);
- the paper's normaliser is kept; ``normaliser="bounded"``, ``max(s . q, 1)`` (xLSTM's), is an option.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sb3_rtx.cells.activated_projection import activated_projection
from sb3_rtx.cells.base import CellState, check_positive_int
from sb3_rtx.cells.block import (
    OBSERVATION_PROJECTION_GAIN,
    GatedTransformerCell,
    SequenceMixer,
    linear,
    orthogonal_linear,
)
from sb3_rtx.cells.factored_attention import outer
from sb3_rtx.cells.merged_read import merged_read
from sb3_rtx.cells.scan import GatedChunks, floor_decay, floor_log_decay, launch_bound
from sb3_rtx.cells.short_conv import ShortConvolution
from sb3_rtx.cells.variants import CHOICES, Choices, resolve

#: added to the normaliser s_t . q_t (which is >= 0 by construction) in the paper's form
NORMALISER_EPS = 1e-6
#: added to the mean square of a head's read (``read_norm="rms"``): only there to keep an all-zero read
#: finite. The read is scaled by the write gate ``beta``, so with long gates (``gate_init="long"``)
#: its mean square starts at 1e-9 to 1e-5: an eps of 1e-6 damped it, and the gradient through it
READ_NORM_EPS = 1e-12
#: the gate biases at initialisation, ``(W_beta, W_g and W_p3)``, each for every channel, by ``gate_init``;
#: ``"long"`` starts both sides with a memory span of about 400 steps (``1 / beta = 1 + e^6``, and
#: ``gamma = sigmoid(-3)^2``, ``1 / gamma`` about 450)
GATE_INIT_BIAS = {"zero": (0.0, 0.0), "slow": (-2.0, -2.0), "slower": (-3.0, -3.0), "long": (-6.0, -3.0)}
#: ``gate_init="multiscale"``: the value rows' memory spans (1 / beta at initialisation), log-spaced
#: over each head's ``d_head`` channels, and the bias of ``W_g`` and ``W_p3``
MULTISCALE_SPANS = (4.0, 256.0)
MULTISCALE_KEY_BIAS = GATE_INIT_BIAS["slower"][1]
#: ``gate_init="per_head"``: the value side's memory span (1 / beta at initialisation) of each head,
#: log-spaced from the first head's (the longest, ``"long"``'s) to the last's (``"slower"``'s, about
#: 20 steps); the key gates at -3 in every head. Each head's read is normalised on its own
#: (``read_norm="rms"``), so a short head's read does not drown a long one's.
PER_HEAD_SPANS = (1.0 + math.exp(-GATE_INIT_BIAS["long"][0]), 1.0 + math.exp(-GATE_INIT_BIAS["slower"][0]))
#: ``gate_init="long_first"``: the first head as ``"per_head"``'s first (every value channel about 400
#: steps), each other head's channels spread as ``"multiscale"``'s. Why both: a spread within a head
#: lets one normalised read carry several time scales (an average and its recent change), which
#: control from noisy positions wants; a head whose every channel is long keeps one early step in
#: a read that short channels do not dilute, which recall of an early item wants.
assert GATE_INIT_BIAS["long"][1] == MULTISCALE_KEY_BIAS  # (one key-gate bias for every head)
#: the feature map of keys and queries, by ``feature_map``
FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": torch.relu, "softplus": F.softplus}


#: the name :mod:`~sb3_rtx.cells.activated_projection` knows each feature map by (the training path)
FEATURE_MAP_NAMES: dict[Callable[[torch.Tensor], torch.Tensor], str] = {fn: name for name, fn in FEATURE_MAPS.items()}
# (every name variants.py lists has its implementation here)
assert tuple(FEATURE_MAPS) == CHOICES["feature_map"]
assert (*GATE_INIT_BIAS, "multiscale", "per_head", "long_first") == CHOICES["gate_init"]
#: the orthogonal gain of the memory's projection of the stream (layers that read ``LN`` of the
#: embedded stream), by ``variant``: the paper's sqrt 2. The default's is the observation projection's
#: 0.3: since the first layer first read the observation (the eleventh cause) the code gave that gain
#: to every layer's projection, meant for the first layer's only, and to the paper variant's too,
#: whose sqrt 2 is now restored. The default keeps 0.3 because what was measured with more than one
#: layer, or with ``memory_input="stream"`` (the input-stage probe), was measured so; which gain a
#: stacked layer learns better with is not measured (the memory suite's cells have one layer). A first
#: layer that reads the observation starts at :data:`~sb3_rtx.cells.block.OBSERVATION_PROJECTION_GAIN`
#: in every variant.
STREAM_PROJECTION_GAIN = {"default": OBSERVATION_PROJECTION_GAIN, "paper": math.sqrt(2)}
#: ``write_gate="exp"``: the bound ``c`` on a write strength's log, ``exp(c tanh(z / c))``. The strength
#: then spans e^-5 to e^5: one step can outweigh e^10 others, the same range as the decays' floor
#: (:data:`~sb3_rtx.cells.scan.LOG_DECAY_FLOOR`), and the state stays finite in float32 without
#: mLSTM's running stabiliser
WRITE_LOG_BOUND = 5.0


def gate_biases(gate_init: str, n_heads: int, d_head: int, eta: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The initial biases of ``W_beta`` (d_head), ``W_g`` (d_head) and ``W_p3`` (eta): one row per
    head (``n_heads`` rows), or one row for every head."""
    if gate_init == "per_head":
        longest, shortest = PER_HEAD_SPANS
        # (one head: the longest)
        spans = torch.logspace(math.log10(longest), math.log10(shortest), n_heads, dtype=torch.float64)
        beta = (-torch.log(spans - 1.0)).float().unsqueeze(1).expand(n_heads, d_head)  # sigmoid(beta) = 1 / span
        return beta, torch.full((d_head,), GATE_INIT_BIAS["long"][1]), torch.full((eta,), GATE_INIT_BIAS["long"][1])
    if gate_init == "multiscale":
        shortest, longest = MULTISCALE_SPANS
        spans = torch.logspace(math.log10(shortest), math.log10(longest), d_head, dtype=torch.float64)
        beta = -torch.log(spans - 1.0).float()  # sigmoid(beta) = 1 / span
        return beta, torch.full((d_head,), MULTISCALE_KEY_BIAS), torch.full((eta,), MULTISCALE_KEY_BIAS)
    if gate_init == "long_first":
        spread, g_bias, p3_bias = gate_biases("multiscale", n_heads, d_head, eta)
        beta = spread.expand(n_heads, d_head).clone()
        beta[0] = GATE_INIT_BIAS["long"][0]  # (one head: only the long one)
        return beta, g_bias, p3_bias
    value_bias, key_bias = GATE_INIT_BIAS[gate_init]
    return torch.full((d_head,), value_bias), torch.full((d_head,), key_bias), torch.full((eta,), key_bias)


def normalise(numerator: torch.Tensor, denominator: torch.Tensor, bounded: bool) -> torch.Tensor:
    """``numerator / max(denominator, 1)`` (bounded) or ``numerator / (denominator + eps)`` (paper)."""
    if bounded:
        return numerator / denominator.clamp_min(1.0)
    return numerator / (denominator + NORMALISER_EPS)


class GatedFeatures(nn.Module):
    """The fused input projections of GaLiTe and AGaLiTe: keys, queries, values and both gates.

    The recurrences only ever use ``gamma * k``, ``1 - gamma``, ``q``, ``beta * v`` and ``1 - beta``,
    so that is what :meth:`forward` returns. Both ``gamma * k = (sigma(W_g x) phi(W_k x)) outer
    (sigma(W_p3 x) phi(W_p1 x))`` and ``gamma`` are outer products: the products are taken on the
    small factors, and only the final outer products are ``eta * d`` wide.

    The ``eta * d`` features are laid out eta-major (:func:`outer` of the eta-wide factor with the
    d-wide one), a fixed permutation of the design's ``flatten(d outer eta)`` that no equation
    depends on; it keeps the d-wide factor contiguous, which makes the outer products and their
    gradients several times faster.
    """

    #: ``read_norm="rms"``; a class default so that features pickled before the choice existed read
    #: as they did
    normalise_read: bool = False

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_head: int,
        eta: int,
        choices: Choices,
        in_features: int | None = None,
        stream_gain: float = math.sqrt(2),
    ) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.eta = n_heads, d_head, eta
        self.feature_map = FEATURE_MAPS[choices.feature_map]
        self.normalise_read = choices.read_norm == "rms"
        # one matmul for W_k, W_q, W_v, W_beta, W_g (d each) and W_p1, W_p2, W_p3 (eta each), from the
        # stream (d_model, ``in_features`` None) or, in a first layer that reads the observation, from
        # the cell's input, or from both side by side (``in_features`` wide; the observation's gain)
        gain = stream_gain if in_features is None else OBSERVATION_PROJECTION_GAIN
        self.project = orthogonal_linear(in_features or d_model, n_heads * (5 * d_head + 3 * eta), gain=gain)
        self.out = orthogonal_linear(n_heads * d_head, d_model)
        conv_init = choices.value_conv_init
        self.value_conv = ShortConvolution(n_heads * d_head, choices.value_conv, conv_init) if choices.value_conv > 1 else None
        # the convolved value's direct path to the output, added to each head's (normed) read, as
        # Mamba adds ``D * u`` to its scan's output: closed at first with value_conv_init="identity"
        # (a fresh cell computes what it did without the convolution), open with "mamba" and
        # "anchored" (both default variants'; Mamba's D starts at 1)
        skip_start = 0.0 if conv_init == "identity" else 1.0
        self.value_skip = nn.Parameter(torch.full((n_heads, d_head), skip_start)) if self.value_conv is not None else None
        self.write_gate: nn.Linear | None = None  # write_gate="exp": each head's log write strength
        if choices.write_gate == "exp":
            # a selective write (see :meth:`select_writes`); zero weights and bias: every strength
            # starts at 1, so a fresh cell computes what it does without the gate
            self.write_gate = nn.Linear(in_features or d_model, n_heads)
            nn.init.zeros_(self.write_gate.weight)
            nn.init.zeros_(self.write_gate.bias)
        beta_bias, g_bias, p3_bias = gate_biases(choices.gate_init, n_heads, d_head, eta)
        with torch.no_grad():  # the columns of beta, g (d each) and p3 (eta), in every head
            columns = self.project.bias.view(n_heads, 5 * d_head + 3 * eta)
            columns[:, 3 * d_head : 4 * d_head] = beta_bias
            columns[:, 4 * d_head : 5 * d_head] = g_bias
            columns[:, 5 * d_head + 2 * eta :] = p3_bias

    def factors(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The small factors ``(T, B, H, d or eta)`` of the projection of ``h: (T, B, d_model)``, or
        ``(B, H, d or eta)`` of one acting step's ``h: (B, d_model)``: ``wk = phi(W_k x), wq, p1, p2``
        (the feature map ``phi``), ``v``, and ``beta, g, p3`` (sigmoid)."""
        d, eta = self.d_head, self.eta
        if h.dim() == 2:
            p = linear(self.project, h).view(*h.shape[:-1], self.n_heads, 5 * d + 3 * eta)
            # acting: one feature map and one sigmoid over all columns, then slice (fewest ops; the
            # step at batch 1 is dispatch-bound, and there is no backward to pay for the slices)
            positive, gate = self.feature_map(p), torch.sigmoid(p)
            wk, wq, p1, p2 = (
                positive[..., :d],
                positive[..., d : 2 * d],
                positive[..., 5 * d : 5 * d + eta],
                positive[..., 5 * d + eta : 5 * d + 2 * eta],
            )
            v, beta, g, p3 = (
                p[..., 2 * d : 3 * d],
                gate[..., 3 * d : 4 * d],
                gate[..., 4 * d : 5 * d],
                gate[..., 5 * d + 2 * eta :],
            )
            return wk, wq, p1, p2, v, beta, g, p3
        # sequences: every factor activated into one buffer, with one backward that writes each
        # factor's gradient straight into the projection's (see activated_projection)
        phi = FEATURE_MAP_NAMES[self.feature_map]
        columns = [
            *((d, phi), (d, phi), (d, "identity"), (d, "sigmoid"), (d, "sigmoid")),  # wk, wq, v, beta, g
            *((eta, phi), (eta, phi), (eta, "sigmoid")),  # p1, p2, p3
        ]
        wk, wq, v, beta, g, p1, p2, p3 = activated_projection(h, self.project, self.n_heads, columns)
        return wk, wq, p1, p2, v, beta, g, p3

    def log_write_strength(self, h: torch.Tensor) -> torch.Tensor | None:
        """Each head's log write strength ``c tanh(z / c)`` for the layer's input ``h`` (``(..., H)``),
        or None without a write gate (see :meth:`select_writes`)."""
        gate = getattr(self, "write_gate", None)  # (features pickled before the choice existed have none)
        if gate is None:
            return None
        return WRITE_LOG_BOUND * torch.tanh(linear(gate, h) / WRITE_LOG_BOUND)

    def _value_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The value rows ``(n_heads, d_head, ...)`` of a tensor laid out as the projection's outputs."""
        d = self.d_head
        return rows.view(self.n_heads, 5 * d + 3 * self.eta, *rows.shape[1:])[:, 2 * d : 3 * d]

    def value_weight(self) -> torch.Tensor:
        """The projection's rows that make the values ``v``, ``(n_heads, d_head, in_features)`` (a view)."""
        return self._value_rows(self.project.weight)

    def value_bias(self) -> torch.Tensor | None:
        """The projection's bias of the values ``v``, ``(n_heads, d_head)`` (a view), or None without a bias."""
        return None if self.project.bias is None else self._value_rows(self.project.bias)

    def select_writes(self, factors: tuple[torch.Tensor, ...], h: torch.Tensor, values: bool) -> tuple[torch.Tensor, ...]:
        """The :meth:`factors` with what each step writes scaled by its head's write strength
        ``i = exp(c tanh(z / c))``, ``z`` a projection of ``h`` (``write_gate="exp"``; unchanged without).

        The strength multiplies the written key ``k`` (through its factor ``p1``), so the memory and
        the normaliser ``s`` weigh the step by ``i``, and with ``values`` the written value ``v`` too;
        the decays are the gates' alone. The read divides by ``s . q``, so a strength that is the same
        at every step divides out and only differences between steps change the read: a cue written
        at ``i = e^4`` outweighs ~50 neighbours written at 1 (mLSTM's exponential input gate and
        normaliser, Beck et al. 2024; a data-dependent write, as in GLA, Yang et al. 2023, or Mamba's
        selective step). A gated memory without it averages what it writes at the rate it forgets.
        GaLiTe's ``C`` holds ``v k^T``, so scaling ``k`` weighs both; AGaLiTe keeps values and keys in
        memories of their own, and its constant-frequency term reads the value memory alone (the
        keys' match divides out), so it scales ``v`` as well (``values``)."""
        log_strength = self.log_write_strength(h)
        if log_strength is None:
            return factors
        strength = torch.exp(log_strength).unsqueeze(-1)  # (..., H, 1)
        wk, wq, p1, p2, v, beta, g, p3 = factors
        return wk, wq, p1 * strength, p2, v * strength if values else v, beta, g, p3

    def conv_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shape of the value convolution's carried inputs, or nothing without one."""
        return () if self.value_conv is None else (self.value_conv.state_shape(),)

    def convolve_values(
        self,
        factors: tuple[torch.Tensor, ...],
        conv_state: CellState,
        starts: torch.Tensor,
        keep: torch.Tensor | None,
        compiled: bool = False,
    ) -> tuple[tuple[torch.Tensor, ...], CellState]:
        """The :meth:`factors` with ``v`` convolved over time (``value_conv``), and the convolution's
        new state; unchanged without a convolution. ``keep`` is the acting step's reset multiplier
        (:func:`step_keep`), ``starts: (T, B)`` the sequence's episode starts; ``compiled``: a
        sequence's convolution as fused kernels (AGaLiTe's ``compile_training``)."""
        if self.value_conv is None:
            return factors, conv_state
        (past,) = conv_state
        v = factors[4]
        if v.dim() == 3:  # acting: (B, H, d)
            shifted, past = self.value_conv.step(v.flatten(-2), past, keep)
        else:
            shifted, past = self.value_conv(v.flatten(-2), past, starts, compiled)
        return (*factors[:4], shifted.view_as(v), *factors[5:]), (past,)

    def forward(self, h: torch.Tensor, log_decays: bool = False) -> tuple[torch.Tensor, ...]:
        """``h: (T, B, d_model)`` -> ``write_k, decay_k, q: (T, B, H, F)``, ``write_v, decay_v: (T, B, H, d)``
        (without the ``T`` dimension for one acting step's ``h: (B, d_model)``); see :meth:`products`.
        Without the value convolution (which needs the state: :meth:`convolve_values`)."""
        return self.products(self.factors(h), log_decays)

    def products(self, factors: tuple[torch.Tensor, ...], log_decays: bool = False) -> tuple[torch.Tensor, ...]:
        """What the recurrences use, from the :meth:`factors`: ``write_k = gamma * k``,
        ``decay_k = 1 - gamma``, ``q``, ``write_v = beta * v``, ``decay_v = 1 - beta``, decays floored
        at exp(LOG_DECAY_FLOOR); with ``log_decays`` the decays come as their logs."""
        wk, wq, p1, p2, v, beta, g, p3 = factors
        write_k = outer(p3 * p1, g * wk)
        q = outer(p2, wq)
        write_v = beta * v
        if log_decays:
            decay_k = floor_log_decay(torch.log1p(outer(p3, -g)))
            decay_v = floor_log_decay(torch.log1p(-beta))
        else:
            decay_k = floor_decay(torch.rsub(outer(p3, g), 1.0))
            decay_v = floor_decay(1.0 - beta)
        return write_k, decay_k, q, write_v, decay_v

    def merge_heads(self, a: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        """``(T, B, H, d)`` -> ``(T, B, d_model)``, each head's read first divided by its root mean
        square with ``read_norm="rms"``, then (with a value convolution) the convolved ``values``
        of the same steps added through :attr:`value_skip`. With gradients, as one function that keeps
        less for backward (:mod:`sb3_rtx.cells.merged_read`); acting and exports take the plain ops."""
        skip, skipped = None, None
        if self.value_skip is not None and values is not None:
            skip, skipped = self.value_skip, values.view_as(a)
        tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
        merges = self.normalise_read or skip is not None  # else the projection of ``a`` is all there is
        if merges and a.requires_grad and torch.is_grad_enabled() and not tracing:  # training: one backward, less kept
            return merged_read(a, skipped, skip, self.out, READ_NORM_EPS if self.normalise_read else None)
        if self.normalise_read:
            if torch.compiler.is_exporting():
                # the same sum, written so that torch's ONNX exporter keeps it: it drops the add of
                # so small a constant, and a first layer that reads the observation can have reads
                # whose mean square is ~1e-10, where the eps moves the result by ~1%
                mean_square = (a.pow(2).mean(-1, keepdim=True) / READ_NORM_EPS + 1.0) * READ_NORM_EPS
                a = a * torch.rsqrt(mean_square)
            else:  # one op, and one kernel on CUDA, where the acting step is launch-bound (five before)
                a = F.rms_norm(a, a.shape[-1:], eps=READ_NORM_EPS)
        if skip is not None and skipped is not None:
            a = torch.addcmul(a, skip, skipped)
        return linear(self.out, a.flatten(-2))


def step_keep(starts: torch.Tensor) -> torch.Tensor | None:
    """For a ``T == 1`` call: ``(B, 1, 1)`` multiplier that zeroes the state of envs starting an
    episode, or ``None`` when no env starts (checked where ops are not :func:`launch_bound`, on a CPU,
    where the check costs no device sync; and not under ``torch.compile`` or a tracing export, where
    the data-dependent branch would split the graph or be frozen into it)."""
    start = starts[0]
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    if not launch_bound(start.device) and not tracing and not bool(start.any()):
        return None
    return (1.0 - start).view(-1, 1, 1)


class GaLiTeMixer(SequenceMixer):
    """GaLiTe attention for one layer, over its input projections ``features``; state ``(C: (H, d, F), s: (H, F))``."""

    def __init__(self, features: GatedFeatures, choices: Choices) -> None:
        super().__init__()
        self.features = features
        self.n_heads, self.d_head, self.feature_dim = features.n_heads, features.d_head, features.eta * features.d_head
        self.bounded = choices.normaliser == "bounded"

    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        memory = (self.n_heads, self.d_head, self.feature_dim), (self.n_heads, self.feature_dim)
        return memory + self.features.conv_state_shapes()

    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        starts, keep = context
        memory, normaliser = layer_state[:2]
        # one step: features of (B, d_model), not of (1, B, d_model) indexed five times
        x = h[0] if h.shape[0] == 1 else h
        factors = self.features.factors(x)
        factors, conv_state = self.features.convolve_values(factors, layer_state[2:], starts, keep)
        written = self.features.select_writes(factors, x, values=False)  # the direct path reads factors' v
        if h.shape[0] == 1:
            write_k, decay_k, q, write_v, decay_v = self.features.products(written)
            a, memory, normaliser = self._step(keep, decay_k, decay_v, write_k, write_v, q, memory, normaliser, self.bounded)
            a = a.unsqueeze(0)
        else:
            write_k, decay_k, q, write_v, decay_v = self.features.products(written, log_decays=True)
            a, memory, normaliser = self._chunked(
                starts, decay_k, decay_v, write_k, write_v, q, memory, normaliser, self.bounded
            )
        return self.features.merge_heads(a, factors[4]), (memory, normaliser, *conv_state)

    @staticmethod
    def _step(keep, decay_k, decay_v, write_k, write_v, q, memory, normaliser, bounded):
        if keep is not None:  # an episode start resets (C, s) to zero first
            decay_k, decay_v = decay_k * keep, decay_v * keep
        memory = decay_v.unsqueeze(-1) * decay_k.unsqueeze(-2) * memory
        memory = memory + write_v.unsqueeze(-1) * write_k.unsqueeze(-2)
        normaliser = torch.addcmul(write_k, decay_k, normaliser)
        numerator = torch.einsum("bhef,bhf->bhe", memory, q)
        return normalise(numerator, (normaliser * q).sum(-1, keepdim=True), bounded), memory, normaliser

    @staticmethod
    def _chunked(starts, log_decay_k, log_decay_v, write_k, write_v, q, memory, normaliser, bounded):
        chunks = GatedChunks(starts)
        gate_k = chunks.log_decay_factors(chunks.chunk(log_decay_k, 0.0))
        gate_v = chunks.log_decay_factors(chunks.chunk(log_decay_v, 0.0))
        write_k, write_v, q = chunks.chunk(write_k, 0.0), chunks.chunk(write_v, 0.0), chunks.chunk(q, 0.0)

        # within each chunk: gated attention as matrix products (n, B, H, L, L)
        queries, keys = q * gate_k.inflate, write_k * gate_k.deflate
        scores = chunks.masked_scores(queries, keys)
        numerator = gate_v.inflate * torch.einsum("nbhls,nsbhe->nlbhe", scores, write_v * gate_v.deflate)
        denominator = scores.sum(-1).permute(0, 3, 1, 2)  # (n, L, B, H)

        # carry (C, s) across chunks: only chunk-boundary states are materialised
        # (end_k = write_k * to_end without its mask: the mask goes on end_v and in the sum)
        end_k = keys * gate_k.end_scale
        end_v = write_v * gate_v.to_end
        add_memory = torch.einsum("nsbhe,nsbhf->nbhef", end_v, end_k)
        add_normaliser = torch.einsum("nsbhf,nsb->nbhf", end_k, chunks.writes_carry[..., 0, 0])
        carried_memory, carried_normaliser = [], []
        # unbind once: indexing [c] in the loop costs a full-size zeros + copy per chunk in backward
        steps = zip(
            add_memory.unbind(0), add_normaliser.unbind(0), gate_v.whole.unbind(0), gate_k.whole.unbind(0), strict=True
        )
        for add_memory_c, add_normaliser_c, whole_v, whole_k in steps:  # a loop over chunks, not over time steps
            carried_memory.append(memory)
            carried_normaliser.append(normaliser)
            memory = whole_v.unsqueeze(-1) * whole_k.unsqueeze(-2) * memory + add_memory_c
            normaliser = torch.addcmul(add_normaliser_c, whole_k, normaliser)

        q_from_start = queries * gate_k.start_scale
        reads = chunks.reads_carry[..., 0]  # (n, L, B, 1)
        numerator = numerator + gate_v.from_start * torch.einsum(
            "nbhef,nlbhf->nlbhe", torch.stack(carried_memory), q_from_start
        )
        denominator = denominator + reads * torch.einsum("nbhf,nlbhf->nlbh", torch.stack(carried_normaliser), q_from_start)
        a = normalise(numerator, denominator.unsqueeze(-1), bounded)
        return chunks.unchunk(a), memory, normaliser


class GaLiTe(GatedTransformerCell):
    """GaLiTe cell: exact gated linear attention, constant cost per step.

    State per env: ``n_layers * n_heads * (d_head * eta * d_head + eta * d_head + (value_conv - 1) * d_head)``
    floats (``value_conv - 1`` past values per channel, 3 in the default variant).

    :param input_dim: size of each input vector
    :param n_layers, d_model, n_heads, d_head, d_ffc, eta: sizes (paper's T-Maze defaults)
    :param variant: ``"default"`` (the library's: softplus features, long gates, a normalised
        read, the paper's normaliser) or ``"paper"`` (the paper's equations and
        initialisation); see the module docstring
    :param normaliser: ``"sum"`` or ``"bounded"``, overriding the variant's
    :param gate_init: ``"long"``, ``"slower"``, ``"slow"``, ``"multiscale"``, ``"per_head"``,
        ``"long_first"`` or ``"zero"``, overriding the variant's
    :param feature_map: ``"softplus"`` or ``"relu"``, overriding the variant's
    :param read_norm: ``"rms"`` or ``"none"``, overriding the variant's
    :param read_merge: ``"gated"`` or ``"residual"``, how the block adds the read to its stream
        (see :mod:`sb3_rtx.cells.block`), overriding the variant's
    :param memory_input: ``"observation"``, ``"stream"``, ``"both"`` (the two side by side),
        ``"standardised"`` or ``"scaled"`` (the observation by its running statistics), what the first layer's memory
        reads (see :mod:`sb3_rtx.cells.block`), overriding the variant's
    :param value_conv: taps of the values' short causal convolution over time (4 in the default
        variant, 1 = none, the paper's; see :mod:`sb3_rtx.cells.short_conv`), overriding the variant's
    :param value_conv_init: ``"identity"``, ``"mamba"`` or ``"anchored"`` (the default variant's), how the
        value convolution and its direct path start (see :mod:`sb3_rtx.cells.short_conv`)
    :param write_gate: ``"none"`` (both variants) or ``"exp"``: each step written with a data-dependent
        strength per head, a selective write (see :meth:`~sb3_rtx.cells.galite.GatedFeatures.select_writes`)
    :param output_scale: a factor on the cell's output, what the policy's heads see (1: none;
        see :class:`~sb3_rtx.cells.block.GatedTransformerCell`)
    :param learn_output_scale: the factor is a learned scalar starting at ``output_scale``
    """

    name = "galite"

    def __init__(
        self,
        input_dim: int,
        n_layers: int = 4,
        d_model: int = 128,
        n_heads: int = 4,
        d_head: int = 64,
        d_ffc: int = 128,
        eta: int = 8,
        variant: str = "default",
        normaliser: str | None = None,
        gate_init: str | None = None,
        feature_map: str | None = None,
        read_norm: str | None = None,
        read_merge: str | None = None,
        memory_input: str | None = None,
        value_conv: int | None = None,
        value_conv_init: str | None = None,
        write_gate: str | None = None,
        output_scale: float = 1.0,
        learn_output_scale: bool = False,
    ) -> None:
        check_positive_int("GaLiTe", n_heads=n_heads, d_head=d_head, eta=eta)
        choices = resolve(
            "GaLiTe",
            variant,
            normaliser=normaliser,
            gate_init=gate_init,
            feature_map=feature_map,
            read_norm=read_norm,
            read_merge=read_merge,
            memory_input=memory_input,
            value_conv=value_conv,
            value_conv_init=value_conv_init,
            write_gate=write_gate,
        )
        self.n_heads, self.d_head, self.eta = n_heads, d_head, eta
        self.variant, self.normaliser, self.gate_init = variant, choices.normaliser, choices.gate_init
        self.feature_map, self.read_norm, self.read_merge = choices.feature_map, choices.read_norm, choices.read_merge
        self.memory_input, self.value_conv = choices.memory_input, choices.value_conv
        self.value_conv_init, self.write_gate = choices.value_conv_init, choices.write_gate
        self.choices = choices
        super().__init__(
            input_dim,
            n_layers,
            d_model,
            d_ffc,
            lambda in_features: GaLiTeMixer(
                GatedFeatures(d_model, n_heads, d_head, eta, choices, in_features, STREAM_PROJECTION_GAIN[variant]),
                choices,
            ),
            choices.read_merge,
            choices.memory_input,
            output_scale,
            learn_output_scale,
        )

    def make_context(self, shared: CellState, starts: torch.Tensor) -> Any:
        return starts, (step_keep(starts) if starts.shape[0] == 1 else None)

    def recorded_choices(self) -> dict[str, Any]:
        return {"variant": self.variant, **self.choices.recorded()}
