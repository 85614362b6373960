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

Variants (``variant=``), shared with AGaLiTe; each choice can also be set on its own:

* ``"paper"``: the equations above with the paper's feature map ``phi = relu`` and zero-bias gates
  (``normaliser="sum"``, ``gate_init="zero"``, ``feature_map="relu"``, ``read_norm="none"``,
  ``read_merge="gated"``, ``memory_input="stream"``).
* ``"default"``: five changes, each measured on noisy cue recall (docs, "Learning memory"), and the
  paper's normaliser kept:

  - ``feature_map="softplus"``: ``phi = softplus``, not relu. A relu feature is exactly zero, and so
    is its gradient, wherever its projection is negative: an input whose key features are zero
    where the query's are positive is never read, and no gradient can teach the memory to read it.
    Under PPO the relu cell learned to read one cue of four (its key met the query with weight 2-5)
    and never the others (zero weight in 30-90% of episodes): a partial solution it could not
    leave. softplus is positive, so the read stays a weighted average, and has a gradient
    everywhere (positive feature maps for linear attention: Katharopoulos et al. 2020, "Transformers
    are RNNs", elu + 1; softplus measured better here).
  - ``gate_init="long"``: the value gate's bias (``W_beta``) starts at -6, the key gates' (``W_g``,
    ``W_p3``) at -3, so both sides start with a memory span of about 400 steps (``1 / beta = 1 +
    e^6``; ``gamma = sigmoid(-3)^2 = 0.0022``). With zero biases, ``beta = 0.5`` and ``gamma =
    0.25``, so ``C`` keeps ``0.5 * 0.75`` of itself per step and a cue is down to ``4e-5`` after
    ten steps: no gradient reaches it. ``"slower"`` (every bias -3, the default before ``"long"``)
    keeps about ``0.95`` per step on the value side, so the read starts as an average weighted
    towards recent steps: a cue 30 steps back counts 0.25 of the latest step, 100 steps back
    0.008. Once the read is normalised (``read_norm="rms"``, below) the size of ``beta`` no longer
    sets the size of the read, so a slow start costs nothing there, and the read starts as a nearly
    even average over the episode (a cue 100 steps back counts 0.78); ``beta`` still moves with
    its logit at full relative rate (``d log beta / dz = 1 - beta``), so the gate learns to
    select what to write as fast as before. ``"slow"`` (-2, 0.1's default) keeps ``0.87``.
    ``"per_head"`` (AGaLiTe's default, an option here) gives every head a span of its own: the
    value bias log-spaced from -6 in the first head (about 400 steps) to -3 in the last (about 20;
    400, 150, 56 and 21 steps with 4 heads), the key gates at -3 in every head, as RetNet gives
    each head a decay of its own and normalises each head on its own (Sun et al. 2023); measured
    better for AGaLiTe, worse for GaLiTe. ``"multiscale"`` spreads ``1 / beta`` log-evenly over
    4-256 steps across each head's channels (one norm over the head then mixes the spans), an
    option. (Gates initialised towards long memory: Tallec & Ollivier 2018, "Can recurrent neural
    networks warp time?"; Gu et al. 2020, "Improving the gating mechanism of recurrent neural
    networks"; spread time scales: Beck et al. 2024, xLSTM's forget-gate biases; De et al. 2024,
    Griffin's RG-LRU.) Measured on the memory suite (docs, "Learning memory", "Gates that start
    long", "Each head its own span").
  - ``normaliser="sum"``, the paper's ``a_t = C_t q_t / (s_t . q_t + eps)``. The option
    ``"bounded"``, ``max(s_t . q_t, 1)`` as xLSTM's mLSTM bounds its normaliser (Beck et al. 2024),
    was the default while the features were relu: relu queries with near-zero features put
    ``s . q`` near 0, where the paper's read has a gradient of order ``1 / (s . q)``, and under PPO
    the cell's gradient norm grew to 10^3 (unbounded gradients of linear attention's normaliser:
    Qin et al. 2022, "The Devil in Linear Transformer"). Softplus features are positive, so
    ``s . q`` no longer comes near 0; and with gates that start slow it stays under 1 for the first
    10-20 steps of an episode (the write gate ``gamma`` is about 0.002), where ``max(., 1)`` turned
    the read into an unnormalised sum up to 20x smaller than the weighted average: GaLiTe then learned
    noisy recall in 1 seed of 5 (0.73) where the paper's normaliser learns it in every seed (0.99).
  - ``read_norm="rms"``: each head's read is divided by its root mean square before the output
    projection (``a / sqrt(mean(a^2) + eps)`` over the head's ``d`` values; a gain would be the
    output projection's columns). The values are written scaled by the slow write gate ``beta``
    (about 0.05 at -3), so the read starts about 20x smaller than the block's residual stream, and
    the block's GRU gate passes the current input and drowns it. Measured at initialisation on noisy
    cue recall, a linear probe reads the cue from the memory's read at the query step (0.97 at delay
    10, 0.64 at 30; chance 0.25) but not from the block's output (0.26, 0.25); with the read
    normalised the output carries it (0.47, 0.29), as a random GTrXL's does (0.44, 0.34). Under PPO
    that is the signal the memory learns from. ``"none"`` is the paper's. (A normalisation of each
    head's output, as later gated linear-attention models do: Sun et al. 2023, RetNet's GroupNorm;
    Yang et al. 2024, GLA; Beck et al. 2024, xLSTM's head-wise norm; Qin et al. 2022, TransNormer.)
  - ``read_merge="residual"``: the block adds the read to its residual stream (``x + attention(LN(x))``)
    instead of passing it through GTrXL's relu and GRU gate (``"gated"``, the paper's), whose update
    gate starts at about 0.12 and mixes the read with the current input: at initialisation a probe
    names the cue at delay 30 from the read in 0.84 of episodes and from the gated block's output in
    0.37, from the residual block's in 0.75; under PPO delay 30 went from 0.85 to 0.99 (5 seeds).
    See :mod:`sb3_rtx.cells.block` and docs, "Learning memory", "The read through GTrXL's gate".
  - ``memory_input="observation"``: the first layer's memory projects the cell's input itself
    (linearly, no norm; the projection's gain :data:`OBSERVATION_PROJECTION_GAIN`) instead of
    ``LN(x)`` of the embedded stream (``"stream"``, the paper's), which mixes every observation
    dimension into every feature and divides by a size the noise sets: with 16 dimensions of unit
    Gaussian noise AGaLiTe learned 8-cue recall only once its memory read the observation, and an
    LSTM behind the same embedding and norm stopped learning it. See :mod:`sb3_rtx.cells.block` and
    docs, "Learning memory", "Gaussian noise: the memory reads the observation".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sb3_rtx.cells.base import CellState, check_positive_int
from sb3_rtx.cells.block import MEMORY_INPUTS, READ_MERGES, GatedTransformerCell, SequenceMixer, linear, orthogonal_linear
from sb3_rtx.cells.factored_attention import outer
from sb3_rtx.cells.scan import GatedChunks, floor_decay, floor_log_decay

#: added to the normaliser s_t . q_t (which is >= 0 by construction) in the paper's form
NORMALISER_EPS = 1e-6
#: ``variant`` -> the choices it makes (see the module docstring)
VARIANTS: dict[str, dict[str, str]] = {
    "default": dict(
        normaliser="sum",
        gate_init="long",
        feature_map="softplus",
        read_norm="rms",
        read_merge="residual",
        memory_input="observation",
    ),
    "paper": dict(
        normaliser="sum", gate_init="zero", feature_map="relu", read_norm="none", read_merge="gated", memory_input="stream"
    ),
}
NORMALISERS = ("sum", "bounded")
#: ``read_norm``: each head's read divided by its root mean square before the output projection, or not
READ_NORMS = ("rms", "none")
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
GATE_INITS = (*GATE_INIT_BIAS, "multiscale", "per_head")
#: the feature map of keys and queries, by ``feature_map``
FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": torch.relu, "softplus": F.softplus}
#: orthogonal gain of a first layer's projection of the observation (``memory_input="observation"``):
#: small, so that the gates and keys start close to independent of the observation, whatever its
#: scale, and the optimiser grows the columns of the inputs that matter (the stream's projection keeps
#: the paper's sqrt 2: its input is normed)
OBSERVATION_PROJECTION_GAIN = 0.3


@dataclass(frozen=True)
class GatedChoices:
    """What a variant of GaLiTe / AGaLiTe decides, resolved (see the module docstring)."""

    normaliser: str
    gate_init: str
    feature_map: str
    read_norm: str
    read_merge: str
    memory_input: str


def resolve_variant(cell: str, variant: str, **choices: str | None) -> GatedChoices:
    """The variant's choices, overridden by those given (not None); errors name the bad value."""
    if variant not in VARIANTS:
        raise ValueError(f"{cell}: variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    resolved = dict(VARIANTS[variant])
    valid = {
        "normaliser": NORMALISERS,
        "gate_init": GATE_INITS,
        "feature_map": tuple(FEATURE_MAPS),
        "read_norm": READ_NORMS,
        "read_merge": READ_MERGES,
        "memory_input": MEMORY_INPUTS,
    }
    for key, value in choices.items():
        if value is None:
            continue
        if value not in valid[key]:
            raise ValueError(f"{cell}: {key} must be one of {valid[key]}, got {value!r}")
        resolved[key] = value
    return GatedChoices(**resolved)


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
        self, d_model: int, n_heads: int, d_head: int, eta: int, choices: GatedChoices, in_features: int | None = None
    ) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.eta = n_heads, d_head, eta
        self.feature_map = FEATURE_MAPS[choices.feature_map]
        self.normalise_read = choices.read_norm == "rms"
        # one matmul for W_k, W_q, W_v, W_beta, W_g (d each) and W_p1, W_p2, W_p3 (eta each), from the
        # stream (d_model) or, in a first layer that reads the observation, from the cell's input
        gain = math.sqrt(2) if in_features is None else OBSERVATION_PROJECTION_GAIN
        self.project = orthogonal_linear(in_features or d_model, n_heads * (5 * d_head + 3 * eta), gain=gain)
        self.out = orthogonal_linear(n_heads * d_head, d_model)
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
        p = linear(self.project, h).view(*h.shape[:-1], self.n_heads, 5 * d + 3 * eta)
        if h.dim() == 2:
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
        # sequences: split, and activate each factor on its own (the backward of slices of one
        # big activation would zero-fill a full-size gradient per slice; split's backward is one cat)
        wk, wq, v, beta, g, p1, p2, p3 = p.split((d, d, d, d, d, eta, eta, eta), dim=-1)
        phi = self.feature_map
        wk, wq, p1, p2 = phi(wk), phi(wq), phi(p1), phi(p2)
        beta, g, p3 = torch.sigmoid(beta), torch.sigmoid(g), torch.sigmoid(p3)
        return wk, wq, p1, p2, v, beta, g, p3

    def forward(self, h: torch.Tensor, log_decays: bool = False) -> tuple[torch.Tensor, ...]:
        """``h: (T, B, d_model)`` -> ``write_k, decay_k, q: (T, B, H, F)``, ``write_v, decay_v: (T, B, H, d)``
        (without the ``T`` dimension for one acting step's ``h: (B, d_model)``).

        ``write_k = gamma * k``, ``decay_k = 1 - gamma``, ``write_v = beta * v``, ``decay_v = 1 - beta``,
        decays floored at exp(LOG_DECAY_FLOOR); with ``log_decays`` the decays come as their logs.
        """
        wk, wq, p1, p2, v, beta, g, p3 = self.factors(h)
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

    def merge_heads(self, a: torch.Tensor) -> torch.Tensor:
        """``(T, B, H, d)`` -> ``(T, B, d_model)``, each head's read first divided by its root mean
        square with ``read_norm="rms"``."""
        if self.normalise_read:
            mean_square = a.pow(2).mean(-1, keepdim=True)
            if torch.compiler.is_exporting():
                # the same sum, written so that torch's ONNX exporter keeps it: it drops the add of
                # so small a constant, and a first layer that reads the observation can have reads
                # whose mean square is ~1e-10, where the eps moves the result by ~1%
                mean_square = (mean_square / READ_NORM_EPS + 1.0) * READ_NORM_EPS
            else:
                mean_square = mean_square + READ_NORM_EPS
            a = a * torch.rsqrt(mean_square)
        return linear(self.out, a.flatten(-2))


def step_keep(starts: torch.Tensor) -> torch.Tensor | None:
    """For a ``T == 1`` call: ``(B, 1, 1)`` multiplier that zeroes the state of envs starting an
    episode, or ``None`` when no env starts (checked on CPU only, where it costs no device sync, and
    not under ``torch.compile`` or a tracing export, where the data-dependent branch would split the
    graph or be frozen into it)."""
    start = starts[0]
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    if start.device.type == "cpu" and not tracing and not bool(start.any()):
        return None
    return (1.0 - start).view(-1, 1, 1)


class GaLiTeMixer(SequenceMixer):
    """GaLiTe attention for one layer; state ``(C: (H, d, F), s: (H, F))``."""

    def __init__(
        self, d_model: int, n_heads: int, d_head: int, eta: int, choices: GatedChoices, in_features: int | None = None
    ) -> None:
        super().__init__()
        self.features = GatedFeatures(d_model, n_heads, d_head, eta, choices, in_features)
        self.n_heads, self.d_head, self.feature_dim = n_heads, d_head, eta * d_head
        self.bounded = choices.normaliser == "bounded"

    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.n_heads, self.d_head, self.feature_dim), (self.n_heads, self.feature_dim)

    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        starts, keep = context
        memory, normaliser = layer_state
        if h.shape[0] == 1:
            # one step: features of (B, d_model), not of (1, B, d_model) indexed five times
            write_k, decay_k, q, write_v, decay_v = self.features(h[0])
            a, memory, normaliser = self._step(keep, decay_k, decay_v, write_k, write_v, q, memory, normaliser, self.bounded)
            a = a.unsqueeze(0)
        else:
            write_k, decay_k, q, write_v, decay_v = self.features(h, log_decays=True)
            a, memory, normaliser = self._chunked(
                starts, decay_k, decay_v, write_k, write_v, q, memory, normaliser, self.bounded
            )
        return self.features.merge_heads(a), (memory, normaliser)

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

    State per env: ``n_layers * n_heads * (d_head * eta * d_head + eta * d_head)`` floats.

    :param input_dim: size of each input vector
    :param n_layers, d_model, n_heads, d_head, d_ffc, eta: sizes (paper's T-Maze defaults)
    :param variant: ``"default"`` (the library's: softplus features, long gates, a normalised
        read, the paper's normaliser) or ``"paper"`` (the paper's equations and
        initialisation); see the module docstring
    :param normaliser: ``"sum"`` or ``"bounded"``, overriding the variant's
    :param gate_init: ``"long"``, ``"slower"``, ``"slow"``, ``"multiscale"``, ``"per_head"`` or ``"zero"``,
        overriding the variant's
    :param feature_map: ``"softplus"`` or ``"relu"``, overriding the variant's
    :param read_norm: ``"rms"`` or ``"none"``, overriding the variant's
    :param read_merge: ``"gated"`` or ``"residual"``, how the block adds the read to its stream
        (see :mod:`sb3_rtx.cells.block`), overriding the variant's
    :param memory_input: ``"observation"`` or ``"stream"``, what the first layer's memory reads
        (see :mod:`sb3_rtx.cells.block`), overriding the variant's
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
    ) -> None:
        check_positive_int("GaLiTe", n_heads=n_heads, d_head=d_head, eta=eta)
        choices = resolve_variant(
            "GaLiTe",
            variant,
            normaliser=normaliser,
            gate_init=gate_init,
            feature_map=feature_map,
            read_norm=read_norm,
            read_merge=read_merge,
            memory_input=memory_input,
        )
        self.n_heads, self.d_head, self.eta = n_heads, d_head, eta
        self.variant, self.normaliser, self.gate_init = variant, choices.normaliser, choices.gate_init
        self.feature_map, self.read_norm, self.read_merge = choices.feature_map, choices.read_norm, choices.read_merge
        self.memory_input = choices.memory_input
        super().__init__(
            input_dim,
            n_layers,
            d_model,
            d_ffc,
            lambda in_features: GaLiTeMixer(d_model, n_heads, d_head, eta, choices, in_features),
            choices.read_merge,
            choices.memory_input,
        )

    def make_context(self, shared: CellState, starts: torch.Tensor) -> Any:
        return starts, (step_keep(starts) if starts.shape[0] == 1 else None)
