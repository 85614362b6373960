"""Probe: can a cell average a noisy observation over time and keep its size?

    python -m benchmarks.probes.noisy_level --jobs 2
    python -m benchmarks.probes.noisy_level --quick        # smoke run (CI)

The question (docs, "Learning memory", "Control"): the LSTM leads AGaLiTe on control from noisy
positions (the test set's noisy position-only CartPole; the development set's position-only
pendulum). Such a task asks the memory for a smoothed position: an average over recent steps
whose *size* matters. AGaLiTe's default read is divided by its own root mean square per head
(``read_norm="rms"``), and at the start its values are linear in the observation (the projections
start with zero bias), so the read keeps the direction of what it averaged and drops its size:
twice the observation gives the same read. The cell can learn value biases that bring the size
back, or take it from the value convolution's direct path (the last four steps); is that a handicap
when the task is to average many steps?

Supervised, no RL: a level ``s_t = A sin(omega t + phi)``, drawn per sequence (``A`` uniform in
[0.25, 2], ``omega`` in [0.05, 0.2] rad per step, ``phi`` in [0, 2 pi)), observed through unit
Gaussian noise (``x_t = s_t + n_t``, one input); the target at every step is ``s_t``, scored from
step 16 on. Sequences of 64 steps, batch 16, Adam at the memory suite's learning rate (5e-4), a
linear read-out trained with it, squared error; the table gives the raw observation's R^2 beside
the cells' (what no averaging scores). Cells at the memory suite's size
(:data:`benchmarks.learning.SMALL`).

Models: ``AGaLiTe`` (the default), ``AGaLiTe (constant input)`` (the observation with a constant 1
beside it, so every value starts with an offset and the normalised read keeps the average's size:
the same cell, one input more), ``AGaLiTe (read not normalised)`` (``read_norm="none"``, the
paper's read), ``AGaLiTe (multiscale gates)`` and ``AGaLiTe (slow gates)`` (``gate_init="multiscale"``:
value spans from 4 to 256 steps within every head; ``"slow"``: every span about 8 steps, where the
default's heads start at 400 down to 20; opt-in, ``--models``), ``AGaLiTe (long first head)``
(``gate_init="long_first"``: the first head's spans all about 400 steps, the others' as
``"multiscale"``'s; opt-in), ``LSTM`` (128 units, the suite's).
Each seed builds the cell with ``torch.manual_seed(seed)`` and draws its own data.

Reported: R^2 of the prediction over the last 100 of ``--updates`` updates (1 - mean squared error
over the level's variance; 0: the mean), each seed. Table:
``benchmarks/results/probes/noisy_level.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.learning import SMALL
from benchmarks.report import command_line, write_report

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
SEQ_LEN, BATCH, LEARNING_RATE, WINDOW, SCORED_FROM = 64, 16, 5e-4, 100, 16
AMPLITUDE, FREQUENCY = (0.25, 2.0), (0.05, 0.2)
#: label -> (cell, keywords, whether a constant 1 is appended to the observation)
MODELS: dict[str, tuple[str, dict, bool]] = {
    "AGaLiTe": ("agalite", dict(SMALL, eta=4, r=2), False),
    "AGaLiTe (constant input)": ("agalite", dict(SMALL, eta=4, r=2), True),
    "AGaLiTe (read not normalised)": ("agalite", dict(SMALL, eta=4, r=2, read_norm="none"), False),
    "AGaLiTe (multiscale gates)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="multiscale"), False),
    "AGaLiTe (slow gates)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="slow"), False),
    "AGaLiTe (long first head)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="long_first"), False),
    "LSTM": ("lstm", dict(hidden_size=128), False),
}
#: the models a plain run trains (the gate starts are opt-in, ``--models``)
DEFAULT_MODELS = ("AGaLiTe", "AGaLiTe (constant input)", "AGaLiTe (read not normalised)", "LSTM")


def batch_of_levels(generator):
    """``(observations, levels)``, each ``(SEQ_LEN, BATCH, 1)``: a sinusoid per sequence under unit noise."""
    import torch

    def uniform(low: float, high: float):
        return low + (high - low) * torch.rand(1, BATCH, 1, generator=generator)

    steps = torch.arange(SEQ_LEN, dtype=torch.float32).view(-1, 1, 1)
    amplitude, omega, phase = uniform(*AMPLITUDE), uniform(*FREQUENCY), uniform(0.0, 2 * math.pi)
    levels = amplitude * torch.sin(omega * steps + phase)
    return levels + torch.randn(SEQ_LEN, BATCH, 1, generator=generator), levels


def train(model: str, seed: int, updates: int) -> dict:
    """One supervised run; its row."""
    import torch

    from sb3_rtx.cells import make_cell

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cell_name, kwargs, constant = MODELS[model]
    cell = make_cell(cell_name, 2 if constant else 1, **kwargs)
    readout = torch.nn.Linear(cell.output_dim, 1)
    optimiser = torch.optim.Adam([*cell.parameters(), *readout.parameters()], lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    no_starts = torch.zeros(SEQ_LEN, BATCH)
    errors, variances, raw_errors = [], [], []
    for _ in range(updates):
        observations, levels = batch_of_levels(generator)
        x = torch.cat([observations, torch.ones_like(observations)], -1) if constant else observations
        y, _ = cell(x, None, no_starts)
        prediction, target = readout(y)[SCORED_FROM:], levels[SCORED_FROM:]
        loss = (prediction - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        errors.append(loss.item())
        variances.append(target.var().item())
        raw_errors.append((observations[SCORED_FROM:] - target).pow(2).mean().item())
    last = slice(-WINDOW, None)
    row = dict(
        model=model,
        seed=seed,
        updates=updates,
        r2=round(1.0 - sum(errors[last]) / sum(variances[last]), 3),
        r2_raw_observation=round(1.0 - sum(raw_errors[last]) / sum(variances[last]), 3),
    )
    print(f"{model:>30} seed {seed}: R^2 {row['r2']:.3f}", flush=True)
    return row


def summary(rows: list[dict], models: list[str]) -> list[dict]:
    """One table row per model: mean R^2 and each seed's."""
    table = []
    for model in models:
        runs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["seed"])
        if runs:
            mean = sum(r["r2"] for r in runs) / len(runs)
            table.append(dict(model=model, mean_r2=mean, seeds=" ".join(f"{r['r2']:.3f}" for r in runs)))
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(DEFAULT_MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: AGaLiTe and LSTM, 1 seed, 20 updates")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.seeds, args.updates = ["AGaLiTe", "LSTM"], [0], 20
    if args.updates < WINDOW and not args.quick:
        raise SystemExit(f"--updates must be at least {WINDOW}")
    runs = [(model, seed, args.updates) for model in args.models for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(train, *zip(*runs, strict=True)))
    raw = sum(r["r2_raw_observation"] for r in rows) / len(rows)
    table = write_report(
        summary(rows, args.models),
        args.out,
        "noisy_level_quick" if args.quick else "noisy_level",
        "A noisy level, supervised: averaging the observation and keeping its size",
        f"Made by `{command_line('benchmarks.probes.noisy_level', argv)}`. The level A sin(omega t + phi) per sequence "
        f"(A in {list(AMPLITUDE)}, omega in {list(FREQUENCY)} rad per step) under unit Gaussian noise, one input; the "
        f"target at every step the level, scored from step {SCORED_FROM}; sequences of {SEQ_LEN}, batch {BATCH}, Adam lr "
        f"{LEARNING_RATE}, {args.updates} updates, a linear read-out; cells at the memory suite's size. R^2 over the last "
        f"{WINDOW} updates, each seed ({', '.join(map(str, args.seeds))}); the raw observation's R^2: {raw:.2f}.",
        [
            ("model:", lambda r: r["model"]),
            ("R^2", lambda r: f"{r['mean_r2']:.3f}"),
            ("each seed:", lambda r: r["seeds"]),
        ],
    )
    print(table)
    return rows


if __name__ == "__main__":
    main()
