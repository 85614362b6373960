"""``variant="paper"`` against the paper's equations, written here step by step in float64 numpy,
independently of the library's code (Pramanik et al., TMLR 2024; design.md, "GaLiTe", "AGaLiTe",
"Block"). Only the weights are shared: the oracle reads them from the cell's ``state_dict`` and
recomputes everything else, one env and one step at a time, with resets at episode starts.

    GaLiTe, per layer and head (x = LN of the layer's input):
      k = flatten(relu(W_k x) outer relu(W_p1 x)),  q likewise with W_q, W_p2
      v = W_v x,  beta = sigmoid(W_beta x),  gamma = flatten(sigmoid(W_g x) outer sigmoid(W_p3 x))
      C = ((1 - beta)(1 - gamma)^T) * C + (beta * v)(gamma * k)^T
      s = (1 - gamma) * s + gamma * k
      a = C q / (s . q + eps)
    AGaLiTe: C replaced by r pairs, n the step of the episode (1 at its first step):
      vt_j = (1 - beta) * vt_j + cos(omega_j n) beta * v
      kt_j = (1 - gamma) * kt_j + cos(omega_j n) gamma * k
      a = sum_j vt_j (kt_j . q) / (2 r (s . q) + eps),  omega = linspace(-pi, pi, r)
    Block: h = relu(W_e x_in); per layer h = g1(h, relu(attention(LN(h)))), h = g2(h, relu(MLP(LN(h))))
    GRU gate g(x, y): r = sig(W_r y + U_r x), z = sig(W_z y + U_z x - b), c = tanh(W_h y + U_h (r * x)),
      g = (1 - z) * x + z * c
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sb3_rtx.cells import make_cell
from sb3_rtx.cells.galite import NORMALISER_EPS

SIZES = dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3)
INPUT_DIM, T, B = 5, 24, 3


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def layer_norm(x, weight, bias, eps):
    mean = x.mean()
    variance = ((x - mean) ** 2).mean()
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def gru_gate(p, prefix, x, y):
    d = x.shape[0]
    from_y, from_x, reset_x = p[f"{prefix}.from_y.weight"], p[f"{prefix}.from_x.weight"], p[f"{prefix}.reset_x.weight"]
    W_r, W_z, W_h = from_y[:d], from_y[d : 2 * d], from_y[2 * d :]
    U_r, U_z = from_x[:d], from_x[d:]
    r = sigmoid(W_r @ y + U_r @ x)
    z = sigmoid(W_z @ y + U_z @ x - p[f"{prefix}.gate_bias"])
    c = np.tanh(W_h @ y + reset_x @ (r * x))
    return (1.0 - z) * x + z * c


class PaperCell:
    """One env's GaLiTe (``r=None``) or AGaLiTe, step by step, from a cell's weights."""

    def __init__(self, cell, r: int | None) -> None:
        self.p = {k: v.detach().double().numpy() for k, v in cell.state_dict().items()}
        self.ln_eps = cell.blocks[0].norm_attn.eps
        self.L, self.H, self.d, self.eta, self.r = cell.n_layers, cell.n_heads, cell.d_head, cell.eta, r
        self.omegas = None if r is None else np.linspace(-np.pi, np.pi, r)
        self.reset()

    def reset(self) -> None:
        F = self.eta * self.d
        self.n = 0
        if self.r is None:
            self.C = np.zeros((self.L, self.H, self.d, F))
        else:
            self.vt = np.zeros((self.L, self.H, self.r, self.d))
            self.kt = np.zeros((self.L, self.H, self.r, F))
        self.s = np.zeros((self.L, self.H, F))

    def head(self, layer: int, head: int, columns: np.ndarray) -> np.ndarray:
        d, eta = self.d, self.eta
        wk, wq, wv, wb, wg = (columns[i * d : (i + 1) * d] for i in range(5))
        p1, p2, p3 = (columns[5 * d + i * eta : 5 * d + (i + 1) * eta] for i in range(3))
        relu = lambda z: np.maximum(z, 0.0)  # noqa: E731
        k = np.outer(relu(wk), relu(p1)).ravel()
        q = np.outer(relu(wq), relu(p2)).ravel()
        v, beta = wv, sigmoid(wb)
        gamma = np.outer(sigmoid(wg), sigmoid(p3)).ravel()
        s = self.s[layer, head] = (1.0 - gamma) * self.s[layer, head] + gamma * k
        if self.r is None:
            C = self.C[layer, head] = np.outer(1.0 - beta, 1.0 - gamma) * self.C[layer, head] + np.outer(beta * v, gamma * k)
            return C @ q / (s @ q + NORMALISER_EPS)
        cosines = np.cos(self.omegas * self.n)
        for j in range(self.r):
            self.vt[layer, head, j] = (1.0 - beta) * self.vt[layer, head, j] + cosines[j] * beta * v
            self.kt[layer, head, j] = (1.0 - gamma) * self.kt[layer, head, j] + cosines[j] * gamma * k
        numerator = sum(self.vt[layer, head, j] * (self.kt[layer, head, j] @ q) for j in range(self.r))
        return numerator / (2 * self.r * (s @ q) + NORMALISER_EPS)

    def step(self, x: np.ndarray) -> np.ndarray:
        p = self.p
        self.n += 1
        h = np.maximum(p["embed.weight"] @ x + p["embed.bias"], 0.0)
        for layer in range(self.L):
            b = f"blocks.{layer}"
            y = layer_norm(h, p[f"{b}.norm_attn.weight"], p[f"{b}.norm_attn.bias"], self.ln_eps)
            projected = p[f"{b}.mixer.features.project.weight"] @ y + p[f"{b}.mixer.features.project.bias"]
            per_head = projected.reshape(self.H, -1)
            a = np.concatenate([self.head(layer, i, per_head[i]) for i in range(self.H)])
            attention = p[f"{b}.mixer.features.out.weight"] @ a + p[f"{b}.mixer.features.out.bias"]
            h = gru_gate(p, f"{b}.gate_attn", h, np.maximum(attention, 0.0))
            y = layer_norm(h, p[f"{b}.norm_mlp.weight"], p[f"{b}.norm_mlp.bias"], self.ln_eps)
            hidden = np.maximum(p[f"{b}.mlp.0.weight"] @ y + p[f"{b}.mlp.0.bias"], 0.0)
            mlp = p[f"{b}.mlp.2.weight"] @ hidden + p[f"{b}.mlp.2.bias"]
            h = gru_gate(p, f"{b}.gate_mlp", h, np.maximum(mlp, 0.0))
        return h


def oracle_outputs(cell, r, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    outputs = np.zeros((T, B, cell.output_dim))
    for b in range(B):
        env = PaperCell(cell, r)
        for t in range(T):
            if starts[t, b]:
                env.reset()
            outputs[t, b] = env.step(x[t, b])
    return outputs


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_paper_variant_matches_the_papers_equations_on_both_forms(name):
    torch.manual_seed(0)
    kwargs = dict(SIZES, r=3) if name == "agalite" else SIZES
    cell = make_cell(name, INPUT_DIM, **kwargs, variant="paper").double()
    with torch.no_grad():  # non-zero biases everywhere, so the gates' biases are checked too
        for parameter in cell.parameters():
            if parameter.dim() == 1:
                parameter.normal_(0.0, 0.3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, INPUT_DIM))
    starts = np.zeros((T, B))
    starts[0] = 1.0
    starts[9, 0] = starts[17, 0] = starts[4, 2] = 1.0  # episodes that end inside the sequence
    expected = oracle_outputs(cell, 3 if name == "agalite" else None, x, starts)

    xt, st = torch.from_numpy(x), torch.from_numpy(starts)
    with torch.no_grad():
        sequence, _ = cell(xt, None, st)  # the training form: the whole sequence at once
        state, stepped = None, []
        for t in range(T):  # the acting form: one step at a time, carrying the state
            y, state = cell(xt[t : t + 1], state, st[t : t + 1])
            stepped.append(y[0])
    np.testing.assert_allclose(sequence.numpy(), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(torch.stack(stepped).numpy(), expected, atol=1e-6, rtol=0)
    assert np.abs(expected).max() > 0.1  # the outputs are not trivially small
