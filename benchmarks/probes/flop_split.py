"""How much of GTrXL-128's training step would AGaLiTe's matrix products alone take?

The efficiency benchmark times each cell's training step (forward + backward, T=128, batch 16)
and counts its matmul FLOPs. At the paper's size AGaLiTe does 0.59x GTrXL-128's FLOPs and took
0.96x its time on one thread (``efficiency_1threads.md``): its other work (the key side's passes
over eta * d-wide tensors, the value read, the element-wise gates) costs it. The issue's
target is 0.8x. This counts, exactly and without timing, each cell's FLOPs split by the kind of
product (torch's FLOP counter):

* ``dense``: ``mm``, ``addmm`` (the linear layers: projections, gates, MLP), large matrices that
  run near a CPU's peak;
* ``batched``: ``bmm``, ``baddbmm`` and attention (many small matrices: AGaLiTe's chunks, GTrXL's
  attention over its memory).

If AGaLiTe's products ran at the rate GTrXL's whole step runs at, they alone would take the
``share of GTrXL's step`` column of GTrXL's time; whatever that leaves under 0.8 is what
everything else in AGaLiTe's step may cost for the target.

    python -m benchmarks.probes.flop_split            # seconds
    python -m benchmarks.probes.flop_split --quick    # the small size only

Writes ``benchmarks/results/probes/flop_split.{md,csv}`` (``flop_split_quick.*`` with ``--quick``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.efficiency import CPU_ATTENTION_FLOPS, INPUT_DIM, REFERENCE, training_step
from benchmarks.op_count import parse_size_arguments, reference_row, seeded_cells
from benchmarks.report import command_line, write_report

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
CELLS = ("AGaLiTe", "GaLiTe", REFERENCE)
DENSE = ("mm", "addmm")
#: the training step's shape (the efficiency benchmark's)
SEQ_LEN, BATCH = 128, 16


def flops_by_kind(step: Callable[[], object]) -> dict[str, int]:
    """FLOPs of one call of ``step``, as ``dense`` (mm, addmm) and ``batched`` (everything else counted)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        step()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    dense = sum(n for op, n in by_op.items() if op.removeprefix("aten.").split(".")[0] in DENSE)
    return dict(dense=dense, batched=sum(by_op.values()) - dense)


def count(sizes: tuple[str, ...]) -> list[dict]:
    rows = []
    for size, label, cell in seeded_cells(sizes, CELLS):
        row = dict(size=size, cell=label, **flops_by_kind(training_step(cell, torch.device("cpu"), SEQ_LEN, BATCH)))
        row["total"] = row["dense"] + row["batched"]
        rows.append(row)
        print(f"{size:>5} {label:>12}: dense {row['dense'] / 1e9:.2f}, batched {row['batched'] / 1e9:.2f} GFLOP", flush=True)
    for row in rows:
        reference = reference_row(rows, row["size"])
        row["share_of_reference"] = row["total"] / reference["total"]
        row["dense_share_of_reference"] = row["dense"] / reference["total"]
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args, sizes = parse_size_arguments(argv, __doc__, RESULTS)
    rows = count(sizes)

    def giga(key: str) -> Callable[[dict], str]:
        return lambda r: f"{r[key] / 1e9:.2f}"

    table = write_report(
        rows,
        args.out,
        "flop_split_quick" if args.quick else "flop_split",
        f"Training-step FLOPs by kind of product, against {REFERENCE}'s",
        f"torch {torch.__version__}. Forward + backward over T={SEQ_LEN}, batch {BATCH}, input_dim {INPUT_DIM}: the "
        "efficiency table's step and sizes, counted exactly by torch's FLOP counter (no timing). Dense: mm and addmm "
        "(linear layers); batched: bmm, baddbmm and attention. Share of the reference's step: the cell's products "
        f"over all of {REFERENCE}'s, the share of its time they would take at the rate its whole step runs at. "
        f"Made by `{command_line('benchmarks.probes.flop_split', argv)}`",
        [
            ("size:", lambda r: r["size"]),
            ("cell:", lambda r: r["cell"]),
            ("dense GFLOP", giga("dense")),
            ("batched GFLOP", giga("batched")),
            ("total GFLOP", giga("total")),
            ("dense, share of reference's step", lambda r: f"{r['dense_share_of_reference']:.2f}x"),
            ("total, share of reference's step", lambda r: f"{r['share_of_reference']:.2f}x"),
        ],
    )
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
