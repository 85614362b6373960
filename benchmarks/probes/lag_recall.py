"""Probe: can a cell learn to return the item of exactly ``lag`` steps ago, and how fast?

    python -m benchmarks.probes.lag_recall --jobs 2
    python -m benchmarks.probes.lag_recall --quick        # smoke run (CI)

The question (docs, "Learning memory", "Recent items"): with the value convolution (``value_conv=4``,
taps for this step and the three before it) the default AGaLiTe learned POPGym's RepeatPrevious
one step back, but not three steps back, which the LSTM learns. The convolution reaches three
steps back; is the failure one of optimisation? This probe takes RL out: supervised learning, a
stream of random one-hot symbols (4 of them), the target at every step the symbol ``lag`` steps
before (steps before the first ``lag`` not scored), sequences of 64 steps, batch 16, no resets,
Adam at the memory suite's learning rate (5e-4), a linear read-out of the cell's output trained
with it, cross-entropy. Cells at the memory suite's size (:data:`benchmarks.learning.SMALL`:
1 layer, d_model 64, 4 heads of 16; AGaLiTe eta 4, r 2; LSTM 128 units).

Models: ``AGaLiTe`` and ``GaLiTe`` (the defaults; when the table was made, the taps started as the
identity, the convolution's direct path closed; both start anchored now), ``GaLiTe (identity conv
init)`` and ``GaLiTe (anchored conv init)`` (each start spelled out), ``AGaLiTe (mamba conv init)``
and ``GaLiTe (mamba conv init)`` (``value_conv_init="mamba"``: random taps, the direct path open),
``LSTM``. Mamba's start taken
apart, each edited into the built default AGaLiTe: ``(open direct path)`` (identity taps, the path
at 1), ``(random taps)`` (the path closed), ``(shifted taps)`` (channel ``c`` an exact delay of
``c mod 4`` steps, H3's shift, the path closed); and ``AGaLiTe (anchored conv init)``
(``value_conv_init="anchored"``: the current tap at 1, the earlier ones random, the path open),
and ``(anchored, path 0.1)``, that start with the path open at 0.1 (does a small path escape?).
Each seed builds the cell with ``torch.manual_seed(seed)`` and draws its own data.

Reported: the accuracy over the last 100 of ``--updates`` updates (chance 0.25) and the first update
at which the accuracy over the 100 before it reached 0.95 (``-`` if never). Table:
``benchmarks/results/probes/lag_recall.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.learning import SMALL
from benchmarks.report import command_line, write_report

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
N_SYMBOLS = 4
SEQ_LEN, BATCH, LEARNING_RATE, WINDOW = 64, 16, 5e-4, 100
#: label -> (cell, keywords)
MODELS: dict[str, tuple[str, dict]] = {
    "AGaLiTe": ("agalite", dict(SMALL, eta=4, r=2)),
    "AGaLiTe (mamba conv init)": ("agalite", dict(SMALL, eta=4, r=2, value_conv_init="mamba")),
    # the two halves of Mamba's start, each alone, and a third way out of the saddle; set on the
    # default cell after it is built (candidates, not options of the library): see START_EDITS
    "AGaLiTe (open direct path)": ("agalite", dict(SMALL, eta=4, r=2)),
    "AGaLiTe (random taps)": ("agalite", dict(SMALL, eta=4, r=2)),
    "AGaLiTe (shifted taps)": ("agalite", dict(SMALL, eta=4, r=2)),
    "AGaLiTe (anchored conv init)": ("agalite", dict(SMALL, eta=4, r=2, value_conv_init="anchored")),
    "AGaLiTe (anchored, path 0.1)": ("agalite", dict(SMALL, eta=4, r=2, value_conv_init="anchored")),
    "GaLiTe": ("galite", dict(SMALL, eta=4)),
    "GaLiTe (mamba conv init)": ("galite", dict(SMALL, eta=4, value_conv_init="mamba")),
    "GaLiTe (anchored conv init)": ("galite", dict(SMALL, eta=4, value_conv_init="anchored")),
    "GaLiTe (identity conv init)": ("galite", dict(SMALL, eta=4, value_conv_init="identity")),
    "LSTM": ("lstm", dict(hidden_size=128)),
}


def _open_direct_path(conv, skip) -> None:
    """Identity taps, the direct path open at 1 (Mamba's ``D``)."""
    skip.fill_(1.0)


def _random_taps(conv, skip) -> None:
    """Mamba's random taps (uniform +-1/sqrt(kernel)), the direct path closed."""
    bound = conv.kernel**-0.5
    conv.weight.uniform_(-bound, bound)


def _shifted_taps(conv, skip) -> None:
    """Channel ``c`` starts as an exact delay of ``c mod kernel`` steps (H3's shift), the path closed."""
    conv.weight.zero_()
    channels = conv.weight.shape[0]
    conv.weight[range(channels), [c % conv.kernel for c in range(channels)]] = 1.0


def _path_tenth(conv, skip) -> None:
    """The anchored start with its direct path open at 0.1, not 1."""
    skip.fill_(0.1)


#: label -> how its value convolution and direct path start, edited into the built default cell
START_EDITS = {
    "AGaLiTe (open direct path)": _open_direct_path,
    "AGaLiTe (random taps)": _random_taps,
    "AGaLiTe (shifted taps)": _shifted_taps,
    "AGaLiTe (anchored, path 0.1)": _path_tenth,
}


def train(model: str, lag: int, seed: int, updates: int) -> dict:
    """One supervised run; its row."""
    import torch
    from torch.nn import functional as F

    from sb3_rtx.cells import make_cell

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cell_name, kwargs = MODELS[model]
    cell = make_cell(cell_name, N_SYMBOLS, **kwargs)
    if model in START_EDITS:
        with torch.no_grad():
            for block in cell.blocks:
                features = block.mixer.features
                START_EDITS[model](features.value_conv, features.value_skip)
    readout = torch.nn.Linear(cell.output_dim, N_SYMBOLS)
    optimiser = torch.optim.Adam([*cell.parameters(), *readout.parameters()], lr=LEARNING_RATE)
    no_starts = torch.zeros(SEQ_LEN, BATCH)
    accuracy, learned_at = [], None
    start = time.perf_counter()
    for update in range(updates):
        symbols = torch.randint(0, N_SYMBOLS, (SEQ_LEN, BATCH))
        y, _ = cell(F.one_hot(symbols, N_SYMBOLS).float(), None, no_starts)
        logits, target = readout(y)[lag:], symbols[: SEQ_LEN - lag]
        loss = F.cross_entropy(logits.reshape(-1, N_SYMBOLS), target.reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        accuracy.append((logits.argmax(-1) == target).float().mean().item())
        if learned_at is None and len(accuracy) >= WINDOW and sum(accuracy[-WINDOW:]) / WINDOW >= 0.95:
            learned_at = update + 1
    row = dict(
        model=model,
        lag=lag,
        seed=seed,
        updates=updates,
        final_accuracy=round(sum(accuracy[-WINDOW:]) / len(accuracy[-WINDOW:]), 3),
        learned_at=learned_at,
        seconds=round(time.perf_counter() - start, 1),
    )
    print(f"{model:>30} lag {lag} seed {seed}: {row['final_accuracy']:.2f}, learned at {learned_at}", flush=True)
    return row


def summary(rows: list[dict], models: list[str], lags: list[int]) -> list[dict]:
    """One table row per model and lag: mean final accuracy, each seed, and when each seed learned."""
    table = []
    for model in models:
        for lag in lags:
            runs = sorted((r for r in rows if r["model"] == model and r["lag"] == lag), key=lambda r: r["seed"])
            if not runs:
                continue
            table.append(
                dict(
                    model=model,
                    lag=lag,
                    mean_accuracy=sum(r["final_accuracy"] for r in runs) / len(runs),
                    seeds=" ".join(f"{r['final_accuracy']:.2f}" for r in runs),
                    learned_at=" ".join(str(r["learned_at"]) if r["learned_at"] else "-" for r in runs),
                )
            )
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--lags", nargs="+", type=int, default=[1, 3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: AGaLiTe and LSTM, lag 1, 1 seed, 20 updates")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.lags, args.seeds, args.updates = ["AGaLiTe", "LSTM"], [1], [0], 20
    if any(lag < 1 or lag >= SEQ_LEN for lag in args.lags):
        raise SystemExit(f"--lags must be between 1 and {SEQ_LEN - 1}")
    runs = [(model, lag, seed, args.updates) for model in args.models for lag in args.lags for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(train, *zip(*runs, strict=True)))
    table = write_report(
        summary(rows, args.models, args.lags),
        args.out,
        "lag_recall_quick" if args.quick else "lag_recall",
        "Lag recall, supervised: the item of exactly `lag` steps ago",
        f"Made by `{command_line('benchmarks.probes.lag_recall', argv)}`. A stream of {N_SYMBOLS} random one-hot "
        f"symbols, the target at each step the symbol `lag` steps before; sequences of {SEQ_LEN}, batch {BATCH}, Adam "
        f"lr {LEARNING_RATE}, {args.updates} updates, a linear read-out; cells at the memory suite's size. Accuracy over "
        f"the last {WINDOW} updates (chance {1 / N_SYMBOLS:.2f}), each seed ({', '.join(map(str, args.seeds))}); "
        f"'learned at': the first update whose last {WINDOW} updates averaged 0.95 ('-': never).",
        [
            ("model:", lambda r: r["model"]),
            ("lag", lambda r: str(r["lag"])),
            ("accuracy", lambda r: f"{r['mean_accuracy']:.2f}"),
            ("each seed:", lambda r: r["seeds"]),
            ("learned at (update):", lambda r: r["learned_at"]),
        ],
    )
    print(table)
    return rows


if __name__ == "__main__":
    main()
