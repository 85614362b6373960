"""Where AGaLiTe's training step spends its time, part by part, eagerly and with ``compile_training``.

The efficiency benchmark times each cell's whole training step (forward + backward over T=128,
batch 16, one thread) against GTrXL-128's, and ``flop_split`` counts its matrix products. This
times the parts of AGaLiTe's training form inside that same step: each of its own autograd
Functions, forward and backward, by wrapping them with a clock:

* ``projection``: the fused input projection and its activations (``ActivatedProjection``), mostly
  one matrix product per layer that runs at the CPU's rate;
* ``key side``: the chunked gated attention over eta * d-wide features (``_FactoredGatedAttention``;
  with ``compile_training`` its fused kernels, :mod:`sb3_rtx.cells.compiled_key_side`);
* ``value read``: the value memory's scan and read (``_OscillatingValueRead``; with
  ``compile_training`` ``_CompiledValueRead``, the fused kernels of :mod:`sb3_rtx.cells.compiled_values`);
* ``merged read``: the read's norm, the values' direct path and the output projection (``_MergedRead``);
* ``value conv``: the values' short causal convolution (``_MaskedCausalConvolution``; with
  ``compile_training`` its fused kernels, :mod:`sb3_rtx.cells.compiled_convolution`);
* ``rest``: everything else in the step (the embedding, layer norms, GRU gates and MLP, which
  GTrXL's blocks have too, and the glue between the parts).

GTrXL-128's whole step is timed in the same rounds, for scale. The steps take turns, one call each
per round; each number is the median over the rounds.

    python -m benchmarks.probes.step_parts            # about a minute on one core
    python -m benchmarks.probes.step_parts --quick    # the small size only

Writes ``benchmarks/results/probes/step_parts.{md,csv}`` (``step_parts_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from benchmarks.efficiency import REFERENCE, training_step
from benchmarks.op_count import parse_size_arguments, seeded_cells
from benchmarks.report import command_line, machine, write_report
from sb3_rtx.cells import activated_projection, factored_attention, merged_read, oscillating_values, short_conv

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
#: the parts: label -> the autograd Functions whose forward and backward are timed (the value read's
#: eager and compiled forms are two Functions)
PARTS: dict[str, tuple[type, ...]] = {
    "projection": (activated_projection.ActivatedProjection,),
    "key side": (factored_attention._FactoredGatedAttention,),
    "value read": (oscillating_values._OscillatingValueRead, oscillating_values._CompiledValueRead),
    "merged read": (merged_read._MergedRead,),
    "value conv": (short_conv._MaskedCausalConvolution,),
}
#: the training step's shape (the efficiency benchmark's)
SEQ_LEN, BATCH = 128, 16
ROUNDS = 9


@contextmanager
def clocked_parts(spent: dict[str, float]) -> Iterator[None]:
    """While open, every call of a part's forward or backward adds its seconds to ``spent["<part> fwd"]``
    / ``spent["<part> bwd"]``; the Functions are restored on exit."""
    saved = {}
    for part, function in ((part, function) for part, functions in PARTS.items() for function in functions):
        for method, short in (("forward", "fwd"), ("backward", "bwd")):
            original = function.__dict__[method]
            saved[(function, method)] = original

            def timed(*args, _call=original.__func__, _key=f"{part} {short}"):
                begin = time.perf_counter()
                result = _call(*args)
                spent[_key] += time.perf_counter() - begin
                return result

            setattr(function, method, staticmethod(timed))
    try:
        yield
    finally:
        for (function, method), original in saved.items():
            setattr(function, method, original)


def measure(sizes: tuple[str, ...], rounds: int) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for size in sizes:
        cells = {label: cell for _, label, cell in seeded_cells((size,), ("AGaLiTe", REFERENCE))}
        forms = {"eager": cells["AGaLiTe"], "compile_training": copy.deepcopy(cells["AGaLiTe"]).compile_training()}
        steps: dict[str, Callable[[], None]] = {
            form: training_step(cell, torch.device("cpu"), SEQ_LEN, BATCH) for form, cell in forms.items()
        }
        steps[REFERENCE] = training_step(cells[REFERENCE], torch.device("cpu"), SEQ_LEN, BATCH)
        for step in steps.values():  # warm up (and compile)
            step()
            step()
        totals: dict[str, list[float]] = defaultdict(list)
        parts: dict[str, dict[str, list[float]]] = {form: defaultdict(list) for form in forms}
        for _ in range(rounds):
            for form, step in steps.items():
                spent: dict[str, float] = defaultdict(float)
                with clocked_parts(spent):
                    begin = time.perf_counter()
                    step()
                    totals[form].append(time.perf_counter() - begin)
                if form in parts:
                    for key, seconds in spent.items():
                        parts[form][key].append(seconds)
                    parts[form]["rest"].append(totals[form][-1] - sum(spent.values()))
        reference_ms = 1e3 * statistics.median(totals[REFERENCE])
        for form in (*forms, REFERENCE):
            row: dict = {"size": size, "form": form}
            row["step_ms"] = 1e3 * statistics.median(totals[form])
            row["ratio"] = row["step_ms"] / reference_ms
            for key, values in parts.get(form, {}).items():
                row[key] = 1e3 * statistics.median(values)
            rows.append(row)
            print(f"{size:>5} {form:>16}: step {row['step_ms']:.1f} ms ({row['ratio']:.2f}x)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args, sizes = parse_size_arguments(argv, __doc__, RESULTS)
    rows = measure(sizes, 3 if args.quick else ROUNDS)

    def both(part: str) -> Callable[[dict], str]:
        return lambda r: f"{r[part + ' fwd']:.1f} / {r[part + ' bwd']:.1f}" if part + " fwd" in r else "-"

    table = write_report(
        rows,
        args.out,
        "step_parts_quick" if args.quick else "step_parts",
        "AGaLiTe's training step, part by part",
        f"torch {torch.__version__}, 1 CPU thread, {machine()}. "
        f"Forward + backward over T={SEQ_LEN}, batch {BATCH}: the efficiency "
        "table's step and sizes, AGaLiTe eager and with compile_training, and GTrXL-128's whole step for scale; "
        "ms, median over rounds in which the three steps take turns. Each part is its autograd Function's forward / "
        "backward (all layers together); rest is the step less the parts. Made by "
        f"`{command_line('benchmarks.probes.step_parts', argv)}`",
        [
            ("size:", lambda r: r["size"]),
            ("form:", lambda r: r["form"]),
            ("step ms", lambda r: f"{r['step_ms']:.1f}"),
            (f"vs {REFERENCE}", lambda r: f"{r['ratio']:.2f}x"),
            *[(f"{part} fwd / bwd", both(part)) for part in PARTS],
            ("rest", lambda r: f"{r['rest']:.1f}" if "rest" in r else "-"),
        ],
    )
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
