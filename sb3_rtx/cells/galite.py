"""GaLiTe: Gated Linear Transformer (Pramanik et al., TMLR 2024, arXiv 2310.15719), exact form.

Per layer and head (d = head dim, eta = feature-map expansion, F = eta * d):

    k_t = flatten(relu(W_k x) outer relu(W_p1 x))        q_t likewise with W_q, W_p2      (R^F)
    v_t = W_v x,  beta_t = sigmoid(W_beta x)                                              (R^d)
    gamma_t = flatten(sigmoid(W_g x) outer sigmoid(W_p3 x))                               (R^F)
    C_t = ((1 - beta_t)(1 - gamma_t)^T) * C_{t-1} + (beta_t * v_t)(gamma_t * k_t)^T        (d x F)
    s_t = (1 - gamma_t) * s_{t-1} + gamma_t * k_t                                         (R^F)
    a_t = C_t q_t / (s_t . q_t + eps)

The state ``C`` is ``d x F`` per head, far too large to materialise at every step of a training
sequence, so the multi-step form is chunked: inside a chunk the output is a gated attention over
the chunk's positions (decays between pairs from :func:`~sb3_rtx.cells.scan.pairwise_decays`), and
``C`` is only carried from chunk to chunk. A reset is a zero decay, which cuts every pair across it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sb3_rtx.cells.base import CellState, check_positive_int
from sb3_rtx.cells.block import GatedTransformerCell, SequenceMixer, orthogonal_linear
from sb3_rtx.cells.scan import pairwise_decays

#: added to the normaliser s_t . q_t (which is >= 0 by construction)
NORMALISER_EPS = 1e-6


class GatedFeatures(nn.Module):
    """The fused input projections of GaLiTe and AGaLiTe: keys, queries, values and both gates."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, eta: int) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.eta = n_heads, d_head, eta
        # one matmul for W_k, W_q, W_v, W_beta, W_g (d each) and W_p1, W_p2, W_p3 (eta each)
        self.project = orthogonal_linear(d_model, n_heads * (5 * d_head + 3 * eta))
        self.out = orthogonal_linear(n_heads * d_head, d_model)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``h: (T, B, d_model)`` -> ``k, q, gamma: (T, B, H, F)`` and ``v, beta: (T, B, H, d)``."""
        seq_len, batch, _ = h.shape
        d, eta = self.d_head, self.eta
        p = self.project(h).view(seq_len, batch, self.n_heads, 5 * d + 3 * eta)
        wk, wq, wv, wb, wg, p1, p2, p3 = p.split([d, d, d, d, d, eta, eta, eta], dim=-1)

        def outer(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
            return (left.unsqueeze(-1) * right.unsqueeze(-2)).flatten(-2)

        k = outer(torch.relu(wk), torch.relu(p1))
        q = outer(torch.relu(wq), torch.relu(p2))
        gamma = outer(torch.sigmoid(wg), torch.sigmoid(p3))
        return k, q, gamma, wv, torch.sigmoid(wb)

    def merge_heads(self, a: torch.Tensor) -> torch.Tensor:
        """``(T, B, H, d)`` -> ``(T, B, d_model)``."""
        return self.out(a.flatten(-2))


class GaLiTeMixer(SequenceMixer):
    """GaLiTe attention for one layer; state ``(C: (H, d, F), s: (H, F))``."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, eta: int, chunk_len: int) -> None:
        super().__init__()
        self.features = GatedFeatures(d_model, n_heads, d_head, eta)
        self.n_heads, self.d_head, self.feature_dim = n_heads, d_head, eta * d_head
        self.chunk_len = chunk_len

    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.n_heads, self.d_head, self.feature_dim), (self.n_heads, self.feature_dim)

    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        starts: torch.Tensor = context
        k, q, gamma, v, beta = self.features(h)
        keep = (1.0 - starts)[:, :, None, None]
        decay_k = (1.0 - gamma) * keep  # (T, B, H, F)
        decay_v = (1.0 - beta) * keep  # (T, B, H, d)
        write_k = gamma * k
        write_v = beta * v
        memory, normaliser = layer_state
        if h.shape[0] == 1:
            a, memory, normaliser = self._step(decay_k[0], decay_v[0], write_k[0], write_v[0], q[0], memory, normaliser)
            a = a.unsqueeze(0)
        else:
            a, memory, normaliser = self._chunked(decay_k, decay_v, write_k, write_v, q, memory, normaliser)
        return self.features.merge_heads(a), (memory, normaliser)

    @staticmethod
    def _step(decay_k, decay_v, write_k, write_v, q, memory, normaliser):
        memory = decay_v.unsqueeze(-1) * decay_k.unsqueeze(-2) * memory + write_v.unsqueeze(-1) * write_k.unsqueeze(-2)
        normaliser = torch.addcmul(write_k, decay_k, normaliser)
        numerator = torch.einsum("bhef,bhf->bhe", memory, q)
        denominator = (normaliser * q).sum(-1, keepdim=True) + NORMALISER_EPS
        return numerator / denominator, memory, normaliser

    def _chunked(self, decay_k, decay_v, write_k, write_v, q, memory, normaliser):
        seq_len = q.shape[0]
        chunk = min(self.chunk_len, seq_len)
        n_chunks = -(-seq_len // chunk)
        pad = n_chunks * chunk - seq_len

        def chunked(x: torch.Tensor, fill: float) -> torch.Tensor:
            if pad:
                x = torch.cat([x, x.new_full((pad, *x.shape[1:]), fill)])
            return x.reshape(n_chunks, chunk, *x.shape[1:])

        # padding: decay 1 and no writes keeps the state unchanged through padded steps
        decay_k, decay_v = chunked(decay_k, 1.0), chunked(decay_v, 1.0)
        write_k, write_v, q = chunked(write_k, 0.0), chunked(write_v, 0.0), chunked(q, 0.0)
        pair_k = pairwise_decays(decay_k)  # (n, L, L+1, B, H, F)
        pair_v = pairwise_decays(decay_v)  # (n, L, L+1, B, H, d)

        # within-chunk gated attention: score[t, s] = sum_f G_k[t, s, f] (gamma k)_s,f q_t,f
        scores = torch.einsum("ntsbhf,nsbhf,ntbhf->ntsbh", pair_k[:, :, 1:], write_k, q)
        numerator = torch.einsum("ntsbhe,nsbhe,ntsbh->ntbhe", pair_v[:, :, 1:], write_v, scores)
        denominator = scores.sum(2)

        # what each chunk adds to (C, s) by its end, and how much it decays what came before
        last_k, last_v = pair_k[:, -1], pair_v[:, -1]  # (n, L+1, B, H, .)
        add_memory = torch.einsum("nsbhe,nsbhf->nbhef", last_v[:, 1:] * write_v, last_k[:, 1:] * write_k)
        add_normaliser = (last_k[:, 1:] * write_k).sum(1)
        carried_memory, carried_normaliser = [], []
        for c in range(n_chunks):  # a loop over chunks, not time steps
            carried_memory.append(memory)
            carried_normaliser.append(normaliser)
            memory = last_v[c, 0].unsqueeze(-1) * last_k[c, 0].unsqueeze(-2) * memory + add_memory[c]
            normaliser = torch.addcmul(add_normaliser[c], last_k[c, 0], normaliser)
        carried_memory_t = torch.stack(carried_memory)  # (n, B, H, d, F)
        carried_normaliser_t = torch.stack(carried_normaliser)  # (n, B, H, F)

        # contribution of the state carried into each chunk
        q_decayed = pair_k[:, :, 0] * q  # (n, L, B, H, F)
        numerator = numerator + pair_v[:, :, 0] * torch.einsum("nbhef,ntbhf->ntbhe", carried_memory_t, q_decayed)
        denominator = denominator + torch.einsum("nbhf,ntbhf->ntbh", carried_normaliser_t, q_decayed)
        a = numerator / (denominator.unsqueeze(-1) + NORMALISER_EPS)
        a = a.reshape(n_chunks * chunk, *a.shape[2:])[:seq_len]
        return a, memory, normaliser


class GaLiTe(GatedTransformerCell):
    """GaLiTe cell: exact gated linear attention, constant cost per step.

    State per env: ``n_layers * n_heads * (d_head * eta * d_head + eta * d_head)`` floats.

    :param input_dim: size of each input vector
    :param n_layers, d_model, n_heads, d_head, d_ffc, eta: sizes (paper's T-Maze defaults)
    :param chunk_len: chunk length of the multi-step (training) form; memory of a training step
        grows with it, the number of sequential chunk steps shrinks with it
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
        chunk_len: int = 8,
    ) -> None:
        check_positive_int("GaLiTe", n_heads=n_heads, d_head=d_head, eta=eta, chunk_len=chunk_len)
        self.n_heads, self.d_head, self.eta = n_heads, d_head, eta
        super().__init__(
            input_dim, n_layers, d_model, d_ffc, lambda: GaLiTeMixer(d_model, n_heads, d_head, eta, chunk_len)
        )
