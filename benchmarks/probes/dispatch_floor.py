"""How much of the eager acting step at batch 1 is Python, and how much the operations themselves.

The eager acting step at batch 1 is a few hundred small operations (docs, "Benchmarks"), and its
time is their dispatch plus the Python that issues them. For AGaLiTe and GTrXL-128 at the
efficiency table's sizes this times one acting step (T=1, batch 1, no grad, one thread, from a
full memory; the steps take turns in runs of 10, as in the efficiency table),
three ways:

* ``eager``: the cell as a user calls it;
* ``graph``: the same step recorded once with ``torch.jit.trace`` and replayed by TorchScript's
  interpreter, which dispatches the same operations with no Python between them (TorchScript is
  deprecated; here it only measures). Traced, the reset multiplier is always applied, a few
  operations more than the eager step takes when no episode starts;
* ``compiled``: ``compile_acting`` (inductor's fused C++ step), for scale;

and counts the operations one eager step dispatches, views included (each a call from Python in
the eager step) and without (the efficiency table's ``op_count``). The ``graph`` ratio is the
floor of what trimming Python alone could reach: fewer operations, or fused ones (``compiled``),
are the only way below it.

    python -m benchmarks.probes.dispatch_floor            # about two minutes on one core
    python -m benchmarks.probes.dispatch_floor --quick    # the small size only

Writes ``benchmarks/results/probes/dispatch_floor.{md,csv}`` (``dispatch_floor_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.efficiency import ACT_BLOCK, INPUT_DIM, REFERENCE, acting_step, interleaved_ms
from benchmarks.op_count import counted, parse_size_arguments, reference_row, seeded_cells
from benchmarks.report import command_line, machine, write_report
from sb3_rtx.cells import RecurrentCell

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
CELLS = ("AGaLiTe", REFERENCE)
FORMS = ("eager", "graph", "compiled")
#: steps each cell's state has seen before timing: GTrXL's as in the efficiency table (twice its
#: memory, so that it is full); AGaLiTe's step costs the same after any number
HISTORY = {"AGaLiTe": 8, REFERENCE: 256}


def graph_step(cell: RecurrentCell, history: int) -> Callable[[], None]:
    """The acting step of :func:`~benchmarks.efficiency.acting_step`, traced once and replayed."""
    x = torch.randn(1, 1, INPUT_DIM)
    starts = torch.zeros(1, 1)
    with torch.inference_mode():
        _, state = cell(torch.randn(history, 1, INPUT_DIM), None, None)

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = cell

        def forward(self, x: torch.Tensor, starts: torch.Tensor, *state: torch.Tensor):
            return self.cell(x, tuple(state), starts)

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript's deprecation, and the tracer's on data-dependent checks
        traced = torch.jit.trace(Step(), (x, starts, *state), check_trace=False)
    holder = [tuple(state)]

    def step() -> None:
        with torch.inference_mode():
            _, holder[0] = traced(x, starts, *holder[0])

    return step


def measure(sizes: tuple[str, ...], repeats: int, budget_s: float) -> list[dict]:
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    rows = []
    for size in sizes:
        cells = {label: cell.eval() for _, label, cell in seeded_cells((size,), CELLS)}
        steps: dict[str, Callable[[], None]] = {}
        for label, cell in cells.items():
            steps[f"{label} eager"] = acting_step(cell, cpu, 1, HISTORY[label])
            steps[f"{label} graph"] = graph_step(cell, HISTORY[label])
            compiled = copy.deepcopy(cell).compile_acting()
            steps[f"{label} compiled"] = acting_step(compiled, cpu, 1, HISTORY[label])
            steps[f"{label} compiled"]()  # compiles
            if not compiled.acting_compiled:
                del steps[f"{label} compiled"]
        medians, rounds = interleaved_ms(steps, cpu, repeats, 10, budget_s, block=ACT_BLOCK)
        for label in cells:
            ops = counted(steps[f"{label} eager"])
            row = {"size": size, "cell": label, "rounds": rounds, "ops": ops.count, "all_ops": ops.dispatched}
            for form in FORMS:
                row[f"{form}_ms"] = medians.get(f"{label} {form}")
            rows.append(row)
        reference = reference_row(rows, size)
        for row in rows[-len(cells) :]:
            for form in FORMS:
                mine, theirs = row[f"{form}_ms"], reference[f"{form}_ms"]
                row[f"{form}_ratio"] = None if mine is None or theirs is None else mine / theirs
            print(
                f"{size:>5} {row['cell']:>12}: "
                + ", ".join(f"{form} {row[f'{form}_ms']} ms" for form in FORMS)
                + f", ops {row['all_ops']} ({row['ops']} not views)",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args, sizes = parse_size_arguments(argv, __doc__, RESULTS)
    rows = measure(sizes, 20 if args.quick else 300, 1.0 if args.quick else 20.0)

    def timed(form: str) -> Callable[[dict], str]:
        def cell(row: dict) -> str:
            if row[f"{form}_ms"] is None:
                return "-"
            return f"{row[f'{form}_ms']:.3f} ({row[f'{form}_ratio']:.2f}x)"

        return cell

    table = write_report(
        rows,
        args.out,
        "dispatch_floor_quick" if args.quick else "dispatch_floor",
        "The acting step at batch 1: Python, dispatch, fused",
        f"torch {torch.__version__}, 1 CPU thread, {machine()}. One acting step (T=1, batch 1, no grad), ms, median "
        "over rounds in which every step runs 10 times in turn; ratios (x) to GTrXL M=128 in the same form. eager: the "
        "cell as called; graph: the same step traced and replayed by TorchScript (the same operations, no Python "
        "between them); compiled: compile_acting. ops: ATen operations one eager step dispatches, views included "
        f"(not views). Made by `{command_line('benchmarks.probes.dispatch_floor', argv)}`",
        [
            ("size:", lambda r: r["size"]),
            ("cell:", lambda r: r["cell"]),
            ("ops (not views)", lambda r: f"{r['all_ops']} ({r['ops']})"),
            *[(f"{form} ms", timed(form)) for form in FORMS],
        ],
    )
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
