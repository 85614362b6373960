"""How much of an exported acting step at batch 1 is reading the policy's weights?

At batch 1 each linear layer is a matrix-vector product: it reads every weight once and does two
FLOPs per weight, so its time is the time to bring the weights from memory (on a CPU whose caches
per core are smaller than the policy's weights, from the shared last-level cache). This times,
in one thread, one batch-1 product per linear layer of the export benchmark's policies (the paper
size; AGaLiTe, GTrXL-128 and the LSTM, inside the same RtxPPO policy as
``benchmarks.export_latency``), with their own weight shapes, against the same number of calls on
8 x 8 weights (the calls' own cost): the difference is the weights' traffic, the least any runtime
pays per step. GTrXL's projections of its memory window are products of 128 rows, not one, and are
counted here as one row each: its row is a floor, not its step.

    python -m benchmarks.probes.weight_traffic          # seconds
    python -m benchmarks.probes.weight_traffic --quick  # a smoke run (few rounds)

Writes ``benchmarks/results/probes/weight_traffic.{md,csv}`` (``weight_traffic_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.efficiency import interleaved_ms
from benchmarks.export_latency import make_policy, models
from benchmarks.report import command_line, machine, write_report

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
TINY = 8


def products(shapes: list[torch.Size]) -> Callable[[], None]:
    """One batch-1 matrix-vector product per weight shape, into preallocated outputs (no allocation timed)."""
    weights = [torch.randn(shape) for shape in shapes]
    inputs = [torch.randn(1, shape[1]) for shape in shapes]
    outputs = [torch.empty(1, shape[0]) for shape in shapes]

    def run() -> None:
        for x, w, out in zip(inputs, weights, outputs, strict=True):
            torch.mm(x, w.t(), out=out)

    return run


def matrix_shapes(policy: torch.nn.Module) -> list[torch.Size]:
    """The weight matrix of every linear layer, and an LSTM's input and recurrent matrices."""
    shapes = []
    for module in policy.modules():
        if isinstance(module, torch.nn.Linear):
            shapes.append(module.weight.shape)
        elif isinstance(module, torch.nn.LSTM):
            shapes += [weight.shape for name, weight in module.named_parameters() if name.startswith("weight_")]
    return shapes


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows, steps = [], {}
    for label, cell, cell_kwargs in models(quick=False):
        policy = make_policy(cell, cell_kwargs)
        shapes = matrix_shapes(policy)
        rows.append(dict(cell=label, matrices=len(shapes), weights_mib=sum(s.numel() for s in shapes) * 4 / 2**20))
        steps[label, "weights"] = products(shapes)
        steps[label, "tiny"] = products([torch.Size((TINY, TINY))] * len(shapes))
    repeats, budget = (5, 0.5) if args.quick else (300, 20.0)
    times, rounds = interleaved_ms(steps, torch.device("cpu"), repeats=repeats, warmup=20, budget_s=budget, block=10)
    for row in rows:
        row["weights_ms"], row["tiny_ms"] = times[row["cell"], "weights"], times[row["cell"], "tiny"]
        row["traffic_ms"] = row["weights_ms"] - row["tiny_ms"]
        row["gb_per_s"] = row["weights_mib"] * 2**20 / (row["traffic_ms"] * 1e6)
    columns = [
        ("cell:", lambda r: r["cell"]),
        ("weight matrices", lambda r: str(r["matrices"])),
        ("weights MiB", lambda r: f"{r['weights_mib']:.2f}"),
        ("products, own weights, ms", lambda r: f"{r['weights_ms']:.3f}"),
        (f"same calls on {TINY}x{TINY}, ms", lambda r: f"{r['tiny_ms']:.3f}"),
        ("weight traffic ms", lambda r: f"{r['traffic_ms']:.3f}"),
        ("GB/s", lambda r: f"{r['gb_per_s']:.0f}"),
    ]
    description = (
        f"Made by `{command_line('benchmarks.probes.weight_traffic', argv)}`. torch {torch.__version__}, 1 CPU thread, "
        f"{machine()}. One batch-1 matrix-vector product per weight matrix (linear layers, the LSTM's two) "
        "of the export benchmark's paper-size "
        f"policies (their weight shapes), against as many calls on {TINY}x{TINY} weights: median ms over {rounds} "
        "rounds of 10 calls, the six taking turns; weight traffic = the difference."
    )
    name = "weight_traffic_quick" if args.quick else "weight_traffic"
    print(write_report(rows, args.out, name, "Batch-1 products: the weights' traffic", description, columns))
    return rows


if __name__ == "__main__":
    main()
