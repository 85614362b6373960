"""Is the cue there for PPO to find? What a cell carries of the cue at initialisation, before training.

On noisy cue recall (4 cues, 4 uniform noise dimensions, the memory suite's recall tasks) a freshly
built cell reads fresh episodes; a linear probe (softmax regression, held-out half) then tries to
name the cue from

* ``read``: the first layer's memory read at the query step, what the mixer hands the block (the
  output projection's result, before the block's GRU gate), for the transformer cells;
* ``output``: the cell's output at the query step, what the policy and value heads see.

The policy gradient can only teach a memory what the heads can already see a trace of: a cue that is
in the read but not in the output is a cue the block throws away. Chance is 0.25. No training, so
the whole table takes a minute or two.

    python -m benchmarks.probes.init_probe                       # every configuration, delays 10 and 30
    python -m benchmarks.probes.init_probe --configs "AGaLiTe" "AGaLiTe (no read norm)" --delays 10

Writes ``init_probe.md`` / ``.csv`` under ``benchmarks/results/probes/``.
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.learning import SMALL
from benchmarks.memory_suite import NOISY_RECALL
from benchmarks.probes.recall_diagnostics import fresh_episodes, probe_accuracy
from benchmarks.report import command_line, write_report

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
#: label -> (cell, cell_kwargs): the memory suite's sizes; the default and each earlier choice of
#: the read and the gates spelled out
CONFIGS: dict[str, tuple[str, dict]] = {
    "AGaLiTe": ("agalite", dict(SMALL, eta=4, r=2)),
    "AGaLiTe (long gates)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="long", read_merge="gated")),
    "AGaLiTe (residual read)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="per_head", read_merge="residual")),
    "AGaLiTe (gated read)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="per_head", read_merge="gated")),
    "AGaLiTe (gates -3)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="slower", read_merge="gated")),
    "AGaLiTe (no read norm)": ("agalite", dict(SMALL, eta=4, r=2, gate_init="slower", read_norm="none", read_merge="gated")),
    "AGaLiTe (no read norm, gates -2)": (
        "agalite",
        dict(SMALL, eta=4, r=2, read_norm="none", gate_init="slow", read_merge="gated"),
    ),
    "AGaLiTe (paper)": ("agalite", dict(SMALL, eta=4, r=2, variant="paper")),
    "GaLiTe": ("galite", dict(SMALL, eta=4)),
    "GaLiTe (residual read)": ("galite", dict(SMALL, eta=4, gate_init="long", read_merge="residual")),
    "GaLiTe (gated read)": ("galite", dict(SMALL, eta=4, gate_init="long", read_merge="gated")),
    "GaLiTe (gates -3)": ("galite", dict(SMALL, eta=4, gate_init="slower", read_merge="gated")),
    "GaLiTe (no read norm)": ("galite", dict(SMALL, eta=4, gate_init="slower", read_norm="none", read_merge="gated")),
    "GTrXL": ("gtrxl", dict(SMALL, memory_len=64)),
    "LSTM": ("lstm", dict(hidden_size=128)),
}


@lru_cache(maxsize=16)  # every configuration reads the same episodes
def episodes(delay: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` fresh CueRecall episodes ``(delay + 2, count, obs_dim)`` and their cues."""
    return fresh_episodes(dict(NOISY_RECALL, delay=delay), count, seed)


def measure(cell_name: str, cell_kwargs: dict, delay: int, seed: int, count: int) -> dict[str, float]:
    """Probe accuracies at the query step for one freshly built cell (seed ``seed``)."""
    import torch

    from sb3_rtx.cells import make_cell

    obs, cues = episodes(delay, count, seed)
    torch.manual_seed(seed)
    cell = make_cell(cell_name, obs.shape[-1], **cell_kwargs)
    captured: dict[str, Any] = {}
    blocks = getattr(cell, "blocks", None)
    handle = None
    if blocks is not None:  # the first mixer's output, before the block's GRU gate
        handle = blocks[0].mixer.register_forward_hook(lambda _m, _a, out: captured.__setitem__("read", out[0]))
    starts = torch.zeros(obs.shape[:2])
    starts[0] = 1.0
    try:
        with torch.no_grad():
            output, _ = cell(torch.as_tensor(obs), cell.initial_state(count), starts)
    finally:
        if handle is not None:
            handle.remove()
    labels = torch.as_tensor(cues)
    result = {"output": probe_accuracy(output[-1], labels)}
    result["read"] = probe_accuracy(captured["read"][-1], labels) if "read" in captured else float("nan")
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--delays", nargs="+", type=int, default=[10, 30])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--episodes", type=int, default=8000, help="per seed, half of them to fit the probe")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="smoke run: two configurations, delay 10, 1 seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.delays, args.seeds, args.episodes = ["AGaLiTe", "LSTM"], [10], [0], 400
    import torch

    torch.set_num_threads(1)
    rows = []
    for label in args.configs:
        cell_name, cell_kwargs = CONFIGS[label]
        row: dict[str, Any] = {"config": label}
        for delay in args.delays:
            per_seed = [measure(cell_name, cell_kwargs, delay, seed, args.episodes) for seed in args.seeds]
            for where in ("read", "output"):
                values = [m[where] for m in per_seed]
                row[f"{where}_{delay}"] = float(np.mean(values))
                row[f"{where}_{delay}_seeds"] = " ".join(f"{v:.2f}" for v in values)
        print(row, flush=True)
        rows.append(row)

    def cell(row: dict, key: str) -> str:
        return "-" if np.isnan(row[key]) else f"{row[key]:.2f} ({row[key + '_seeds']})"

    columns: list[tuple[str, Any]] = [("config:", lambda r: r["config"])]
    for delay in args.delays:
        for where in ("read", "output"):
            columns.append((f"{where}, delay {delay}", lambda r, k=f"{where}_{delay}": cell(r, k)))
    table = write_report(
        rows,
        args.out,
        "init_probe_quick" if args.quick else "init_probe",
        "Cue information at initialisation",
        f"Held-out accuracy of a linear probe naming the cue (chance 0.25) at the query step of noisy cue recall "
        f"({NOISY_RECALL}), from a freshly built cell: from the first layer's memory read (before the block's GRU "
        f"gate) and from the cell's output. Cells at the memory suite's sizes {SMALL}; {args.episodes} episodes per "
        f"seed, half to fit the probe; mean over seeds {args.seeds}, each seed in brackets. "
        f"Made by `{command_line('benchmarks.probes.init_probe', argv)}`",
        columns,
    )
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
