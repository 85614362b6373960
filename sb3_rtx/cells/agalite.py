"""AGaLiTe: the approximate GaLiTe of Pramanik et al. (TMLR 2024), with r oscillating rank-one terms.

GaLiTe's ``d x F`` state ``C_t`` is replaced by ``r`` pairs of vectors, with frequencies ``omega_j``
and a step counter ``n`` (steps since the episode started, 1 at the first step):

    vt_j,t = (1 - beta_t) * vt_j,t-1 + cos(omega_j n_t) beta_t * v_t        (R^d)
    kt_j,t = (1 - gamma_t) * kt_j,t-1 + cos(omega_j n_t) gamma_t * k_t      (R^F)
    s_t    = (1 - gamma_t) * s_{t-1} + gamma_t * k_t                        (R^F)
    a_t    = sum_j vt_j,t (kt_j,t . q_t) / (2 r (s_t . q_t) + eps)

All three are element-wise gated sums, so the multi-step form is
:func:`~sb3_rtx.cells.scan.linear_scan`.

Frequencies (``frequencies=``):

* ``"reference"`` - ``omega = linspace(-pi, pi, r)`` as in the paper's code. They come in +/- pairs
  with equal cosines, so about half of the ``r`` terms duplicate the others (at ``r = 2`` both are
  ``(-1)^n``).
* ``"distinct"`` - ``omega_j = pi * j / r`` for ``j = 1..r``: ``r`` distinct frequencies in (0, pi],
  twice the effective rank for the same state size.

Both sets are rational multiples of pi, so every cosine is periodic in ``n``; the counter is kept
modulo that period, which keeps it exact in float32 however long an episode runs. Unlike the
paper's code, the counter restarts at every episode start (the state is reset to the initial
state, counter included), so an episode's outputs never depend on what came before it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sb3_rtx.cells.base import CellState, check_positive_int
from sb3_rtx.cells.block import GatedTransformerCell, SequenceMixer
from sb3_rtx.cells.galite import NORMALISER_EPS, GatedFeatures
from sb3_rtx.cells.scan import linear_scan

FREQUENCY_SETS = ("reference", "distinct")


def oscillator_frequencies(r: int, kind: str) -> tuple[torch.Tensor, int]:
    """The ``r`` frequencies and the period (in steps) after which all their cosines repeat."""
    if kind == "reference":
        if r == 1:
            return torch.tensor([-math.pi], dtype=torch.float64), 2
        # pi * (-1 + 2 j / (r - 1)): cos(omega n) repeats after 2 (r - 1) steps
        return torch.linspace(-math.pi, math.pi, r, dtype=torch.float64), 2 * (r - 1)
    if kind == "distinct":
        # pi * j / r: cos(omega n) repeats after 2 r steps
        return math.pi * torch.arange(1, r + 1, dtype=torch.float64) / r, 2 * r
    raise ValueError(f"AGaLiTe: frequencies must be one of {FREQUENCY_SETS}, got {kind!r}")


class StepCounter:
    """Per-call step numbers ``n_t`` (1 at an episode's first step), and the counter after the call."""

    def __init__(self, counter: torch.Tensor, starts: torch.Tensor, period: int) -> None:
        seq_len = starts.shape[0]
        steps = torch.arange(1, seq_len + 1, device=starts.device, dtype=torch.long).unsqueeze(1)  # (T, 1)
        # index of the last start at or before t (-1 if none): count from there, else from the counter
        last_start = torch.where(starts.bool(), steps - 1, torch.full_like(steps, -1)).cummax(0).values
        continuing = counter.round().long().unsqueeze(0) + steps
        since_start = steps - last_start
        self.steps = torch.where(last_start >= 0, since_start, continuing) % period  # (T, B)
        self.final = self.steps[-1].to(counter.dtype)


class AGaLiTeMixer(SequenceMixer):
    """AGaLiTe attention for one layer; state ``(vt: (H, r, d), kt: (H, r, F), s: (H, F))``."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, eta: int, r: int) -> None:
        super().__init__()
        self.features = GatedFeatures(d_model, n_heads, d_head, eta)
        self.n_heads, self.d_head, self.feature_dim, self.r = n_heads, d_head, eta * d_head, r

    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (
            (self.n_heads, self.r, self.d_head),
            (self.n_heads, self.r, self.feature_dim),
            (self.n_heads, self.feature_dim),
        )

    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        starts, cosines, _ = context  # (T, B), (T, B, r), counter after the call
        k, q, gamma, v, beta = self.features(h)
        keep = (1.0 - starts)[:, :, None, None]
        decay_k = ((1.0 - gamma) * keep).unsqueeze(3)  # (T, B, H, 1, F): one gate for kt_1..kt_r and s
        decay_v = ((1.0 - beta) * keep).unsqueeze(3)  # (T, B, H, 1, d)
        osc = cosines.to(h.dtype)[:, :, None, :, None]  # (T, B, 1, r, 1)
        write_k = (gamma * k).unsqueeze(3)  # (T, B, H, 1, F)
        write_kt = torch.cat([osc * write_k, write_k], dim=3)  # (T, B, H, r + 1, F): kt_j then s
        write_vt = osc * (beta * v).unsqueeze(3)  # (T, B, H, r, d)
        vt, kt, normaliser = layer_state
        kts = torch.cat([kt, normaliser.unsqueeze(2)], dim=2)
        if h.shape[0] == 1:
            vt_all = torch.addcmul(write_vt[0], decay_v[0], vt).unsqueeze(0)
            kts_all = torch.addcmul(write_kt[0], decay_k[0], kts).unsqueeze(0)
        else:
            vt_all = linear_scan(decay_v, write_vt, vt)
            kts_all = linear_scan(decay_k, write_kt, kts)
        # (kt_j . q) for every j, and (s . q) in the last slot
        kq = torch.einsum("tbhjf,tbhf->tbhj", kts_all, q)
        numerator = torch.einsum("tbhjd,tbhj->tbhd", vt_all, kq[..., : self.r])
        denominator = 2 * self.r * kq[..., self.r :] + NORMALISER_EPS
        a = numerator / denominator
        new_state = (vt_all[-1], kts_all[-1, :, :, : self.r], kts_all[-1, :, :, self.r])
        return self.features.merge_heads(a), new_state


class AGaLiTe(GatedTransformerCell):
    """AGaLiTe cell: GaLiTe with its ``d x F`` state approximated by ``r`` oscillating rank-one terms.

    State per env: ``n_layers * n_heads * (r * (d_head + eta * d_head) + eta * d_head) + 1`` floats
    (the 1 is the step counter).

    :param input_dim: size of each input vector
    :param n_layers, d_model, n_heads, d_head, d_ffc, eta, r: sizes (paper's T-Maze defaults)
    :param frequencies: ``"reference"`` (paper) or ``"distinct"`` (see module docstring)
    """

    name = "agalite"

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
        frequencies: str = "reference",
    ) -> None:
        check_positive_int("AGaLiTe", n_heads=n_heads, d_head=d_head, eta=eta, r=r)
        omegas, period = oscillator_frequencies(r, frequencies)
        self.n_heads, self.d_head, self.eta, self.r = n_heads, d_head, eta, r
        self.frequency_set, self.period = frequencies, period
        super().__init__(
            input_dim,
            n_layers,
            d_model,
            d_ffc,
            lambda: AGaLiTeMixer(d_model, n_heads, d_head, eta, r),
        )
        # a plain tuple, not a buffer: module.float() / .half() must not round the frequencies
        self.omegas = tuple(omegas.tolist())

    def shared_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((),)  # the step counter, one per env

    def make_context(self, shared: CellState, starts: torch.Tensor) -> Any:
        (counter,) = shared
        steps = StepCounter(counter, starts, self.period)
        # cos in float64 from an exact integer step, then cast: identical on the step and scan paths
        omegas = torch.tensor(self.omegas, dtype=torch.float64, device=starts.device)
        cosines = torch.cos(steps.steps.unsqueeze(-1).to(torch.float64) * omegas)
        return starts, cosines, steps.final

    def advance_shared(self, shared: CellState, starts: torch.Tensor, context: Any) -> CellState:
        return (context[2],)
