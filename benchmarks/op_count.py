"""Operations per step: what a GPU launches for each cell's acting and training step.

At the sizes RL trains at, a GPU's step costs its kernel launches, not its arithmetic (on a lent
H200, every transformer cell's acting step took about the same 2-4 ms, and AGaLiTe's training step
several times GTrXL's against 0.6x its FLOPs: docs, "Benchmarks", "On CUDA"). The launch count
is exact and needs no GPU: this counts, for every cell at the efficiency table's sizes, the ATen
operations one step dispatches that are neither views nor bare allocations (each of these is a
kernel on a GPU), with PyTorch's dispatch hook (``TorchDispatchMode``), on two sets of paths:

* ``cpu``: the paths the training forms take on a CPU (cache-sized groups and blocks, loops over
  the steps of a chunk);
* ``accelerator``: the paths they take on a GPU (:func:`sb3_rtx.cells.scan.launch_bound`: one
  group, one block, doubling scans, ``cumprod``), run here on the CPU.

Steps: acting (T=1, batch 1, no grad) and training (forward + backward) at T=128, batch 16 (the
efficiency table's) and at T=32, batch 8 (a minibatch of RtxPPO's sequences in the throughput
benchmark: batch 256 as sequences of 32 steps).

    python -m benchmarks.op_count            # seconds
    python -m benchmarks.op_count --quick    # the small size only

Writes ``benchmarks/results/op_count.{md,csv}`` (``op_count_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.efficiency import INPUT_DIM, REFERENCE, acting_step, configs, training_step
from benchmarks.report import command_line, write_report
from sb3_rtx.cells import RecurrentCell, factored_attention, galite, make_cell, oscillating_values, scan

RESULTS = Path(__file__).resolve().parent / "results"
CELLS = ("AGaLiTe", "GaLiTe", "GTrXL M=128", "LSTM")
#: (steps, batch) of the training steps counted
TRAIN_SHAPES = ((128, 16), (32, 8))
PATHS = ("cpu", "accelerator")


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched inside it that launch work (``count``): not views
    (which only describe memory) and not bare allocations; and every one (``dispatched``)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.dispatched = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.dispatched += 1
        if not (func.is_view or func.overloadpacket.__name__.startswith(("empty", "new_empty"))):
            self.count += 1
        return func(*args, **(kwargs or {}))


def counted(step: Callable[[], object]) -> OpCounter:
    """The operations of one call of ``step``, after a first call (which may build caches, such as
    the oscillators' cosine table, that later calls reuse)."""
    step()
    with OpCounter() as counter:
        step()
    return counter


def ops_of(step: Callable[[], object]) -> int:
    """The operations one call of ``step`` launches (:attr:`OpCounter.count`)."""
    return counted(step).count


@contextlib.contextmanager
def accelerator_paths() -> Iterator[None]:
    """The training forms' GPU paths, on the CPU (every module that asks :func:`launch_bound`)."""
    with contextlib.ExitStack() as stack:
        for module in (scan, factored_attention, oscillating_values, galite):
            stack.enter_context(mock.patch.object(module, "launch_bound", lambda device: True))
        yield


def seeded_cells(sizes: tuple[str, ...], labels: tuple[str, ...]) -> Iterator[tuple[str, str, RecurrentCell]]:
    """``(size, label, cell)`` for the efficiency table's cells named in ``labels`` at each size, each
    built from seed 0 (so what is counted on it is the same in every run)."""
    for size in sizes:
        for label, name, kwargs in configs(size):
            if label in labels:
                torch.manual_seed(0)
                yield size, label, make_cell(name, INPUT_DIM, **kwargs)


def count(sizes: tuple[str, ...]) -> list[dict]:
    cpu = torch.device("cpu")
    rows = []
    for size, label, cell in seeded_cells(sizes, CELLS):
        row: dict = {"size": size, "cell": label}
        for paths in PATHS:
            with accelerator_paths() if paths == "accelerator" else contextlib.nullcontext():
                row[f"act_{paths}"] = ops_of(acting_step(cell, cpu, 1, history=8))
                for steps, batch in TRAIN_SHAPES:
                    row[f"train_{steps}x{batch}_{paths}"] = ops_of(training_step(cell, cpu, steps, batch))
        rows.append(row)
        counts = ", ".join(f"{key} {value}" for key, value in row.items() if key not in ("size", "cell"))
        print(f"{size:>5} {label:>12}: {counts}", flush=True)
    for row in rows:
        reference = reference_row(rows, row["size"])
        for key in [k for k in row if k.startswith(("act_", "train_"))]:
            row[f"{key}_ratio"] = row[key] / reference[key]
    return rows


def reference_row(rows: list[dict], size: str) -> dict:
    """The row of :data:`~benchmarks.efficiency.REFERENCE` (GTrXL M=128) at ``size``."""
    return next(r for r in rows if r["size"] == size and r["cell"] == REFERENCE)


def parse_size_arguments(
    argv: list[str] | None, doc: str | None, default_out: Path
) -> tuple[argparse.Namespace, tuple[str, ...]]:
    """``--quick`` (the small size only) and ``--out``, for an exact count at the efficiency table's
    sizes; returns the arguments and the sizes to count."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the small size only")
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)
    return args, ("small",) if args.quick else ("paper", "small")


def main(argv: list[str] | None = None) -> list[dict]:
    args, sizes = parse_size_arguments(argv, __doc__, RESULTS)
    rows = count(sizes)

    def ops(key: str) -> Callable[[dict], str]:
        return lambda r: f"{r[key]} ({r[key + '_ratio']:.2f}x)"

    columns = [("size:", lambda r: r["size"]), ("cell:", lambda r: r["cell"])]
    for paths in PATHS:
        columns.append((f"act B=1, {paths} paths", ops(f"act_{paths}")))
        columns += [(f"train T={t} B={b}, {paths} paths", ops(f"train_{t}x{b}_{paths}")) for t, b in TRAIN_SHAPES]
    table = write_report(
        rows,
        args.out,
        "op_count_quick" if args.quick else "op_count",
        "Operations per step (kernel launches on a GPU)",
        f"Made by `{command_line('benchmarks.op_count', argv)}`. torch {torch.__version__}. ATen operations one step "
        "dispatches that are neither views nor bare allocations, counted exactly (no timing); the efficiency table's "
        "sizes and cells, input_dim 32. Acting: T=1, batch 1, no grad. Training: forward + backward. cpu paths: what "
        "the training forms run on a CPU; accelerator paths: what they run on a GPU (`launch_bound`), counted on the "
        "CPU. Ratios (x) are to GTrXL M=128 at the same size and paths.",
        columns,
    )
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
