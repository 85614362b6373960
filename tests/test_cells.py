"""Behaviour every cell must have: both forms agree, resets isolate episodes, gradients flow,
long episodes stay finite, the state has the documented size, and bad input fails clearly."""

from __future__ import annotations

import contextlib
import copy
import math
import pickle

import numpy as np
import pytest
import torch

from conftest import needs_compiler
from sb3_rtx.cells import CELLS, make_cell
from sb3_rtx.cells.input_statistics import RunningStandardiser
from sb3_rtx.cells.short_conv import ShortConvolution

INPUT_DIM = 5
# small sizes so the float64 checks are fast; heads * d_head != d_model on purpose
SMALL_AGALITE = dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, r=3)
SMALL_GTRXL = dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, memory_len=5)
SMALL = {
    "galite": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3),
    "agalite": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, r=3),
    "agalite-distinct": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, r=4, frequencies="distinct"),
    # the paper's exact design (sum normaliser, zero gate biases, reference frequencies)
    "agalite-paper": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, r=3, variant="paper"),
    "galite-paper": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, variant="paper"),
    # a selective write (its gate random in build, not the strength 1 it starts at)
    "agalite-write": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, r=3, write_gate="exp"),
    "galite-write": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, write_gate="exp"),
    "gtrxl": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, memory_len=5),
    # its first layer attends over the observations (a state tensor of another width)
    "gtrxl-observation": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, memory_len=5, memory_input="observation"),
    # their first layers read the observation and the stream side by side
    "agalite-both": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, eta=3, r=3, memory_input="both"),
    "gtrxl-both": dict(n_layers=2, d_model=16, n_heads=2, d_head=6, d_ffc=12, memory_len=5, memory_input="both"),
    # their first layers read the observation standardised by running statistics (set in build)
    "agalite-standardised": dict(SMALL_AGALITE, memory_input="standardised"),
    "gtrxl-standardised": dict(SMALL_GTRXL, memory_input="standardised"),
    "lstm": dict(hidden_size=12, n_layers=2),
}
VARIANTS = list(SMALL)


def build(variant: str, dtype=torch.float64, **overrides):
    """A small cell; its value convolutions' taps and skips, its write gates and its input statistics
    random, not the identity, zero, strength 1 and mean 0 variance 1 they start as, so that every
    test of the forms, resets and states checks them too."""
    torch.manual_seed(0)
    kwargs = {**SMALL[variant], **overrides}
    cell = make_cell(variant.split("-")[0], INPUT_DIM, **kwargs).to(dtype)
    with torch.no_grad():
        for module in cell.modules():
            if isinstance(module, ShortConvolution):
                module.weight.normal_()
            if isinstance(module, RunningStandardiser):
                module.update(torch.randn(50, INPUT_DIM, dtype=torch.float64) * 3 + 1)
        for name, parameter in cell.named_parameters():
            if name.endswith("value_skip") or ".write_gate." in name:
                parameter.normal_()
    return cell


def warm_state(cell, batch: int, steps: int = 7):
    """A realistic non-zero state: the state after running some random steps."""
    x = torch.randn(steps, batch, cell.input_dim, dtype=next(cell.parameters()).dtype)
    with torch.no_grad():
        _, state = cell(x, cell.initial_state(batch), None)
    return state


@contextlib.contextmanager
def reads_of(mixer):
    """The read (first output) of each call of ``mixer`` inside the ``with``, in order. The hook is
    bound to its own list (no closure over a loop variable) and removed on leaving."""
    reads = []
    handle = mixer.register_forward_hook(lambda _module, _args, out, reads=reads: reads.append(out[0]))
    try:
        yield reads
    finally:
        handle.remove()


def run_stepwise(cell, x, state, starts):
    outputs = []
    for t in range(x.shape[0]):
        y, state = cell(x[t : t + 1], state, starts[t : t + 1])
        outputs.append(y)
    return torch.cat(outputs), state


def reset_pattern(seq_len: int, batch: int, seed: int = 1) -> torch.Tensor:
    """Random resets plus the awkward cases: at t=0, on consecutive steps, on the last step, none."""
    gen = torch.Generator().manual_seed(seed)
    starts = torch.rand(seq_len, batch, generator=gen) < 0.15
    starts[0, 0] = True
    starts[5:8, 1] = True
    starts[-1, 2] = True
    starts[:, 3] = False
    return starts


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seq_len", [1, 2, 9, 33])
def test_stepping_equals_whole_sequence(variant, seq_len):
    cell = build(variant)
    batch = 4
    state = warm_state(cell, batch)
    x = torch.randn(seq_len, batch, INPUT_DIM, dtype=torch.float64)
    starts = reset_pattern(seq_len, batch)
    with torch.no_grad():
        y_seq, final_seq = cell(x, state, starts)
        y_step, final_step = run_stepwise(cell, x, state, starts)
    assert y_seq.shape == (seq_len, batch, cell.output_dim)
    # float64: the two forms are the same maths, so they agree far below float32 rounding
    assert (y_seq - y_step).abs().max().item() <= 1e-10
    for a, b in zip(final_seq, final_step, strict=True):
        assert (a - b).abs().max().item() <= 1e-10


@pytest.mark.parametrize("paths", ["cpu", "accelerator"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_form_gradients_equal_autograd_through_the_steps(variant, paths, request):
    """The training form's hand-written backwards (scans, chunked attention, value convolution,
    feature maps) give the gradients that plain autograd gives through the acting steps: of every
    parameter, the inputs and the incoming state, with resets inside the sequence; on the CPU's
    paths and on the accelerators' (fewest ops), both run here."""
    if paths == "accelerator":
        request.getfixturevalue("accelerator_paths")
    cell = build(variant)
    batch, seq_len = 4, 19
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(seq_len, batch, INPUT_DIM, dtype=torch.float64, generator=gen)
    starts = reset_pattern(seq_len, batch)
    out_weights = torch.randn(seq_len, batch, cell.output_dim, dtype=torch.float64, generator=gen)
    warm = warm_state(cell, batch)
    grads = []
    for form in (cell, lambda x, state, starts: run_stepwise(cell, x, state, starts)):
        cell.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_()
        state = tuple(s.clone().requires_grad_() for s in warm)
        y, final = form(inputs, state, starts)
        loss = (y * out_weights).sum() + sum(f.square().sum() for f in final if f.dtype.is_floating_point)
        loss.backward()
        grads.append([inputs.grad, *(s.grad for s in state), *(p.grad for p in cell.parameters())])
    for got, want in zip(*grads, strict=True):
        if want is None:  # a state entry nothing depends on (the AGaLiTe step counter)
            assert got is None or not got.abs().max()
            continue
        assert (got - want).abs().max().item() <= 1e-9 * (1.0 + want.abs().max().item())


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_forms_agree_at_default_size(variant):
    """The real (float32, paper-size) configuration: forms agree to float32 rounding, relative to the
    output's size (4 layers of chunked scans against 20 single steps: up to a few 1e-5 of it; the
    most, 3e-5, with AGaLiTe's "distinct" frequencies, whose weights of both signs cancel in the
    sums, and the value convolution's direct path open from the start)."""
    name = variant.split("-")[0]
    extra = {key: value for key, value in SMALL[variant].items() if key in ("frequencies", "variant")}
    torch.manual_seed(0)
    cell = make_cell(name, INPUT_DIM, **extra)
    x = torch.randn(20, 3, INPUT_DIM)
    starts = reset_pattern(20, 4)[:, :3]
    with torch.no_grad():
        state = warm_state(cell, 3)
        y_seq, _ = cell(x, state, starts)
        y_step, _ = run_stepwise(cell, x, state, starts)
    assert (y_seq - y_step).abs().max().item() <= 5e-5 * max(1.0, y_step.abs().max().item())


@pytest.mark.parametrize("variant", VARIANTS)
def test_forms_agree_with_saturated_gates(variant):
    """Huge inputs saturate every gate (decays at the floor): forms still agree, outputs finite."""
    cell = build(variant, dtype=torch.float32)
    x = 300.0 * torch.randn(24, 3, INPUT_DIM)
    starts = reset_pattern(24, 4)[:, :3]
    with torch.no_grad():
        y_seq, _ = cell(x, None, starts)
        y_step, _ = run_stepwise(cell, x, None, starts)
    assert torch.isfinite(y_seq).all()
    assert (y_seq - y_step).abs().max().item() <= 1e-3 * max(1.0, y_step.abs().max().item())


@pytest.mark.parametrize("variant", VARIANTS)
def test_reset_isolates_episodes(variant):
    cell = build(variant)
    seq_len, batch, start_at = 16, 3, 6
    x = torch.randn(seq_len, batch, INPUT_DIM, dtype=torch.float64)
    starts = torch.zeros(seq_len, batch, dtype=torch.bool)
    starts[start_at, 1] = True
    state = warm_state(cell, batch)
    with torch.no_grad():
        y, _ = cell(x, state, starts)
        # change everything env 1 saw before its episode start, including the state it came in with
        x2 = x.clone()
        x2[:start_at, 1] += torch.randn(start_at, INPUT_DIM, dtype=torch.float64)
        state2 = tuple(s.clone() for s in state)
        for s in state2:
            if s.dim() > 1:
                s[1] += torch.rand_like(s[1])
        y2, _ = cell(x2, state2, starts)
    assert (y2[start_at:, 1] - y[start_at:, 1]).abs().max().item() <= 1e-12
    assert (y2[:start_at, 1] - y[:start_at, 1]).abs().max().item() > 1e-6  # the change did matter before
    # other envs are untouched
    assert torch.equal(y2[:, [0, 2]], y[:, [0, 2]])


@pytest.mark.parametrize("variant", VARIANTS)
def test_episode_start_equals_fresh_initial_state(variant):
    """A start at t=0 makes any incoming state irrelevant: same as starting from initial_state."""
    cell = build(variant)
    x = torch.randn(10, 2, INPUT_DIM, dtype=torch.float64)
    starts = torch.zeros(10, 2, dtype=torch.bool)
    starts[0] = True
    with torch.no_grad():
        y_reset, _ = cell(x, warm_state(cell, 2), starts)
        y_fresh, _ = cell(x, cell.initial_state(2), None)
    assert (y_reset - y_fresh).abs().max().item() <= 1e-12


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_finite_and_reach_every_parameter(variant):
    cell = build(variant)
    x = torch.randn(12, 3, INPUT_DIM, dtype=torch.float64)
    starts = reset_pattern(12, 4)[:, :3]
    state = warm_state(cell, 3)
    y, final = cell(x, state, starts)
    loss = (y**2).sum() + sum((s**2).sum() for s in final if s.dim() > 1)
    loss.backward()
    for name, param in cell.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_the_incoming_state(variant):
    """Truncated BPTT: the loss must depend on the state a sequence starts from."""
    cell = build(variant)
    state = tuple(s.requires_grad_() for s in warm_state(cell, 2))
    y, _ = cell(torch.randn(6, 2, INPUT_DIM, dtype=torch.float64), state, None)
    y.sum().backward()
    grads = [s.grad for s in state if s.dim() > 1]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("variant", VARIANTS)
def test_hundred_thousand_step_episode_stays_finite(variant):
    torch.manual_seed(0)
    name = variant.split("-")[0]
    cell = make_cell(name, INPUT_DIM, **SMALL[variant])  # float32, the precision actually used
    state = cell.initial_state(2)
    # GTrXL attends over chunk + memory (quadratic in the chunk): smaller chunks keep it cheap
    chunk, total = (500 if name == "gtrxl" else 2000), 100_000
    with torch.no_grad():
        for _ in range(total // chunk):
            # strong inputs push gates and features to their extremes
            x = 5.0 * torch.randn(chunk, 2, INPUT_DIM)
            y, state = cell(x, state, None)
            assert torch.isfinite(y).all()
        assert all(torch.isfinite(s).all() for s in state)
        y, state = cell(torch.randn(1, 2, INPUT_DIM), state, None)  # the acting path after it
        assert torch.isfinite(y).all()


def value_conv_taps(kw: dict) -> int:
    return kw.get("value_conv", 1 if kw.get("variant") == "paper" else 4)


def distinct_key_memories(kw: dict) -> int:
    """The normaliser plus every oscillator whose weights cos(omega n) differ from it and from each other's."""
    r = kw["r"]
    kind = kw.get("frequencies", "reference" if kw.get("variant") == "paper" else "dc")
    omegas = {
        "reference": np.linspace(-np.pi, np.pi, r),
        "distinct": np.pi * np.arange(1, r + 1) / r,
        "dc": np.pi * np.arange(0, r) / r,
    }[kind]
    weights = np.cos(np.arange(4 * r)[:, None] * omegas).round(9).T  # a few periods, one row per oscillator
    return len({tuple(row) for row in weights} | {(1.0,) * 4 * r})


def expected_state_numel(name: str, kw: dict) -> int:
    """The state formulas of design.md, written out independently of the cells' code."""
    # + the value convolution's last (taps - 1) inputs per value channel, 3 in the default variant
    if name == "galite":
        d, eta_d = kw["d_head"], kw["eta"] * kw["d_head"]
        return kw["n_layers"] * kw["n_heads"] * (d * eta_d + eta_d + (value_conv_taps(kw) - 1) * d)
    if name == "agalite":
        # design.md's r (d + eta d) + eta d, less the key memories that another one equals (kt_j is s
        # where cos(omega_j n) is 1 at every step, and kt_j is kt_i where their cosines are equal)
        d, eta_d = kw["d_head"], kw["eta"] * kw["d_head"]
        conv = (value_conv_taps(kw) - 1) * d
        return kw["n_layers"] * kw["n_heads"] * (kw["r"] * d + distinct_key_memories(kw) * eta_d + conv) + 1  # + counter
    if name == "gtrxl":
        if kw.get("memory_input") in ("observation", "standardised"):  # the first layer keeps the observations
            return kw["memory_len"] * (INPUT_DIM + (kw["n_layers"] - 1) * kw["d_model"]) + 1
        if kw.get("memory_input") == "both":  # ... beside LN of the stream
            return kw["memory_len"] * (INPUT_DIM + kw["n_layers"] * kw["d_model"]) + 1
        return kw["n_layers"] * kw["memory_len"] * kw["d_model"] + 1  # + valid-slot count
    if name == "lstm":
        return 2 * kw["n_layers"] * kw["hidden_size"]
    raise AssertionError(name)


PAPER = dict(n_layers=4, d_model=128, n_heads=4, d_head=64, d_ffc=128, eta=8, r=2, memory_len=128, hidden_size=256)


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_numel_matches_design_formulas(variant):
    name = variant.split("-")[0]
    cell = build(variant)
    assert cell.state_numel == expected_state_numel(name, {**PAPER, **SMALL[variant]})
    assert cell.state_numel == sum(s[0].numel() for s in cell.initial_state(3))


def test_default_sizes_are_the_papers_tmaze_sizes():
    # the paper's state, and the default variant's 3 past values per value channel; AGaLiTe at r = 2
    # keeps two key memories per head, not three, in both variants (the paper's frequencies +-pi have
    # equal cosines; the default's first is 0, whose key memory is the normaliser)
    assert make_cell("galite", 4, variant="paper").state_numel == 4 * 4 * (64 * 512 + 512)
    assert make_cell("galite", 4).state_numel == 4 * 4 * (64 * 512 + 512 + 3 * 64)
    assert make_cell("agalite", 4, variant="paper").state_numel == 4 * 4 * (2 * 64 + 2 * 512) + 1
    agalite = make_cell("agalite", 4)
    assert agalite.state_numel == 4 * 4 * (2 * 64 + 2 * 512 + 3 * 64) + 1
    assert (agalite.n_layers, agalite.d_model, agalite.n_heads, agalite.d_head, agalite.d_ffc) == (4, 128, 4, 64, 128)
    assert (agalite.eta, agalite.r) == (8, 2)
    assert make_cell("gtrxl", 4).state_numel == 4 * 128 * 128 + 1
    assert make_cell("lstm", 4).state_numel == 2 * 256


@pytest.mark.parametrize("name", sorted(CELLS))
def test_initial_state_is_zeros_on_the_requested_device(name):
    cell = make_cell(name, INPUT_DIM).double()
    state = cell.initial_state(3, device="cpu")
    assert all(s.shape[0] == 3 and s.dtype == torch.float64 and s.device.type == "cpu" and not s.any() for s in state)
    # a device other than the parameters' (meta: shapes only, present on every machine) is honoured
    on_meta = cell.initial_state(2, device="meta")
    assert all(s.device.type == "meta" and s.shape[0] == 2 and s.dtype == torch.float64 for s in on_meta)
    assert all(s.device.type == "cpu" for s in cell.initial_state(2))  # default: the parameters' device


def test_agalite_reference_frequencies_duplicate_and_distinct_do_not():
    from sb3_rtx.cells.agalite import key_memory_rows, oscillator_frequencies

    steps = torch.arange(1, 50, dtype=torch.float64).unsqueeze(1)
    ref, _ = oscillator_frequencies(2, "reference")
    cos_ref = torch.cos(steps * ref)
    assert torch.allclose(cos_ref[:, 0], cos_ref[:, 1])  # the paper's r=2 terms are one term twice
    for r in (2, 4, 8):
        omegas, period = oscillator_frequencies(r, "distinct")
        cos = torch.cos(steps * omegas)
        assert torch.linalg.matrix_rank(cos).item() == r
        # the period used to wrap the counter really is a period of every cosine
        assert torch.allclose(torch.cos((steps + period) * omegas), cos, atol=1e-9)
    for r in (1, 2, 3, 8):
        omegas, period = oscillator_frequencies(r, "reference")
        assert torch.allclose(torch.cos((steps + period) * omegas), torch.cos(steps * omegas), atol=1e-9)
    # key memories kept: after the normaliser (row 0), one per distinct weight sequence
    assert key_memory_rows(*oscillator_frequencies(2, "reference")) == ((0,), (1, 1))
    assert key_memory_rows(*oscillator_frequencies(2, "dc")) == ((1,), (0, 1))  # cos(0 n) = 1: kt_0 is s
    assert key_memory_rows(*oscillator_frequencies(3, "reference")) == ((0,), (1, 0, 1))  # -pi, 0, pi
    assert key_memory_rows(*oscillator_frequencies(4, "distinct")) == ((0, 1, 2, 3), (1, 2, 3, 4))


@pytest.mark.parametrize("variant", ["agalite", "agalite-distinct", "agalite-paper"])
@pytest.mark.parametrize("seq_len", [1, 23])
def test_agalite_layer_equals_the_papers_recurrence_with_every_key_memory(variant, seq_len):
    """The cell keeps one key memory where several are equal; the paper's equations keep r + 1
    (r memories kt_j and the normaliser s). Written out step by step here, with every one of them."""
    from sb3_rtx.cells.galite import normalise

    cell = build(variant)
    mixer = cell.blocks[1].mixer  # reads the stream (d_model wide)
    batch, r = 3, cell.r
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(seq_len, batch, cell.d_model, generator=gen, dtype=torch.float64)
    starts = torch.zeros(seq_len, batch, dtype=torch.float64)
    starts[seq_len // 2, 0] = 1.0
    counter = torch.tensor([0.0, 5.0, 2.0], dtype=torch.float64)  # steps already taken in each env's episode
    layer_state = tuple(torch.zeros(batch, *shape, dtype=torch.float64) for shape in mixer.layer_state_shapes())
    got, _ = mixer(h, layer_state, cell.make_context((counter,), starts))

    features = mixer.features
    factors = features.factors(h[0] if seq_len == 1 else h)
    keep = (1.0 - starts[0]).view(-1, 1, 1) if seq_len == 1 else None
    factors, _ = features.convolve_values(factors, layer_state[2:], starts, keep)
    write_k, decay_k, q, write_v, decay_v = (x if seq_len > 1 else x.unsqueeze(0) for x in features.products(factors))
    omegas = torch.tensor(cell.omegas, dtype=torch.float64)
    heads, d, width = cell.n_heads, cell.d_head, cell.eta * cell.d_head
    vt = torch.zeros(batch, heads, r, d, dtype=torch.float64)
    kt = torch.zeros(batch, heads, r, width, dtype=torch.float64)
    s = torch.zeros(batch, heads, width, dtype=torch.float64)
    n = counter.clone()
    reads = []
    for t in range(seq_len):
        fresh = starts[t].bool()
        n = torch.where(fresh, 1.0, n + 1.0)
        alive = (~fresh).to(torch.float64).view(-1, 1, 1)
        weight = torch.cos(n[:, None] * omegas).view(batch, 1, r, 1)
        vt = alive.unsqueeze(-1) * decay_v[t].unsqueeze(2) * vt + weight * write_v[t].unsqueeze(2)
        kt = alive.unsqueeze(-1) * decay_k[t].unsqueeze(2) * kt + weight * write_k[t].unsqueeze(2)
        s = alive * decay_k[t] * s + write_k[t]
        numerator = (vt * (kt * q[t].unsqueeze(2)).sum(-1, keepdim=True)).sum(2)
        reads.append(normalise(numerator, mixer.divisor * (s * q[t]).sum(-1, keepdim=True), mixer.bounded))
    want = features.merge_heads(torch.stack(reads), factors[4] if seq_len > 1 else factors[4].unsqueeze(0))
    assert (got - want).abs().max() <= 1e-10


@pytest.mark.parametrize("seq_len", [1, 29])
def test_agalite_counter_restarts_with_each_episode_and_stays_small(seq_len):
    cell = build("agalite-distinct")  # period 8
    starts = torch.zeros(seq_len, 2, dtype=torch.bool)
    starts[seq_len // 2, 0] = True
    incoming = warm_state(cell, 2, steps=3)
    assert incoming[-1].tolist() == [3, 3]
    _, state = cell(torch.randn(seq_len, 2, INPUT_DIM, dtype=torch.float64), incoming, starts)
    counter = state[-1]
    assert counter[0].item() == (seq_len - seq_len // 2) % cell.period  # steps since its start
    assert counter[1].item() == (3 + seq_len) % cell.period
    assert 0 <= counter.min() and counter.max() < cell.period


@pytest.mark.parametrize("variant", ["agalite", "galite"])
def test_value_weight_is_what_makes_the_values(variant):
    """``GatedFeatures.value_weight`` (what the probes read the values' input selection from) is the
    projection's rows that make ``v``, in both forms: changing them changes ``v`` and nothing else."""
    features = build(variant).blocks[0].mixer.features
    h = torch.randn(5, 3, features.project.in_features, dtype=torch.float64)
    before = [features.factors(x) for x in (h, h[0])]
    with torch.no_grad():
        features.value_weight().mul_(2.0)
    for (wk, wq, p1, p2, v, beta, g, p3), x in zip(before, (h, h[0]), strict=True):
        after = features.factors(x)
        bias = features.value_bias()
        torch.testing.assert_close(after[4] - bias, 2 * (v - bias))
        for old, new in zip((wk, wq, p1, p2, beta, g, p3), (*after[:4], *after[5:]), strict=True):
            torch.testing.assert_close(new, old)


# ------------------------------------------------------------------ bad input


def test_unknown_cell_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown cell 'transformer'.*agalite, galite, gtrxl, lstm"):
        make_cell("transformer", 4)


def test_unknown_keyword_names_it_and_the_valid_ones():
    with pytest.raises(TypeError, match=r"'memory_len'.*accepts"):
        make_cell("agalite", 4, memory_len=3)


@pytest.mark.parametrize("bad", [0, -2, 2.5, "8"])
def test_non_positive_or_non_int_size_is_rejected(bad):
    with pytest.raises(ValueError, match="eta must be a positive int"):
        make_cell("galite", 4, eta=bad)


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf"), True, "0.1"])
def test_output_scale_must_be_a_finite_positive_number(bad):
    with pytest.raises(ValueError, match="output_scale must be a finite number > 0"):
        make_cell("agalite", 4, output_scale=bad)


@pytest.mark.parametrize("name", ["galite", "agalite", "gtrxl"])
def test_output_scale_multiplies_the_output_in_both_forms_and_leaves_the_state(name):
    """The fixed factor multiplies what the heads see, step by step and over a sequence alike; the
    memory's state is the unscaled cell's."""
    plain, scaled = build(name), build(name, output_scale=0.25)
    x = torch.randn(6, 3, INPUT_DIM, dtype=torch.float64)
    starts = torch.zeros(6, 3, dtype=torch.float64)
    starts[3, 1] = 1.0
    y, state = plain(x, None, starts)
    y_seq, state_seq = scaled(x, None, starts)
    torch.testing.assert_close(y_seq, 0.25 * y)
    for a, b in zip(state_seq, state, strict=True):
        torch.testing.assert_close(a, b)
    step_state, steps = None, []
    for t in range(6):
        y_t, step_state = scaled(x[t : t + 1], step_state, starts[t : t + 1])
        steps.append(y_t)
    torch.testing.assert_close(torch.cat(steps), y_seq)


def test_a_learned_output_scale_starts_at_output_scale_and_gets_a_gradient():
    plain, learned = build("agalite"), build("agalite", output_scale=0.25, learn_output_scale=True)
    assert plain.output_gain is None
    x = torch.randn(4, 2, INPUT_DIM, dtype=torch.float64)
    starts = torch.zeros(4, 2, dtype=torch.float64)
    y_learned, _ = learned(x, None, starts)
    torch.testing.assert_close(y_learned, 0.25 * plain(x, None, starts)[0])
    y_learned.pow(2).sum().backward()
    assert learned.output_gain.grad is not None and learned.output_gain.grad.abs().item() > 0
    with pytest.raises(ValueError, match="learn_output_scale must be a bool"):
        make_cell("agalite", 4, learn_output_scale="yes")


def test_unknown_frequency_set_is_rejected():
    with pytest.raises(ValueError, match="frequencies must be one of"):
        make_cell("agalite", 4, frequencies="random")


@pytest.mark.parametrize("name", sorted(CELLS))
def test_wrong_input_dimension_is_named(name):
    cell = build(name)
    with pytest.raises(ValueError, match=rf"wrong input dimension.*7 features.*input_dim={INPUT_DIM}"):
        cell(torch.zeros(3, 2, 7, dtype=torch.float64), None, None)
    with pytest.raises(ValueError, match=r"shape \(T, B, input_dim"):
        cell(torch.zeros(2, INPUT_DIM, dtype=torch.float64), None, None)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_episode_starts_of_wrong_shape_is_named(name):
    cell = build(name)
    x = torch.zeros(3, 2, INPUT_DIM, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"episode_starts must have shape \(T, B\) = \(3, 2\).*\(2, 3\)"):
        cell(x, None, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="episode_starts must have shape"):
        cell(x, None, torch.zeros(3))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_state_from_a_cell_of_another_size_is_rejected(name):
    cell = build(name)
    other_kwargs = dict(SMALL[name])
    size_key = "hidden_size" if name == "lstm" else "n_layers"
    other_kwargs[size_key] += 1
    other = make_cell(name, INPUT_DIM, **other_kwargs).double()
    x = torch.zeros(1, 2, INPUT_DIM, dtype=torch.float64)
    with pytest.raises(ValueError, match="state from a cell of another size"):
        cell(x, other.initial_state(2), None)
    with pytest.raises(ValueError, match="another number of envs"):
        cell(x, cell.initial_state(3), None)


def test_state_from_another_kind_of_cell_is_rejected():
    agalite, galite = build("agalite"), build("galite")
    with pytest.raises(ValueError, match="state from another cell"):
        agalite(torch.zeros(1, 2, INPUT_DIM, dtype=torch.float64), galite.initial_state(2), None)


def test_make_cell_is_case_insensitive_and_reports_sizes():
    cell = make_cell("AGaLiTe", 4, n_layers=1, d_model=8, n_heads=1, d_head=4, d_ffc=8, eta=2, r=1)
    assert cell.output_dim == 8 and "state_numel" in repr(cell)
    assert math.isfinite(cell(torch.zeros(2, 1, 4), None, None)[0].sum().item())


@pytest.mark.filterwarnings("error:.*compile_acting:RuntimeWarning")
@pytest.mark.parametrize("name", ["agalite", "gtrxl"])
def test_compiled_acting_step_equals_eager(name):
    """compile_acting: the same outputs and states step by step, resets included; T > 1 and
    gradient-enabled calls stay eager (and the compiled function never goes into a pickle)."""
    needs_compiler()
    eager = build(name, dtype=torch.float32)
    compiled = build(name, dtype=torch.float32).compile_acting()
    x = torch.randn(10, 4, INPUT_DIM)
    starts = reset_pattern(10, 4)
    with torch.no_grad():
        want, want_state = run_stepwise(eager, x, eager.initial_state(4), starts)
        got, got_state = run_stepwise(compiled, x, compiled.initial_state(4), starts)
    assert compiled.acting_compiled  # it really ran compiled (no fall back to eager)
    assert (got - want).abs().max() <= 1e-5
    for a, b in zip(got_state, want_state, strict=True):
        assert (a - b).abs().max() <= 1e-5
    y, _ = compiled(x, None, starts)  # training form, with gradients: eager
    y.sum().backward()
    assert copy.deepcopy(compiled).acting_compiled is False


def test_compile_failure_warns_and_acts_eagerly():
    import torch._inductor.config as inductor_config

    cell = build("agalite", dtype=torch.float32, n_layers=1).compile_acting()
    x = torch.randn(1, 2, INPUT_DIM)
    with inductor_config.patch({"cpp.cxx": ("no-such-compiler-sb3-rtx",), "force_disable_caches": True}):
        with pytest.warns(RuntimeWarning, match="compile_acting: torch.compile failed"):
            with torch.no_grad():
                y, _ = cell(x, None, None)
    assert not cell.acting_compiled
    with torch.no_grad():
        want, _ = build("agalite", dtype=torch.float32, n_layers=1)(x, None, None)
    assert torch.equal(y, want)


@pytest.mark.filterwarnings("error:.*compile_training:RuntimeWarning")
def test_compiled_training_equals_eager():
    """compile_training: AGaLiTe's training form gives the eager form's outputs, final state and
    parameter gradients (float32 rounding: the fused kernels sum in another order), resets inside
    the sequence included; acting stays eager; a deepcopy keeps the setting."""
    needs_compiler()
    eager = build("agalite", dtype=torch.float32)
    compiled = copy.deepcopy(eager).compile_training()
    x = torch.randn(19, 4, INPUT_DIM)
    starts = reset_pattern(19, 4)
    results = []
    for cell in (eager, compiled):
        y, state = cell(x, None, starts)
        (y.square().sum() + sum(s.square().sum() for s in state)).backward()
        results.append((y.detach(), [s.detach() for s in state], [p.grad for p in cell.parameters()]))
    assert compiled.training_compiled  # it really ran compiled (no fall back to eager)
    (want, want_state, want_grads), (got, got_state, got_grads) = results
    assert (got - want).abs().max() <= 1e-5
    for a, b in zip(got_state, want_state, strict=True):
        assert (a - b).abs().max() <= 1e-5 * (1 + b.abs().max())
    # float rounding moves them by up to ~4e-7 here; a wrong sign in one factor's gradient by ~3e-5
    for a, b in zip(got_grads, want_grads, strict=True):
        assert (a - b).abs().max() <= 3e-6 * (1 + b.abs().max())
    assert copy.deepcopy(compiled).training_compiled


def test_compile_training_failure_warns_and_trains_eagerly():
    """Where compiling fails (here: a C++ compiler that does not exist), a warning names it and the
    key side's kernels run their eager form: the same gradients as the eager cell's."""
    import torch._dynamo
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()  # the kernels are shared in the process: make this call compile them anew
    cell = build("agalite", dtype=torch.float32, n_layers=1).compile_training()
    eager = build("agalite", dtype=torch.float32, n_layers=1)
    x = torch.randn(12, 2, INPUT_DIM)
    with inductor_config.patch({"cpp.cxx": ("no-such-compiler-sb3-rtx",), "force_disable_caches": True}):
        with pytest.warns(RuntimeWarning, match="compile_training: torch.compile failed"):
            y, _ = cell(x, None, None)
            y.sum().backward()
    assert not cell.training_compiled
    want, _ = eager(x, None, None)
    want.sum().backward()
    assert (y - want).abs().max() <= 1e-5
    for a, b in zip(cell.parameters(), eager.parameters(), strict=True):
        assert (a.grad - b.grad).abs().max() <= 1e-4 * (1 + b.grad.abs().max())
    torch._dynamo.reset()
    cell.compile_training()  # tries again: the flag is back
    assert cell.training_compiled


@pytest.mark.parametrize("name", ["galite", "gtrxl", "lstm"])
def test_compile_training_is_agalites_only(name):
    with pytest.raises(ValueError, match=r"has no compiled training form: compile_training is for AGaLiTe"):
        build(name).compile_training()
    assert not build(name).compile_training(False).training_compiled


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_paper_variant_is_the_papers_design_and_default_differs(name):
    """variant="paper" keeps the paper's equations and initialisation; the default changes exactly
    the normaliser, the gate biases, the feature map, the read norm and how the block adds the read
    (AGaLiTe also its frequencies), and each can be set alone. (That the paper's normaliser, with
    its tiny eps, blows the query's gradient up: test_bounded_normaliser_bounds_the_query_gradient.)"""
    paper = make_cell(name, INPUT_DIM, **SMALL[name], variant="paper")
    default = make_cell(name, INPUT_DIM, **SMALL[name])
    fields = ("normaliser", "gate_init", "feature_map", "read_norm", "read_merge", "memory_input", "value_conv")
    assert tuple(getattr(paper, f) for f in fields) == ("sum", "zero", "relu", "none", "gated", "stream", 1)
    # AGaLiTe's default keeps one head long and spreads the others' spans, GaLiTe's every head long;
    # AGaLiTe's first memory reads the observation scaled by its running statistics, GaLiTe's as it is
    gate_init = "long_first" if name == "agalite" else "long"
    memory_input = "scaled" if name == "agalite" else "observation"
    expected = ("sum", gate_init, "softplus", "rms", "residual", memory_input, 4)
    assert tuple(getattr(default, f) for f in fields) == expected
    assert torch.count_nonzero(paper.blocks[0].mixer.features.project.bias) == 0
    bias = default.blocks[0].mixer.features.project.bias.view(2, 5 * 6 + 3 * 3)
    # beta, per head (2 heads of 6): AGaLiTe's second head spread over 4-256 steps
    spread = -torch.log(torch.logspace(math.log10(4), math.log10(256), 6, dtype=torch.float64) - 1).float()
    value_bias = torch.stack([torch.full((6,), -6.0), spread if name == "agalite" else torch.full((6,), -6.0)])
    assert torch.allclose(bias[:, 18:24], value_bias, atol=1e-5)  # beta
    assert torch.all(bias[:, 24:30] == -3.0) and torch.all(bias[:, 36:] == -3.0)  # g, p3
    assert torch.all(bias[:, :18] == 0) and torch.all(bias[:, 30:36] == 0)  # k, q, v, p1, p2
    mixed = make_cell(name, INPUT_DIM, **SMALL[name], variant="paper", normaliser="bounded")
    assert (mixed.normaliser, mixed.gate_init, mixed.feature_map) == ("bounded", "zero", "relu")
    mixed = make_cell(name, INPUT_DIM, **SMALL[name], variant="paper", feature_map="softplus", read_norm="rms")
    assert (mixed.normaliser, mixed.feature_map, mixed.read_norm) == ("sum", "softplus", "rms")
    if name == "agalite":
        assert paper.frequency_set == "reference" and default.frequency_set != "reference"


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_memory_projections_start_with_each_variants_gain(name):
    """The paper's memory projections start orthogonal with gain sqrt 2 in every layer. The default's
    first layer, which reads the observation (AGaLiTe's scaled), starts at 0.3, and so do its layers that read the stream
    (every default was measured so); an explicit ``memory_input="stream"`` keeps the variant's gain."""

    def gains(cell):
        return [torch.linalg.svdvals(block.mixer.features.project.weight).tolist() for block in cell.blocks]

    for cell, want in (
        (make_cell(name, INPUT_DIM, **SMALL[name], variant="paper"), math.sqrt(2)),
        (make_cell(name, INPUT_DIM, **SMALL[name]), 0.3),
        (make_cell(name, INPUT_DIM, **SMALL[name], memory_input="stream"), 0.3),
        (make_cell(name, INPUT_DIM, **SMALL[name], variant="paper", memory_input="observation"), None),
    ):
        got = gains(cell)
        first, later = (0.3, math.sqrt(2)) if want is None else (want, want)
        assert np.allclose(got[0], first) and all(np.allclose(values, later) for values in got[1:])


def test_gtrxl_reading_the_observation_attends_over_the_observations():
    """With ``memory_input="observation"`` GTrXL's first layer keeps the last ``memory_len``
    observations themselves (the state tensor after the stacked layers'), its projections of them start
    at gain 0.3, and the other layers still keep the normed stream; the paper's GTrXL is the default."""
    assert make_cell("gtrxl", INPUT_DIM).memory_input == "stream"
    cell = build("gtrxl-observation")
    memory_len, d_model = SMALL["gtrxl"]["memory_len"], SMALL["gtrxl"]["d_model"]
    assert cell.state_shapes() == ((1, memory_len, d_model), (memory_len, INPUT_DIM), ())
    x = torch.randn(9, 3, INPUT_DIM, dtype=torch.float64)
    with torch.no_grad():
        _, (_stream, observations, valid) = cell(x, None, None)
    assert torch.equal(observations, x[-memory_len:].transpose(0, 1))
    assert torch.equal(valid, torch.full((3,), float(memory_len), dtype=torch.float64))
    first = cell.blocks[0].mixer
    assert np.allclose(torch.linalg.svdvals(first.key_value.weight).tolist(), 0.3)
    assert np.allclose(torch.linalg.svdvals(cell.blocks[1].mixer.key_value.weight).tolist(), math.sqrt(2))
    with pytest.raises(
        ValueError,
        match=r"GTrXL: memory_input must be one of \('stream', 'observation', 'both', 'standardised', 'scaled'\), got 'obs'",
    ):
        make_cell("gtrxl", INPUT_DIM, memory_input="obs")


def test_gtrxl_value_gain_starts_the_values_alone_and_is_recorded():
    """``value_gain`` starts every layer's value rows orthogonal at that gain and leaves the queries and
    keys as the cell without it starts them; it is recorded only when given, and must be positive."""
    kwargs = dict(SMALL["gtrxl"], memory_input="observation")
    cells = []
    for extra in ({}, dict(value_gain=math.sqrt(2))):
        torch.manual_seed(0)
        cells.append(make_cell("gtrxl", INPUT_DIM, **kwargs, **extra))
    plain, gained = cells
    values = SMALL["gtrxl"]["n_heads"] * SMALL["gtrxl"]["d_head"]
    for block in gained.blocks:
        assert np.allclose(torch.linalg.svdvals(block.mixer.key_value.weight[values:]).tolist(), math.sqrt(2))
    first_plain, first_gained = plain.blocks[0].mixer, gained.blocks[0].mixer
    assert torch.linalg.svdvals(first_plain.key_value.weight[values:]).max() < 0.31  # 0.3 spread over K and V
    assert torch.equal(first_plain.query.weight, first_gained.query.weight)
    assert torch.equal(first_plain.key_value.weight[:values], first_gained.key_value.weight[:values])
    assert "value_gain" not in plain.recorded_choices()
    assert gained.recorded_choices() == {"memory_input": "observation", "value_gain": math.sqrt(2)}
    with pytest.raises(ValueError, match=r"GTrXL: value_gain must be a finite number > 0, got -1"):
        make_cell("gtrxl", INPUT_DIM, value_gain=-1)


def test_gtrxl_query_key_gain_starts_the_queries_and_keys_alone():
    """``query_key_gain`` starts every layer's query and key rows orthogonal at that gain and leaves the
    values at the projection's own gain; recorded with the other gains given."""
    values = SMALL["gtrxl"]["n_heads"] * SMALL["gtrxl"]["d_head"]
    cell = make_cell("gtrxl", INPUT_DIM, **SMALL["gtrxl"], memory_input="observation", query_key_gain=2.0, value_gain=0.5)
    for block in cell.blocks:
        mixer = block.mixer
        assert np.allclose(torch.linalg.svdvals(mixer.query.weight).tolist(), 2.0)
        assert np.allclose(torch.linalg.svdvals(mixer.key_value.weight[:values]).tolist(), 2.0)
        assert np.allclose(torch.linalg.svdvals(mixer.key_value.weight[values:]).tolist(), 0.5)
    assert cell.recorded_choices() == {"memory_input": "observation", "value_gain": 0.5, "query_key_gain": 2.0}
    with pytest.raises(ValueError, match=r"GTrXL: query_key_gain must be a finite number > 0, got 0"):
        make_cell("gtrxl", INPUT_DIM, query_key_gain=0)


@pytest.mark.parametrize("frequencies, r, power", [("dc", 2, 1.5), ("dc", 1, 1.0), ("dc", 4, 2.5), ("reference", 2, 2.0),
                                                    ("distinct", 2, 1.5)])  # fmt: skip
def test_power_read_scale_is_the_oscillators_mean_power_and_variants_keep_2r(frequencies, r, power):
    kwargs = dict(SMALL["agalite"], r=r, frequencies=frequencies)
    cell = make_cell("agalite", INPUT_DIM, **kwargs, read_scale="power")
    assert cell.blocks[0].mixer.divisor == pytest.approx(power, abs=1e-12)
    for variant in ("default", "paper"):
        built = make_cell("agalite", INPUT_DIM, **kwargs, variant=variant)
        assert (built.read_scale, built.blocks[0].mixer.divisor) == ("2r", 2 * r)


def query_gradient_norms(name: str, **cell_kwargs) -> dict[str, float]:
    """Per normaliser, the norm of the projection's gradient when the query's projections are
    shrunk 1e4-fold, so that relu query features are near zero at every step (same input and
    weights for both normalisers)."""
    norms = {}
    for normaliser in ("sum", "bounded"):
        torch.manual_seed(0)
        cell = make_cell(name, INPUT_DIM, **SMALL[name], **cell_kwargs, normaliser=normaliser).double()
        x = torch.randn(6, 2, INPUT_DIM, dtype=torch.float64)
        mixer = cell.blocks[0].mixer
        with torch.no_grad():  # W_q (columns 6-12 of each head) and W_p2 (33-36)
            columns = mixer.features.project.weight.view(2, 5 * 6 + 3 * 3, -1)
            columns[:, 6:12] *= 1e-4
            columns[:, 33:36] *= 1e-4
        y, _ = cell(x, None, None)
        y.sum().backward()
        norms[normaliser] = mixer.features.project.weight.grad.norm().item()
    return norms


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_bounded_normaliser_bounds_the_query_gradient(name):
    """A query with near-zero features: the paper's 1 / (s . q + eps) gives a gradient of order
    1 / (s . q) (the cause of the exploding gradients under PPO); the bounded form does not. (With
    the paper's relu feature map, where a shrunk projection gives near-zero features.)"""
    norms = query_gradient_norms(name, variant="paper")
    assert norms["sum"] > 1e3 * norms["bounded"]
    assert norms["bounded"] < 1e2


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_default_features_keep_the_papers_normaliser_gradient_bounded(name):
    """The default's softplus features keep s . q away from 0, so the query that made the paper's
    relu form explode (previous test) leaves the paper's 1 / (s . q + eps) with a small gradient; the
    bounded normaliser's floor, under which slow gates keep s . q at the start of an episode, shrinks
    the read and the gradient that reaches the memory instead. (Without the read norm, which divides
    the normaliser out: next test; and with the value convolution's direct path closed, the identity
    start: the open path of AGaLiTe's default start adds the values' own gradient to the
    projection's, which is not the normaliser's.)"""
    norms = query_gradient_norms(name, read_norm="none", value_conv_init="identity")
    assert norms["sum"] < 10.0  # the paper's relu form: over 1e3 times the bounded one's
    # measured 3-20x: s . q under the floor of 1 leaves the bounded read (and its gradient) small
    assert norms["bounded"] < norms["sum"] / 2


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_read_norm_gives_each_head_a_unit_scale_read_whatever_the_write_scale(name, monkeypatch):
    """``read_norm="rms"`` (the default): each head's read reaches the output projection at unit root
    mean square, so the memory's share of the block output no longer shrinks with the write gate
    (values are written scaled by beta), and the per-head normaliser ``s . q`` divides out (any
    normaliser computes the same); ``"none"``, the paper's, scales with the values. (Exactly so
    without the norm's eps, which this test sets to 0. Gates at -3, ``beta`` about 0.05: with the
    default long gates, ``beta`` about 0.0025, the paper's read is too small to move the output by
    the tolerance at all, which is the drowning the norm removes. The value convolution starts from
    the identity, its direct path closed: an open path adds the values themselves after the norm.)"""
    monkeypatch.setattr("sb3_rtx.cells.galite.READ_NORM_EPS", 0.0)
    torch.manual_seed(0)
    x = torch.randn(7, 3, INPUT_DIM, dtype=torch.float64)
    d, n_heads = SMALL[name]["d_head"], SMALL[name]["n_heads"]
    outputs = {}
    for read_norm in ("rms", "none"):
        for normaliser in ("sum", "bounded"):
            for value_scale in (1.0, 0.1):
                torch.manual_seed(1)
                cell = make_cell(
                    name,
                    INPUT_DIM,
                    **SMALL[name],
                    read_norm=read_norm,
                    normaliser=normaliser,
                    gate_init="slower",
                    value_conv_init="identity",
                ).double()
                with torch.no_grad():  # W_v
                    cell.blocks[0].mixer.features.value_weight().mul_(value_scale)
                outputs[read_norm, normaliser, value_scale] = cell(x, None, None)[0]
        # each head's read on its own: scaling one head leaves the projection's input unchanged with "rms"
        features = cell.blocks[0].mixer.features
        read = torch.randn(7, 3, n_heads, d, dtype=torch.float64)
        scaled = read * torch.tensor([0.01, 5.0], dtype=torch.float64)[:n_heads, None]
        unchanged = torch.allclose(features.merge_heads(scaled), features.merge_heads(read), atol=1e-9)
        assert unchanged == (read_norm == "rms")
    reference = outputs["rms", "sum", 1.0]
    for key in [("rms", "sum", 0.1), ("rms", "bounded", 1.0), ("rms", "bounded", 0.1)]:
        assert torch.allclose(outputs[key], reference, atol=1e-9), key
    assert not torch.allclose(outputs["none", "sum", 0.1], outputs["none", "sum", 1.0], atol=1e-3)
    assert not torch.allclose(outputs["none", "sum", 1.0], reference, atol=1e-3)


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_softplus_features_keep_a_gradient_where_relu_features_are_dead(name):
    """Keys and queries whose projections are negative (a cue the query cannot see): relu features
    are exactly zero and so is every gradient that could make them visible, so the memory can never
    learn to read that input; softplus features are small but keep a gradient (the cause of the
    partial solutions under PPO, docs "Learning memory")."""
    torch.manual_seed(0)
    grads = {}
    for feature_map in ("relu", "softplus"):
        cell = make_cell(name, INPUT_DIM, **SMALL[name], variant="paper", feature_map=feature_map).double()
        mixer = cell.blocks[0].mixer
        with torch.no_grad():  # W_k, W_q (d = 6 columns each) and W_p1, W_p2 (eta = 3 each) of both heads
            bias = mixer.features.project.bias.view(2, 5 * 6 + 3 * 3)
            bias[:, :12] = -50.0
            bias[:, 30:36] = -50.0
        y, _ = cell(torch.randn(6, 2, INPUT_DIM, dtype=torch.float64), None, None)
        y.sum().backward()
        grad = mixer.features.project.weight.grad.view(2, 5 * 6 + 3 * 3, -1)
        grads[feature_map] = torch.cat([grad[:, :12], grad[:, 30:36]], dim=1).abs().max().item()
    assert grads["relu"] == 0.0
    assert grads["softplus"] > 0.0


@pytest.mark.parametrize("name", ["galite", "agalite"])
@pytest.mark.parametrize(
    "gate_init, beta_span, key_bias",
    [
        ("zero", (2, 2), 0.0),
        ("slow", (1 + math.exp(2), 1 + math.exp(2)), -2.0),
        ("slower", (1 + math.exp(3), 1 + math.exp(3)), -3.0),
        ("long", (1 + math.exp(6), 1 + math.exp(6)), -3.0),
        ("multiscale", (4, 256), -3.0),
    ],
)
def test_gate_init_sets_each_heads_memory_spans(name, gate_init, beta_span, key_bias):
    """``1 / beta`` at initialisation (the value rows' memory span): one value per option, or log-spaced
    from the shortest to the longest over each head's channels ("multiscale"); ``W_g``/``W_p3`` biases
    constant; every other projection's bias zero."""
    cell = make_cell(name, INPUT_DIM, **SMALL[name], gate_init=gate_init)
    d, eta = SMALL[name]["d_head"], cell.blocks[0].mixer.features.eta
    bias = cell.blocks[0].mixer.features.project.bias.detach().double().view(SMALL[name]["n_heads"], 5 * d + 3 * eta)
    spans = 1 / torch.sigmoid(bias[:, 3 * d : 4 * d])
    assert torch.allclose(spans[:, 0], torch.tensor(float(beta_span[0]), dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(spans[:, -1], torch.tensor(float(beta_span[1]), dtype=torch.float64), rtol=1e-5)
    ratios = spans[:, 1:] / spans[:, :-1]
    assert torch.allclose(ratios, ratios[0, 0].expand_as(ratios), rtol=1e-4)  # log-spaced (or constant)
    assert torch.all(bias[:, 4 * d : 5 * d] == key_bias) and torch.all(bias[:, 5 * d + 2 * eta :] == key_bias)
    assert torch.all(bias[:, : 3 * d] == 0) and torch.all(bias[:, 5 * d : 5 * d + 2 * eta] == 0)


@pytest.mark.parametrize("name", ["galite", "agalite"])
@pytest.mark.parametrize("n_heads", [1, 4])
def test_per_head_gate_init_gives_each_head_its_own_span(name, n_heads):
    """gate_init="per_head": ``1 / beta`` is the same over a head's value channels, and log-spaced
    across heads from "long"'s span (first head; a single head gets it) to "slower"'s (last head);
    the key gates at -3 in every head, as with "long"."""
    kwargs = dict(SMALL[name], n_heads=n_heads)
    cell = make_cell(name, INPUT_DIM, **kwargs, gate_init="per_head")
    d, eta = kwargs["d_head"], cell.blocks[0].mixer.features.eta
    bias = cell.blocks[0].mixer.features.project.bias.detach().double().view(n_heads, 5 * d + 3 * eta)
    spans = 1 / torch.sigmoid(bias[:, 3 * d : 4 * d])
    assert torch.allclose(spans, spans[:, :1].expand_as(spans))  # one span per head
    head_spans = spans[:, 0]
    assert head_spans[0].item() == pytest.approx(1 + math.exp(6), rel=1e-5)
    if n_heads > 1:
        assert head_spans[-1].item() == pytest.approx(1 + math.exp(3), rel=1e-5)
        ratios = head_spans[1:] / head_spans[:-1]
        assert torch.allclose(ratios, ratios[:1].expand_as(ratios), rtol=1e-4) and ratios[0] < 1
    assert torch.all(bias[:, 4 * d : 5 * d] == -3.0) and torch.all(bias[:, 5 * d + 2 * eta :] == -3.0)


@pytest.mark.parametrize("name", ["galite", "agalite"])
@pytest.mark.parametrize("n_heads", [1, 4])
def test_long_first_gate_init_keeps_one_long_head_and_spreads_the_others(name, n_heads):
    """gate_init="long_first": the first head's value spans all "long"'s (about 400 steps; a single
    head gets only that), every other head's log-spaced over 4-256 steps across its channels, as
    "multiscale"'s; the key gates at -3 in every head."""
    kwargs = dict(SMALL[name], n_heads=n_heads)
    cell = make_cell(name, INPUT_DIM, **kwargs, gate_init="long_first")
    d, eta = kwargs["d_head"], cell.blocks[0].mixer.features.eta
    bias = cell.blocks[0].mixer.features.project.bias.detach().double().view(n_heads, 5 * d + 3 * eta)
    spans = 1 / torch.sigmoid(bias[:, 3 * d : 4 * d])
    assert torch.allclose(spans[0], torch.tensor(1 + math.exp(6), dtype=torch.float64), rtol=1e-5)
    expected = torch.logspace(math.log10(4), math.log10(256), d, dtype=torch.float64)
    for head in range(1, n_heads):
        assert torch.allclose(spans[head], expected, rtol=1e-4)
    assert torch.all(bias[:, 4 * d : 5 * d] == -3.0) and torch.all(bias[:, 5 * d + 2 * eta :] == -3.0)


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_residual_read_adds_the_mixers_read_to_the_stream_unchanged(name):
    """``read_merge="residual"``: the attention sub-layer is ``x + read`` (no GRU gate, no relu),
    so whatever the read carries reaches the stream; ``"gated"`` (the paper's) passes it through
    GTrXL's gate. Checked with the MLP sub-layer made the identity (its gate shut)."""
    x = torch.randn(6, 3, INPUT_DIM, dtype=torch.float64)
    for read_merge in ("residual", "gated"):
        cell = build(name, read_merge=read_merge, n_layers=1)
        block = cell.blocks[0]
        assert (block.gate_attn is None) == (read_merge == "residual")
        with torch.no_grad(), reads_of(block.mixer) as reads:
            block.gate_mlp.gate_bias.fill_(1e4)  # z = 0: the MLP sub-layer passes its input through
            output, _ = cell(x, None, None)
            stream = torch.relu(torch.nn.functional.linear(x, cell.embed.weight, cell.embed.bias))
        (read,) = reads  # this cell's one call of its mixer
        merged = torch.allclose(output, stream + read)
        assert merged == (read_merge == "residual")


def test_unknown_variant_or_choice_is_named():
    with pytest.raises(ValueError, match="variant must be one of \\('default', 'paper'\\), got 'fast'"):
        make_cell("agalite", 4, variant="fast")
    with pytest.raises(ValueError, match="normaliser must be one of"):
        make_cell("galite", 4, normaliser="rms")
    with pytest.raises(
        ValueError,
        match=r"gate_init must be one of \('zero', 'slow', 'slower', 'long', 'multiscale', 'per_head', 'long_first'\)",
    ):
        make_cell("agalite", 4, gate_init="chrono")
    with pytest.raises(ValueError, match=r"feature_map must be one of \('relu', 'softplus'\), got 'elu'"):
        make_cell("galite", 4, feature_map="elu")
    with pytest.raises(ValueError, match=r"read_norm must be one of \('rms', 'none'\), got 'layer'"):
        make_cell("galite", 4, read_norm="layer")
    with pytest.raises(ValueError, match=r"read_merge must be one of \('gated', 'residual'\), got 'sum'"):
        make_cell("agalite", 4, read_merge="sum")
    with pytest.raises(ValueError, match=r"read_scale must be one of \('2r', 'power'\), got 'unit'"):
        make_cell("agalite", 4, read_scale="unit")
    with pytest.raises(
        ValueError,
        match=r"memory_input must be one of \('stream', 'observation', 'both', 'standardised', 'scaled'\), got 'raw'",
    ):
        make_cell("galite", 4, memory_input="raw")
    for bad in (0, "4", True, 2.0):
        with pytest.raises(ValueError, match=rf"value_conv must be an int >= 1 \(taps; 1 = no convolution\), got {bad!r}"):
            make_cell("agalite", 4, value_conv=bad)


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_first_layer_memory_reads_the_observation_and_later_layers_the_stream(name):
    """``memory_input="observation"`` (GaLiTe's default): the first block's memory projects the cell's
    input itself, so what it reads does not depend on the embedding (zeroing the embedding leaves
    the first read unchanged), while with ``"stream"`` (the paper's) it reads ``LN(embedding)`` and
    changes; with ``"both"`` it reads ``[observation, LN(embedding)]`` and changes too; later layers
    read the stream either way."""
    x = torch.randn(6, 3, INPUT_DIM, dtype=torch.float64)
    widths = {"observation": INPUT_DIM, "stream": SMALL[name]["d_model"], "both": INPUT_DIM + SMALL[name]["d_model"]}
    for memory_input, width in widths.items():
        cell = build(name, memory_input=memory_input)  # 2 layers
        first, second = cell.blocks[0], cell.blocks[1]
        reads_observation = memory_input == "observation"
        assert first.mixer.features.project.in_features == width
        assert (first.norm_attn is None) == reads_observation
        assert second.norm_attn is not None and second.mixer.features.project.in_features == cell.d_model
        with torch.no_grad(), reads_of(first.mixer) as reads:
            cell(x, None, None)
            cell.embed.weight.zero_()
            cell.embed.bias.fill_(0.5)
            cell(x, None, None)
        assert len(reads) == 2 and torch.allclose(reads[0], reads[1]) == reads_observation


@pytest.mark.parametrize("name", ["agalite", "gtrxl"])
def test_memory_input_both_reads_the_observation_then_the_normed_stream(name):
    """``memory_input="both"``: the first mixer's input is the observation and ``LN`` of the embedded
    stream, concatenated in that order (the same tensors the other two choices read alone)."""
    x = torch.randn(5, 2, INPUT_DIM, dtype=torch.float64)
    cell = build(f"{name}-both")
    first = cell.blocks[0]
    inputs = []
    handle = first.mixer.register_forward_pre_hook(lambda _module, args: inputs.append(args[0]))
    try:
        with torch.no_grad():
            cell(x, None, None)
    finally:
        handle.remove()
    (read,) = inputs
    norm = first.norm_attn
    normed_stream = torch.nn.functional.layer_norm(torch.relu(cell.embed(x)), (cell.d_model,), norm.weight, norm.bias)
    expected = torch.cat([x, normed_stream], -1)
    torch.testing.assert_close(read, expected)


@pytest.mark.parametrize("memory_input", ["standardised", "scaled"])
@pytest.mark.parametrize("name", ["agalite", "gtrxl"])
def test_memory_input_standardised_reads_each_dimension_by_its_running_statistics(name, memory_input):
    """``memory_input="standardised"``: a fresh cell reads its input as it is (mean 0, variance 1, so
    it computes what ``"observation"`` computes with the same weights); after updates the first mixer
    reads ``clamp((x - mean) / sqrt(var + 1e-8), -10, 10)`` per dimension, with the statistics of
    every input merged so far (the same as of their concatenation); ``forward`` never updates them.
    ``"scaled"``: the same statistics, and the read ``clamp(x / sqrt(var + mean^2 + 1e-8), -10, 10)``."""
    torch.manual_seed(0)
    fresh = make_cell(name, INPUT_DIM, **{**SMALL[f"{name}-standardised"], "memory_input": memory_input}).double()
    plain = make_cell(name, INPUT_DIM, **{**SMALL[f"{name}-standardised"], "memory_input": "observation"}).double()
    plain.load_state_dict({k: v for k, v in fresh.state_dict().items() if not k.startswith("input_standardiser.")})
    x = torch.randn(5, 2, INPUT_DIM, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, None, None)[0], plain(x, None, None)[0])

    batches = [torch.randn(40, INPUT_DIM, dtype=torch.float64) * scale + shift for scale, shift in ((2, 1), (0.5, -3), (1, 0))]
    for batch in batches:
        fresh.update_input_statistics(batch)
    everything = torch.cat(batches)
    mean, var = everything.mean(0), everything.var(0, unbiased=False)
    standardiser = fresh.input_standardiser
    torch.testing.assert_close(standardiser.mean.double(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(standardiser.var.double(), var, rtol=1e-5, atol=1e-6)
    assert int(standardiser.count) == 120
    big = x.clone()
    big[0, 0, 0] = 1e6  # clipped at 10
    inputs = []
    handle = fresh.blocks[0].mixer.register_forward_pre_hook(lambda _module, args: inputs.append(args[0]))
    try:
        with torch.no_grad():
            fresh(big, None, None)
    finally:
        handle.remove()
    mean_, var_ = standardiser.mean.double(), standardiser.var.double()
    if memory_input == "scaled":
        expected = torch.clamp(big / torch.sqrt(var_ + mean_**2 + 1e-8), -10, 10)
    else:
        expected = torch.clamp((big - mean_) / torch.sqrt(var_ + 1e-8), -10, 10)
    torch.testing.assert_close(inputs[0], expected)
    assert inputs[0][0, 0, 0] == 10
    assert int(standardiser.count) == 120  # forward did not update
    with pytest.raises(ValueError, match="expected inputs with 5 features, got shape \\(3, 4\\)"):
        fresh.update_input_statistics(torch.zeros(3, 4))


@pytest.mark.parametrize("centre", [True, False])
def test_input_statistics_divisor_follows_updates_loads_and_casts(centre):
    """The read's divisor is kept (not taken in every forward) and never goes stale: after an
    update (in inference mode too, then used with gradients), a load into a fresh standardiser and a
    cast to float64 the read equals the formula on the statistics bit for bit; the divisor is not in
    the state dict (it is derived), and a standardiser pickled without one makes it on unpickling."""
    torch.manual_seed(0)
    standardiser = RunningStandardiser(INPUT_DIM, centre=centre)
    x = torch.randn(6, INPUT_DIM) * 4

    def formula(module, inputs):
        mean, var = module.mean, module.var
        divisor = torch.sqrt(var + 1e-8) if centre else torch.sqrt(var + mean * mean + 1e-8)
        return torch.clamp(((inputs - mean) if centre else inputs) / divisor, -10, 10)

    assert torch.equal(standardiser(x), x.clamp(-10, 10))  # fresh: the input as it is
    with torch.inference_mode():
        standardiser.update(torch.randn(50, INPUT_DIM) * 3 + 1)
    assert not torch.equal(standardiser(x), x.clamp(-10, 10))
    assert torch.equal(standardiser(x), formula(standardiser, x))
    weights = torch.ones(INPUT_DIM, requires_grad=True)
    (standardiser(x * weights) ** 2).sum().backward()  # a divisor refreshed in inference mode can be saved
    assert weights.grad is not None and torch.isfinite(weights.grad).all()

    assert set(standardiser.state_dict()) == {"mean", "var", "count"}
    loaded = RunningStandardiser(INPUT_DIM, centre=centre)
    loaded.load_state_dict(standardiser.state_dict())
    assert torch.equal(loaded(x), standardiser(x))

    standardiser.double()
    assert standardiser.divisor.dtype == torch.float64
    assert torch.equal(standardiser(x.double()), formula(standardiser, x.double()))

    old_pickle = RunningStandardiser(INPUT_DIM, centre=centre)
    old_pickle.load_state_dict(loaded.state_dict())
    del old_pickle._buffers["divisor"]  # what a module pickled before the divisor was kept holds
    unpickled = pickle.loads(pickle.dumps(old_pickle))
    assert torch.equal(unpickled(x), loaded(x))


def test_cells_without_input_statistics_ignore_updates():
    """Only a first layer that reads the observation by its statistics keeps them (AGaLiTe's default
    does); other cells (the LSTM, GaLiTe's default and an AGaLiTe reading the observation as it is)
    take an update and change nothing."""
    assert make_cell("agalite", INPUT_DIM).has_input_statistics
    cells = (
        make_cell("lstm", INPUT_DIM),
        make_cell("galite", INPUT_DIM),
        make_cell("agalite", INPUT_DIM, memory_input="observation"),
    )
    for cell in cells:
        before = {k: v.clone() for k, v in cell.state_dict().items()}
        assert not cell.has_input_statistics
        cell.update_input_statistics(torch.randn(10, INPUT_DIM))
        assert all(torch.equal(before[k], v) for k, v in cell.state_dict().items())


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_a_fresh_value_convolution_is_the_identity(name):
    """From ``value_conv_init="identity"`` (an option) the value convolution starts as the
    identity and its direct path closed: a fresh cell computes exactly what the same cell without it
    (``value_conv=1``) computes, on sequences with resets and step by step."""
    x = torch.randn(12, 3, INPUT_DIM, dtype=torch.float64)
    starts = torch.zeros(12, 3)
    starts[5, 1] = starts[0, 2] = 1.0
    outputs = []
    for value_conv in (4, 1):
        torch.manual_seed(0)
        cell = make_cell(name, INPUT_DIM, **SMALL[name], value_conv=value_conv, value_conv_init="identity")
        with torch.no_grad():
            outputs.append(cell.to(torch.float64)(x, None, starts)[0])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-12)


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_mamba_conv_init_starts_random_taps_and_an_open_direct_path(name):
    """``value_conv_init="mamba"`` (an option): every tap uniform in +-1/sqrt(4), not the identity,
    and the direct path open (1), recorded in what a saved model keeps; the identity and a closed
    path (GaLiTe's default) is not recorded (every model saved before the choice had it), so earlier
    records and the benchmarks' runs keyed on them stay what they were. The paper's variant has no
    convolution."""
    mamba = make_cell(name, INPUT_DIM, **SMALL[name], value_conv_init="mamba")
    features = mamba.blocks[0].mixer.features
    taps = features.value_conv.weight
    assert taps.abs().max() <= 0.5 and taps[:, 1:].abs().sum() > 0 and not torch.all(taps[:, 0] == 1.0)
    assert torch.all(features.value_skip == 1.0)
    assert mamba.recorded_choices()["value_conv_init"] == "mamba"
    default = make_cell(name, INPUT_DIM, **SMALL[name], value_conv_init="identity")
    features = default.blocks[0].mixer.features
    assert torch.all(features.value_conv.weight[:, 0] == 1.0) and not features.value_conv.weight[:, 1:].any()
    assert not features.value_skip.any() and "value_conv_init" not in default.recorded_choices()
    assert make_cell(name, INPUT_DIM, variant="paper").blocks[0].mixer.features.value_conv is None
    with pytest.raises(ValueError, match="value_conv_init must be one of"):
        make_cell(name, INPUT_DIM, value_conv_init="random")


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_anchored_conv_init_keeps_the_current_tap_and_opens_the_direct_path(name):
    """``value_conv_init="anchored"``: the current step's tap at 1 (the memory writes what the
    identity start writes), the earlier taps Mamba's random ones, the direct path open, recorded."""
    anchored = make_cell(name, INPUT_DIM, **SMALL[name], value_conv_init="anchored")
    features = anchored.blocks[0].mixer.features
    taps = features.value_conv.weight
    assert torch.all(taps[:, 0] == 1.0) and taps[:, 1:].abs().max() <= 0.5 and taps[:, 1:].abs().sum() > 0
    assert torch.all(features.value_skip == 1.0)
    assert anchored.recorded_choices()["value_conv_init"] == "anchored"


@pytest.mark.parametrize("name", ["agalite", "galite"])
def test_value_convolution_starts_anchored_in_the_default_variant(name):
    """Both default variants start the value convolution anchored (decided on the development set,
    AGaLiTe's over ten seeds, then GaLiTe's) and record it; the paper's variant has no convolution."""
    cell = make_cell(name, INPUT_DIM, **SMALL[name])
    assert cell.value_conv_init == "anchored" and cell.recorded_choices()["value_conv_init"] == "anchored"
    assert torch.all(cell.blocks[0].mixer.features.value_skip == 1.0)
    assert make_cell(name, INPUT_DIM, variant="paper").blocks[0].mixer.features.value_conv is None


def test_value_convolution_reads_an_exact_earlier_step_within_the_episode():
    """With one tap set to 1 the convolution returns the input of exactly that many steps before,
    zero before the episode's start, on the sequence form (a reset inside the sequence and a
    carried state) and the step form alike."""
    conv = ShortConvolution(channels=2, kernel=4).to(torch.float64)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 3] = 1.0  # y_t = x_{t-3}
    x = torch.arange(1.0, 9.0, dtype=torch.float64).view(8, 1, 1).expand(8, 1, 2)
    starts = torch.zeros(8, 1, dtype=torch.float64)
    starts[5] = 1.0  # a new episode at step 5
    past = torch.full((1, 3, 2), 100.0, dtype=torch.float64)  # carried from before the sequence
    y, new_past = conv(x, past, starts)
    assert y[:, 0, 0].tolist() == [100.0, 100.0, 100.0, 1.0, 2.0, 0.0, 0.0, 0.0]
    assert new_past[0, :, 0].tolist() == [8.0, 7.0, 6.0]  # newest first, all of the new episode
    stepped, state = [], past
    for t in range(8):
        keep = (1.0 - starts[t]).view(1, 1, 1)
        y_t, state = conv.step(x[t], state, keep)
        stepped.append(y_t)
    assert torch.equal(torch.stack(stepped), y) and torch.equal(state, new_past)


@pytest.mark.filterwarnings("error:.*compile_training:RuntimeWarning")
@pytest.mark.parametrize("compiled", [False, True])
def test_value_convolution_backward_matches_numerical_gradients(compiled):
    """The convolution's hand-written backward (it keeps one padded copy of the inputs, not one per
    tap), and with ``compiled`` its fused kernels (compile_training): gradients of the inputs, the
    carried past and the taps, with an episode start inside."""
    if compiled:
        needs_compiler()
    gen = torch.Generator().manual_seed(0)
    conv = ShortConvolution(channels=3, kernel=4).to(torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(3, 4, generator=gen, dtype=torch.float64))
    x = torch.randn(9, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    past = torch.randn(2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    starts = torch.zeros(9, 2, dtype=torch.float64)
    starts[4, 0] = starts[7, 1] = 1.0

    weight = conv.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, past, w: torch.func.functional_call(conv, {"weight": w}, (x, past, starts, compiled)), (x, past, weight)
    )


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_a_fresh_write_gate_writes_every_step_at_strength_one(name):
    """``write_gate="exp"`` starts with zero weights and bias: a fresh cell computes exactly what the
    same cell without the gate computes (the same parameters otherwise), and records the choice; the
    write a saved model made before the choice existed ("none") is not recorded."""
    x = torch.randn(12, 3, INPUT_DIM, dtype=torch.float64)
    starts = torch.zeros(12, 3)
    starts[5, 1] = starts[0, 2] = 1.0
    torch.manual_seed(0)
    plain = make_cell(name, INPUT_DIM, **SMALL[name]).to(torch.float64)
    torch.manual_seed(0)
    gated = make_cell(name, INPUT_DIM, **SMALL[name], write_gate="exp").to(torch.float64)
    missing = gated.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".write_gate." in key for key in missing)
    with torch.no_grad():
        assert torch.equal(plain(x, None, starts)[0], gated(x, None, starts)[0])
    assert gated.recorded_choices()["write_gate"] == "exp" and "write_gate" not in plain.recorded_choices()
    with pytest.raises(ValueError, match="write_gate must be one of"):
        make_cell(name, INPUT_DIM, write_gate="sigmoid")


@pytest.mark.parametrize("name", ["galite-write", "agalite-write"])
def test_a_write_strength_the_same_at_every_step_divides_out(name, monkeypatch):
    """The read divides by the normaliser and by its root mean square, which the strength scales as
    it scales the memory, so a strength that is the same at every step (any bias, zero weights)
    leaves the output unchanged: only differences between steps select. (Without the read norm's
    eps, which a fresh memory's tiny reads make visible.)"""
    monkeypatch.setattr("sb3_rtx.cells.galite.READ_NORM_EPS", 0.0)
    x = torch.randn(20, 3, INPUT_DIM, dtype=torch.float64)
    outputs = []
    for bias in (0.0, 3.0, -4.0):
        cell = build(name)
        with torch.no_grad():
            for module in cell.modules():
                gate = getattr(module, "write_gate", None)
                if isinstance(gate, torch.nn.Linear):
                    gate.weight.zero_()
                    gate.bias.fill_(bias)
            outputs.append(cell(x, None, None)[0])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-9) and torch.allclose(outputs[0], outputs[2], atol=1e-9)
    assert not torch.allclose(outputs[0], build(name)(x, None, None)[0], atol=1e-3)  # a random gate does select


@pytest.mark.parametrize("name", ["galite", "agalite"])
def test_a_strongly_written_step_dominates_the_read_through_later_steps(name):
    """A write strength driven by one input channel (a marker) makes the marked step's value what
    the memory reads 30 steps later: the read after a marked cue changes with the cue several times
    more than the same cell's read without the gate does."""
    changes = []
    for write_gate in ("none", "exp"):
        torch.manual_seed(0)
        kwargs = {**SMALL[name], "n_layers": 1, "write_gate": write_gate}
        cell = make_cell(name, INPUT_DIM, **kwargs).to(torch.float64)
        features = cell.blocks[0].mixer.features
        if write_gate == "exp":
            with torch.no_grad():  # strength e^5 at the marked step, e^-5 elsewhere
                features.write_gate.weight[:, 0] = 40.0
                features.write_gate.bias.fill_(-20.0)
        torch.manual_seed(1)
        x = torch.randn(31, 2, INPUT_DIM, dtype=torch.float64)
        x[:, :, 0] = 0.0
        x[0, :, 0] = 1.0  # the marker, at the cue step
        x[0, 1, 1:] = x[0, 0, 1:] + 2.0  # the two envs differ only in the cue
        x[1:, 1] = x[1:, 0]
        with reads_of(cell.blocks[0].mixer) as reads, torch.no_grad():
            cell(x, None, None)
        read = reads[0][-1]  # the block's read at the last step, (B, d_model)
        changes.append(((read[1] - read[0]).norm() / read[0].norm()).item())
    assert changes[1] > 5 * changes[0], changes
