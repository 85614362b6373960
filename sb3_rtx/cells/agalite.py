"""AGaLiTe: the approximate GaLiTe of Pramanik et al. (TMLR 2024), with r oscillating rank-one terms.

GaLiTe's ``d x F`` state ``C_t`` is replaced by ``r`` pairs of vectors, with frequencies ``omega_j``
and a step counter ``n`` (steps since the episode started, 1 at the first step):

    vt_j,t = (1 - beta_t) * vt_j,t-1 + cos(omega_j n_t) beta_t * v_t        (R^d)
    kt_j,t = (1 - gamma_t) * kt_j,t-1 + cos(omega_j n_t) gamma_t * k_t      (R^F)
    s_t    = (1 - gamma_t) * s_{t-1} + gamma_t * k_t                        (R^F)
    a_t    = sum_j vt_j,t (kt_j,t . q_t) / (2 r (s_t . q_t) + eps)

All three are element-wise gated sums. The multi-step form scans the small ``vt`` with
:func:`~sb3_rtx.cells.scan.linear_scan` and gets ``kt_j . q`` and ``s . q`` from
:func:`~sb3_rtx.cells.factored_attention.factored_gated_attention`, a chunked form whose backward
rebuilds the ``eta * d``-wide features from their small factors: the ``r * eta * d`` key state is
only materialised at chunk boundaries, and no ``eta * d``-wide tensor is kept for backward.
Decays are floored at exp(-10) on every path (see :data:`~sb3_rtx.cells.scan.LOG_DECAY_FLOOR`).

Key memories that are the same are kept once (:func:`key_memory_rows`): every ``kt_j`` and ``s``
share their decay and their input and differ only in their weight ``cos(omega_j n)``, so a
frequency 0 (the default ``"dc"`` set's first, weight 1) makes ``kt_j`` equal to ``s``, and two
frequencies with equal cosines (the paper's ``+-pi`` at ``r = 2``) make two ``kt_j`` equal. The
state then holds ``s`` and the distinct ``kt_j`` only (at ``r = 2`` two ``eta * d`` rows per head
instead of three, in either variant): the same outputs with less state, less key-side work and
less kept for backward.

Frequencies (``frequencies=``):

* ``"reference"`` - ``omega = linspace(-pi, pi, r)`` as in the paper's code. They come in +/- pairs
  with equal cosines, so about half of the ``r`` terms duplicate the others (at ``r = 2`` both are
  ``(-1)^n``).
* ``"distinct"`` - ``omega_j = pi * j / r`` for ``j = 1..r``: ``r`` distinct frequencies in (0, pi],
  twice the effective rank for the same state size.
* ``"dc"`` (the library's default variant) - ``omega_j = pi * j / r`` for ``j = 0..r-1``: the first
  term is constant. With ``"reference"`` at ``r = 2`` a remembered value is read times an
  alternating sum of every later key's match with the query, whose sign noisy inputs decide; the
  constant term's weight is ``s . q``, which no key can make negative (docs, "Learning memory").

Read scale (``read_scale=``): the paper divides the read by ``2 r (s . q)``. A value written at one
step and read back through its own key comes back with weight ``sum_j cos^2(omega_j n)``, on average
the oscillators' mean power ``P`` (1.5 for ``"dc"`` at ``r = 2``, ``r`` for ``"reference"``), so
``2 r`` returns it at ``P / 2r`` of its size (0.375 for the default frequencies), shrinking with
``r``. At the start of training the memory's contribution to the block's output, and the gradient
that teaches it, shrink with it.

With ``read_norm="rms"`` (the default variant, see :mod:`sb3_rtx.cells.galite`) each head's read is
divided by its root mean square, so this divisor, like the normaliser, divides out: the read scale
only matters with ``read_norm="none"``.

* ``"2r"`` (paper, and both variants): ``a = sum_j vt_j (kt_j . q) / (2 r (s . q))``.
* ``"power"`` (an option): divide by ``P (s . q)`` instead, so a value read back through its own
  key returns at its own scale whatever ``r`` and the frequencies; no cost. Not the default: it
  helped noisy recall and not T-Maze (docs, "Learning memory").

Variants (``variant="default" | "paper"``, :mod:`sb3_rtx.cells.variants`) choose the frequencies
and read scale together with GaLiTe's choices (see :mod:`sb3_rtx.cells.galite`), with one
difference: AGaLiTe's default starts its first head long and spreads the memory spans within each
other head (``gate_init="long_first"``: several time scales in one normalised read, which control
from noisy observations wants, beside a head that holds an early step), where GaLiTe's starts every
head long (``"long"``). Chosen on the development set (docs, "Investigation", "One long head, the
others spread"); GaLiTe's not measured with it.

All sets are rational multiples of pi, so every cosine is periodic in ``n``; the counter is kept
modulo that period, which keeps it exact in float32 however long an episode runs. Unlike the
paper's code, the counter restarts at every episode start (the state is reset to the initial
state, counter included), so an episode's outputs never depend on what came before it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from sb3_rtx.cells.base import CellState, check_positive_int
from sb3_rtx.cells.block import GatedTransformerCell, SequenceMixer
from sb3_rtx.cells.galite import STREAM_PROJECTION_GAIN, GatedFeatures, normalise, step_keep
from sb3_rtx.cells.variants import CHOICES, Choices, resolve
from sb3_rtx.cells.factored_attention import factored_gated_attention, outer
from sb3_rtx.cells.scan import DECAY_FLOOR
from sb3_rtx.cells.oscillating_values import oscillating_value_read

FREQUENCY_SETS = CHOICES["frequencies"]
READ_SCALES = CHOICES["read_scale"]


def oscillator_frequencies(r: int, kind: str) -> tuple[torch.Tensor, int]:
    """The ``r`` frequencies and the period (in steps) after which all their cosines repeat."""
    if kind == "reference":
        if r == 1:
            return torch.tensor([-math.pi], dtype=torch.float64), 2
        # pi * (-1 + 2 j / (r - 1)): cos(omega n) repeats after 2 (r - 1) steps
        return torch.linspace(-math.pi, math.pi, r, dtype=torch.float64), 2 * (r - 1)
    if kind == "dc":
        # pi * j / r for j = 0..r-1: r distinct frequencies in [0, pi), the first the constant 1
        return math.pi * torch.arange(0, r, dtype=torch.float64) / r, 2 * r
    if kind == "distinct":
        # pi * j / r: cos(omega n) repeats after 2 r steps
        return math.pi * torch.arange(1, r + 1, dtype=torch.float64) / r, 2 * r
    raise ValueError(f"AGaLiTe: frequencies must be one of {FREQUENCY_SETS}, got {kind!r}")


def cosine_table(omegas: torch.Tensor, period: int) -> torch.Tensor:
    """``cos(omega_j n)`` for ``n = 0 .. period-1``, ``(period, r)``, in float64 from exact integer steps."""
    steps = torch.arange(period, dtype=torch.float64).unsqueeze(-1)
    return torch.cos(steps * omegas.to(torch.float64))


def key_memory_rows(omegas: torch.Tensor, period: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Which key memories are distinct (see the module docstring): ``(columns, rows)``, where
    ``columns`` are the oscillators (indices into ``omegas``) with a key memory of their own, after
    the normaliser ``s`` (row 0, weight 1), and ``rows[j]`` is the row that holds ``kt_j``. Weights
    are compared over a whole period, exactly, in float64."""
    cosines = cosine_table(omegas, period)
    kept = [torch.ones(period, dtype=torch.float64)]
    columns: list[int] = []
    rows: list[int] = []
    for j in range(cosines.shape[1]):
        same = [i for i, weights in enumerate(kept) if torch.equal(weights, cosines[:, j])]
        if not same:
            kept.append(cosines[:, j])
            columns.append(j)
        rows.append(same[0] if same else len(kept) - 1)
    return tuple(columns), tuple(rows)


def rows_index(rows: tuple[int, ...]) -> slice | list[int]:
    """``rows`` as a slice where they are consecutive (a view, no gather), else as a list."""
    consecutive = all(b == a + 1 for a, b in itertools.pairwise(rows))
    return slice(rows[0], rows[-1] + 1) if consecutive else list(rows)


def read_divisor(omegas: torch.Tensor, period: int, kind: str) -> float:
    """What ``s . q`` is multiplied by in the read's normaliser: the paper's ``2 r``, or ("power") the
    oscillators' mean power ``sum_j mean_n cos^2(omega_j n)``, the average weight with which a value
    written at one step is read back through its own key (1.5 for ``"dc"`` at ``r = 2``)."""
    if kind == "2r":
        return float(2 * len(omegas))
    if kind == "power":
        return float(cosine_table(omegas, period).pow(2).sum(-1).mean())
    raise ValueError(f"AGaLiTe: read_scale must be one of {READ_SCALES}, got {kind!r}")


class StepCounter:
    """Per-call step numbers ``n_t`` (1 at an episode's first step), and the counter after the call."""

    def __init__(self, counter: torch.Tensor, starts: torch.Tensor, period: int) -> None:
        seq_len = starts.shape[0]
        if seq_len == 1:  # the acting path: no cumulative machinery
            self.steps = torch.where(starts.bool(), 1, counter.round().long() + 1) % period  # (1, B)
        else:
            steps = torch.arange(1, seq_len + 1, device=starts.device, dtype=torch.long).unsqueeze(1)  # (T, 1)
            # index of the last start at or before t (-1 if none): count from there, else from the counter
            last_start = torch.where(starts.bool(), steps - 1, torch.full_like(steps, -1)).cummax(0).values
            continuing = counter.round().long().unsqueeze(0) + steps
            since_start = steps - last_start
            self.steps = torch.where(last_start >= 0, since_start, continuing) % period  # (T, B)
        self.final = self.steps[-1].to(counter.dtype)


class AGaLiTeContext:
    """What every layer needs from one call: resets, the write weights (the value memories' ``r``
    cosines, then the key memories': 1 for the normaliser and the distinct cosines), the new counter."""

    def __init__(
        self, starts: torch.Tensor, weights: torch.Tensor, r: int, final_counter: torch.Tensor, compiled: bool = False
    ) -> None:
        self.starts = starts  # (T, B)
        self.compiled = compiled  # the key and value sides' fused kernels (the cell's compile_training)
        self.value_weights = weights[..., :r]  # (T, B, r)
        self.key_weights = weights[..., r:]  # (T, B, K): K key memories
        self.final_counter = final_counter
        if starts.shape[0] == 1:
            self.keep = step_keep(starts)  # (B, 1, 1) or None
            osc = weights[0].unsqueeze(1).unsqueeze(-1)  # (B, 1, r + K, 1)
            self.osc_values, self.osc_keys = osc[:, :, :r], osc[:, :, r:]


class AGaLiTeMixer(SequenceMixer):
    """AGaLiTe attention for one layer; state ``(vt: (H, r, d), ks: (H, K, F))``.

    ``ks`` holds the normaliser ``s`` (row 0) and the distinct ``kt_j`` (``K - 1`` rows; ``kt_j`` is row
    ``key_rows[j]``, see :func:`key_memory_rows`): all are ``kt`` with their own weight (same decay,
    same input), so one update and one product serve every row.
    """

    def __init__(self, features: GatedFeatures, r: int, choices: Choices, divisor: float, key_rows: tuple[int, ...]) -> None:
        super().__init__()
        self.features = features  # the layer's input projections (keys, queries, values, gates)
        self.n_heads, self.d_head, self.r = features.n_heads, features.d_head, r
        self.feature_dim = features.eta * features.d_head
        self.n_key_rows = max(key_rows) + 1
        self.kq_rows = rows_index(key_rows)  # where kt_j . q is among the key side's products
        self.bounded = choices.normaliser == "bounded"
        self.divisor = divisor  # multiplies s . q in the read's normaliser (see read_divisor)

    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        memory = (self.n_heads, self.r, self.d_head), (self.n_heads, self.n_key_rows, self.feature_dim)
        return memory + self.features.conv_state_shapes()

    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        acting = h.shape[0] == 1
        x = h[0] if acting else h
        factors = self.features.factors(x)
        keep = context.keep if acting else None
        factors, conv_state = self.features.convolve_values(
            factors, layer_state[2:], context.starts, keep, compiled=context.compiled
        )
        written = self.features.select_writes(factors, x, values=True)  # the direct path reads factors' v
        if acting:
            a, new_state = self._step(context, written, layer_state[:2])
        else:
            a, new_state = self._sequence(context, written, layer_state[:2])
        return self.features.merge_heads(a, factors[4]), (*new_state, *conv_state)

    def _step(self, context: AGaLiTeContext, factors, layer_state):
        """The acting path (T == 1): a handful of batched ops per layer, no chunk machinery.

        At batch 1 the step costs its dispatches, not its arithmetic, so ``gamma = p3 outer g`` is
        taken once, for both the decay and the write ``gamma * (p1 outer wk)``: four products where
        :meth:`~sb3_rtx.cells.galite.GatedFeatures.products`, the form for whole sequences, takes
        five to pass fewer times over the wide tensors."""
        wk, wq, p1, p2, v, beta, g, p3 = factors  # (B, H, d) / (B, H, eta)
        vt, ks = layer_state
        gamma = outer(p3, g)  # (B, H, F)
        decay_k = torch.rsub(gamma, 1.0).clamp_min(DECAY_FLOOR)
        decay_v = torch.rsub(beta, 1.0).clamp_min(DECAY_FLOOR)
        if context.keep is not None:  # an episode start resets the state to zero first
            decay_k, decay_v = decay_k * context.keep, decay_v * context.keep
        ks = torch.addcmul(context.osc_keys * (gamma * outer(p1, wk)).unsqueeze(2), decay_k.unsqueeze(2), ks)
        vt = torch.addcmul(context.osc_values * (beta * v).unsqueeze(2), decay_v.unsqueeze(2), vt)
        ksq = torch.matmul(ks, outer(p2, wq).unsqueeze(-1))  # (B, H, K, 1): s . q, then the distinct kt_j . q
        numerator = torch.matmul(ksq[:, :, self.kq_rows].transpose(-1, -2), vt)  # (B, H, 1, d)
        a = normalise(numerator, ksq[:, :, :1] * self.divisor, self.bounded)
        return a.permute(2, 0, 1, 3), (vt, ks)  # (1, B, H, d)

    def _sequence(self, context: AGaLiTeContext, factors, layer_state):
        """The training path (T > 1): a scan for the value side, chunked attention for the key side."""
        wk, wq, p1, p2, v, beta, g, p3 = factors
        starts = context.starts
        vt, ks = layer_state
        # key side: s . q and kt_j . q, never materialising ks (K rows of eta * d) at every step
        ksq, ks = factored_gated_attention(p1, wk, p2, wq, p3, g, context.key_weights, starts, ks, compiled=context.compiled)
        # value side: r small vectors per head, scanned, read, and scanned again in backward
        a, vt = oscillating_value_read(
            beta,
            v,
            context.value_weights,
            starts,
            vt,
            ksq[..., self.kq_rows],
            ksq[..., 0],
            self.divisor,
            self.bounded,
            compiled=context.compiled,
        )
        return a, (vt, ks)


class AGaLiTe(GatedTransformerCell):
    """AGaLiTe cell: GaLiTe with its ``d x F`` state approximated by ``r`` oscillating rank-one terms.

    State per env: ``n_layers * n_heads * (r * d_head + K * eta * d_head + (value_conv - 1) * d_head) + 1``
    floats, with ``K`` key memories: the normaliser and each distinct ``kt_j`` (``r + 1`` at most; 2
    at ``r = 2`` in both variants, see :func:`key_memory_rows`); the 1 is the step counter, and
    ``value_conv - 1`` past values per channel (3 in the default variant).

    :param input_dim: size of each input vector
    :param n_layers, d_model, n_heads, d_head, d_ffc, eta, r: sizes (paper's T-Maze defaults)
    :param frequencies: ``"reference"`` (paper), ``"distinct"`` or ``"dc"`` (default variant); None
        takes the variant's (see module docstring)
    :param variant: ``"default"`` (softplus features, one long head and spread spans, a normalised read,
        ``"dc"``) or ``"paper"``
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
    :param value_conv_init: ``"anchored"`` (the default variant's), ``"identity"`` or ``"mamba"``, how the value
        convolution and its direct path start (see :mod:`sb3_rtx.cells.short_conv`)
    :param read_scale: ``"2r"`` (both variants) or ``"power"``, what ``s . q`` is multiplied
        by in the read's normaliser (see :func:`read_divisor`); None takes the variant's
    :param output_scale: a factor on the cell's output, what the policy's heads see (1: none;
        see :class:`~sb3_rtx.cells.block.GatedTransformerCell`)
    :param learn_output_scale: the factor is a learned scalar starting at ``output_scale``
    """

    name = "agalite"
    has_compiled_training = True

    def __init__(
        self,
        input_dim: int,
        n_layers: int = 4,
        d_model: int = 128,
        n_heads: int = 4,
        d_head: int = 64,
        d_ffc: int = 128,
        eta: int = 8,
        r: int = 2,
        frequencies: str | None = None,
        variant: str = "default",
        normaliser: str | None = None,
        gate_init: str | None = None,
        read_scale: str | None = None,
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
        check_positive_int("AGaLiTe", n_heads=n_heads, d_head=d_head, eta=eta, r=r)
        choices = resolve(
            "AGaLiTe",
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
            frequencies=frequencies,
            read_scale=read_scale,
        )
        frequencies, read_scale = str(choices.frequencies), str(choices.read_scale)
        omegas, period = oscillator_frequencies(r, frequencies)
        divisor = read_divisor(omegas, period, read_scale)
        key_columns, key_rows = key_memory_rows(omegas, period)
        self.read_scale = read_scale
        self.variant, self.normaliser, self.gate_init = variant, choices.normaliser, choices.gate_init
        self.feature_map, self.read_norm, self.read_merge = choices.feature_map, choices.read_norm, choices.read_merge
        self.memory_input, self.value_conv = choices.memory_input, choices.value_conv
        self.value_conv_init, self.write_gate = choices.value_conv_init, choices.write_gate
        self.choices = choices
        self.n_heads, self.d_head, self.eta, self.r = n_heads, d_head, eta, r
        self.frequency_set, self.period = frequencies, period
        super().__init__(
            input_dim,
            n_layers,
            d_model,
            d_ffc,
            lambda in_features: AGaLiTeMixer(
                GatedFeatures(d_model, n_heads, d_head, eta, choices, in_features, STREAM_PROJECTION_GAIN[variant]),
                r,
                choices,
                divisor,
                key_rows,
            ),
            choices.read_merge,
            choices.memory_input,
            output_scale,
            learn_output_scale,
        )
        # a plain tuple, not a buffer: module.float() / .half() must not round the frequencies
        self.omegas = tuple(omegas.tolist())
        self.key_columns = key_columns
        self._weight_tables: dict = {}  # (device, dtype) -> (period, r + K) table, a cache (not state)

    def shared_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((),)  # the step counter, one per env

    def recorded_choices(self) -> dict[str, Any]:
        return {"variant": self.variant, **self.choices.recorded()}

    def weight_table(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The write weights for ``n = 0 .. period-1``, shape ``(period, r + K)``: the value memories'
        ``cos(omega_j n)``, then the key memories' (1 for the normaliser, then the distinct cosines,
        :attr:`key_columns`). Computed once in float64 from exact integer steps and then cast, so the
        step and scan paths read identical values."""
        key = (device, dtype)
        table = self._weight_tables.get(key)
        if table is None:
            cosines = cosine_table(torch.tensor(self.omegas, dtype=torch.float64), self.period)
            keys = [torch.ones_like(cosines[:, :1]), cosines[:, list(self.key_columns)]]
            table = torch.cat([cosines, *keys], dim=-1).to(device=device, dtype=dtype)
            self._weight_tables[key] = table
        return table

    def make_context(self, shared: CellState, starts: torch.Tensor) -> Any:
        (counter,) = shared
        steps = StepCounter(counter, starts, self.period)
        weights = self.weight_table(starts.device, starts.dtype)[steps.steps]  # (T, B, r + K)
        # the flag as set, not training_compiled: that property asks the kernels whether compiling
        # failed, which the kernels handle themselves, and make_context runs on every acting step
        return AGaLiTeContext(starts, weights, self.r, steps.final, self._training_compiled)

    def advance_shared(self, shared: CellState, starts: torch.Tensor, context: Any) -> CellState:
        return (context.final_counter,)
