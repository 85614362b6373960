"""First look at the cells' cost: acting-step latency, training-step time and state size.

For every cell at the paper's T-Maze size (GTrXL at memory_len 32, 128 and 256) it measures

* the acting step (T=1, no grad) at batch 1 and 16: median wall time of many repeats after warm-up;
* a training step: forward + backward over T=128, batch 16 (the multi-step form);
* ``state_numel``: floats of state per env.

Run from the repository root:

    python -m benchmarks.cell_step            # about two minutes on a 2-core CPU
    python -m benchmarks.cell_step --quick    # a smoke run: few repeats, T=16 training step

The table is printed and written to ``benchmarks/results/cell_step.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from benchmarks.report import write_report
from sb3_rtx.cells import make_cell

RESULTS = Path(__file__).resolve().parent / "results"
INPUT_DIM = 32
CONFIGS: list[tuple[str, str, dict]] = [
    ("AGaLiTe", "agalite", {}),
    ("GaLiTe", "galite", {}),
    ("GTrXL M=32", "gtrxl", {"memory_len": 32}),
    ("GTrXL M=128", "gtrxl", {"memory_len": 128}),
    ("GTrXL M=256", "gtrxl", {"memory_len": 256}),
    ("LSTM", "lstm", {}),
]


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def acting_step_seconds(cell, batch: int, repeats: int, history: int = 300) -> float:
    x = torch.randn(1, batch, INPUT_DIM)
    starts = torch.zeros(1, batch)
    with torch.inference_mode():
        # a state that has seen a full memory, so GTrXL attends over all its slots
        _, state = cell(torch.randn(history, batch, INPUT_DIM), None, None)
        holder = [state]

        def step() -> None:
            _, holder[0] = cell(x, holder[0], starts)

        return median_seconds(step, repeats, warmup=max(3, repeats // 10))


def training_step_seconds(cell, seq_len: int, batch: int, repeats: int) -> float:
    x = torch.randn(seq_len, batch, INPUT_DIM)
    starts = (torch.rand(seq_len, batch) < 0.02).float()
    with torch.no_grad():
        _, state = cell(torch.randn(seq_len, batch, INPUT_DIM), None, None)

    def step() -> None:
        cell.zero_grad(set_to_none=True)
        y, _ = cell(x, state, starts)
        y.square().mean().backward()

    return median_seconds(step, repeats, warmup=1)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke run, numbers are noisy)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for cell_step.md / .csv")
    args = parser.parse_args(argv)
    act_repeats, train_repeats = (20, 1) if args.quick else (300, 5)
    history, train_len = (40, 16) if args.quick else (300, 128)

    torch.manual_seed(0)
    rows = []
    for label, name, kwargs in CONFIGS:
        cell = make_cell(name, INPUT_DIM, **kwargs)
        row = {
            "cell": label,
            "state_numel": cell.state_numel,
            "act_b1_ms": 1e3 * acting_step_seconds(cell, 1, act_repeats, history),
            "act_b16_ms": 1e3 * acting_step_seconds(cell, 16, act_repeats, history),
            "train_b16_ms": 1e3 * training_step_seconds(cell, train_len, 16, train_repeats),
        }
        rows.append(row)
        print(f"{label:>12}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "cell"), flush=True)

    reference = next(r for r in rows if r["cell"] == "GTrXL M=128")
    repeats = "--quick run" if args.quick else f"median of {act_repeats} acting / {train_repeats} training repeats"
    table = write_report(
        rows,
        args.out,
        "cell_step",
        "Cell step cost (CPU)",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"paper T-Maze size (4 layers, d_model 128, 4 heads, d_head 64, eta 8, r 2), input_dim {INPUT_DIM}; {repeats}.",
        [
            ("cell:", lambda r: r["cell"]),
            ("state floats / env", lambda r: f"{r['state_numel']:,}"),
            ("act ms (B=1)", lambda r: f"{r['act_b1_ms']:.3f}"),
            ("act ms (B=16)", lambda r: f"{r['act_b16_ms']:.3f}"),
            (f"train fwd+bwd ms (T={train_len}, B=16)", lambda r: f"{r['train_b16_ms']:.1f}"),
            ("act B=1 vs GTrXL M=128", lambda r: f"{r['act_b1_ms'] / reference['act_b1_ms']:.2f}x"),
        ],
    )
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
