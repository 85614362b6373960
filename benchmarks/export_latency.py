"""Latency of an exported policy step: onnxruntime, AOTInductor and TorchScript against eager and compiled PyTorch.

For AGaLiTe at the paper's T-Maze size (4 layers, d_model 128, 4 heads, d_head 64, d_ffc 128, eta 8,
r 2), GTrXL at the same size with memory_len 128 and an LSTM of 256 units, each inside an RtxPPO
policy (32 observation dimensions, 4 discrete actions, heads of 64), it exports the acting step
with :mod:`sb3_rtx.export` and measures one step (observations, episode starts and state in; action,
value and state out) at batch 1 and batch 64:

* ``onnxruntime``: ``InferenceSession.run`` on the ``.onnx`` file (CPU provider, as many intra-op
  threads as torch uses), numpy arrays in and out; ``onnxruntime 1 thread``: the same with one
  intra-op thread, how a batch-1 deployment usually runs;
* ``aoti``: the AOTInductor ``.pt2`` package (:func:`sb3_rtx.export.export_aoti`, native code that
  C++ loads without Python), here called from Python through ``load_aoti``; skipped with
  ``--no-compile`` (it needs a C++ compiler);
* ``aoti C++``: the same package run by ``examples/aoti_cpp/run_policy.cpp`` in its ``--time`` mode
  (:mod:`benchmarks.cpp_runner`), no Python in the process: what a native deployment pays per step.
  Each cell's runs are separate processes, so instead of taking turns step by step the cells take
  turns process by process (three turns, the median of the three medians);
* ``torchscript``: the traced ``.pt`` module;
* ``eager``: the same step module in PyTorch, no grad;
* ``compiled``: that module through ``torch.compile`` (inductor, C++ wrapper on CPU, as
  ``compile_acting``); ``--no-compile`` skips it.

Each from a state that has seen 256 steps (GTrXL attends over a full memory); the median over
rounds in which the runtimes take turns (:func:`benchmarks.efficiency.interleaved_ms`). The file
sizes are those written. Ratios are to GTrXL (M=128) in the same runtime and batch.

    python -m benchmarks.export_latency            # a few minutes on a 2-core CPU
    python -m benchmarks.export_latency --quick    # a smoke run (small sizes, few repeats)
    python -m benchmarks.export_latency --threads 1   # one CPU thread -> export_latency_1threads.*

Writes ``benchmarks/results/export_latency.{csv,md}`` (``export_latency_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch
from gymnasium import spaces

from benchmarks import cpp_runner
from benchmarks.efficiency import interleaved_ms
from benchmarks.report import command_line, machine, write_report
from sb3_rtx.export import (
    build_step,
    export_aoti,
    export_onnx,
    export_torchscript,
    initial_state,
    load_aoti,
    load_torchscript,
)
from sb3_rtx.policies import RtxActorCriticPolicy

RESULTS = Path(__file__).resolve().parent / "results"
OBSERVATION_DIM = 32
PAPER = dict(n_layers=4, d_model=128, n_heads=4, d_head=64, d_ffc=128)
SMALL = dict(n_layers=1, d_model=32, n_heads=2, d_head=16, d_ffc=32)
REFERENCE = "GTrXL M=128"
BATCHES = (1, 64)
HISTORY = 256
#: processes per cell and batch for the ``aoti C++`` columns (the cells take turns), and the timed
#: rounds of 10 steps in each
NATIVE_TURNS, NATIVE_ROUNDS = 3, 60


def models(quick: bool) -> list[tuple[str, str, dict]]:
    base = SMALL if quick else PAPER
    return [
        ("AGaLiTe", "agalite", dict(base, eta=4 if quick else 8, r=2)),
        (REFERENCE, "gtrxl", dict(base, memory_len=128)),
        ("LSTM", "lstm", dict(hidden_size=64 if quick else 256)),
    ]


def make_policy(cell: str, cell_kwargs: dict) -> RtxActorCriticPolicy:
    torch.manual_seed(0)
    observation_space = spaces.Box(-1.0, 1.0, (OBSERVATION_DIM,), np.float32)
    return RtxActorCriticPolicy(
        observation_space, spaces.Discrete(4), lambda _: 0.0, net_arch=[64], cell=cell, cell_kwargs=cell_kwargs
    )


def export_files(policy: RtxActorCriticPolicy, folder: Path, aoti: bool) -> dict[str, Path]:
    """The policy exported once, with a dynamic batch, to ``policy.onnx``, ``policy.pt`` and (with
    ``aoti``) ``policy.pt2``."""
    files = {
        "onnx": export_onnx(policy, folder / "policy.onnx"),
        "torchscript": export_torchscript(policy, folder / "policy.pt"),
    }
    if aoti:
        files["aoti"] = export_aoti(policy, folder / "policy.pt2")
    return files


def runners(
    policy: RtxActorCriticPolicy, files: dict[str, Path], batch: int, compiled: bool, steps_file: Path | None = None
) -> tuple[dict[str, Callable], dict]:
    """One step function per runtime (each carries its own state), and the exported files' sizes; with
    ``steps_file``, the C++ runner's input there too (the same state and step)."""
    onnx_path, script_path = files["onnx"], files["torchscript"]
    rng = np.random.default_rng(0)
    history = rng.uniform(-1, 1, (HISTORY, batch, OBSERVATION_DIM)).astype(np.float32)
    obs = rng.uniform(-1, 1, (batch, OBSERVATION_DIM)).astype(np.float32)
    not_starting = np.zeros(batch, dtype=bool)

    def onnx_runner(threads: int) -> Callable[[], None]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        feeds_state = initial_state(session, batch)
        for t in range(HISTORY):  # fill the memory
            _, _, *new = session.run(None, {"obs": history[t], "episode_start": np.full(batch, t == 0), **feeds_state})
            feeds_state = dict(zip(feeds_state, new, strict=True))
        holder = [feeds_state]

        def step() -> None:
            _, _, *new = session.run(None, {"obs": obs, "episode_start": not_starting, **holder[0]})
            holder[0] = dict(zip(holder[0], new, strict=True))

        return step

    step_module = build_step(policy)
    torch_state = tuple(torch.as_tensor(a) for a in initial_state(onnx_path, batch).values())
    with torch.inference_mode():
        for t in range(HISTORY):
            _, _, *torch_state = step_module(torch.as_tensor(history[t]), torch.full((batch,), t == 0), *torch_state)
    obs_t, starts_t = torch.as_tensor(obs), torch.as_tensor(not_starting)
    if steps_file is not None:
        cpp_runner.write_steps(steps_file, (s.numpy() for s in torch_state), [(obs, not_starting)])

    def torch_runner(module: Callable) -> Callable[[], None]:
        holder = [tuple(torch_state)]

        def step() -> None:
            with torch.inference_mode():
                _, _, *new = module(obs_t, starts_t, *holder[0])
            holder[0] = tuple(new)

        return step

    steps = {
        "onnxruntime": onnx_runner(torch.get_num_threads()),
        # one intra-op thread: how a batch-1 deployment runs (threads cost more than they save there)
        "onnxruntime_1thread": onnx_runner(1),
        "torchscript": torch_runner(load_torchscript(script_path)),
        "eager": torch_runner(step_module),
    }
    sizes = {"onnx_kib": onnx_path.stat().st_size / 1024, "torchscript_kib": script_path.stat().st_size / 1024}
    if "aoti" in files:
        steps["aoti"] = torch_runner(load_aoti(files["aoti"]))
        sizes["aoti_kib"] = files["aoti"].stat().st_size / 1024
    if compiled:
        module = torch.compile(step_module, dynamic=False, options={"cpp_wrapper": True})
        begin = time.perf_counter()
        torch_runner(module)()  # compiles
        sizes["compile_s"] = time.perf_counter() - begin
        steps["compiled"] = torch_runner(module)
    return steps, sizes


def time_native(
    binary: Path, inputs: dict[tuple[str, int], tuple[Path, Path, int]], threads: int
) -> dict[tuple[str, int], float]:
    """The ``aoti C++`` times: for every (cell, batch) the median over :data:`NATIVE_TURNS` runner
    processes, the cells taking turns."""
    times: dict[tuple[str, int], list[float]] = {key: [] for key in inputs}
    for _ in range(NATIVE_TURNS):
        for key, (package, steps, n_state) in inputs.items():
            times[key].append(cpp_runner.median_step_ms(binary, package, steps, 1, n_state, NATIVE_ROUNDS, threads))
    return {key: statistics.median(values) for key, values in times.items()}


def measure(quick: bool, native: bool) -> list[dict]:
    """One row per cell: file sizes and every runtime's median ms at each batch (``native``: with the
    AOTInductor package, in Python and from C++, and compiled PyTorch)."""
    repeats, budget = (5, 0.2) if quick else (200, 8.0)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = cpp_runner.build(Path(tmp)) if native else None
        native_inputs: dict[tuple[str, int], tuple[Path, Path, int]] = {}  # (cell, batch) -> package, steps, n_state
        for label, cell, cell_kwargs in models(quick):
            policy = make_policy(cell, cell_kwargs)
            row: dict[str, Any] = {"cell": label, "state_kib": policy.state_numel * 4 / 1024}
            files = export_files(policy, Path(tmp) / cell, aoti=native)
            n_state = len(initial_state(files["onnx"], 1)) if native else 0  # the exported step's state inputs
            for batch in BATCHES:
                steps_file = Path(tmp) / cell / f"steps_b{batch}.bin" if native else None
                steps, sizes = runners(policy, files, batch, compiled=native, steps_file=steps_file)
                if steps_file is not None:
                    native_inputs[label, batch] = (files["aoti"], steps_file, n_state)
                times, _ = interleaved_ms(steps, torch.device("cpu"), repeats, warmup=3, budget_s=budget, block=10)
                row.update({f"{runtime}_b{batch}_ms": ms for runtime, ms in times.items()})
                row.update(sizes if batch == BATCHES[0] else {})
                if "compile_s" in sizes:
                    row[f"compile_b{batch}_s"] = sizes["compile_s"]
            rows.append(row)
            print(label, {key: round(value, 3) for key, value in row.items() if isinstance(value, float)}, flush=True)
        if binary is not None:
            native_ms = time_native(binary, native_inputs, torch.get_num_threads())
            for row in rows:
                for batch in BATCHES:
                    row[f"aoti_cpp_b{batch}_ms"] = native_ms[row["cell"], batch]
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (a smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-compile", action="store_true", help="skip compiled PyTorch (needs a C++ compiler)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and onnxruntime (default: torch's own choice); results go to export_latency_<N>threads.*",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    native = not args.no_compile and not args.quick
    if native and not cpp_runner.available():
        parser.error("the AOTInductor columns need g++ (or pass --no-compile)")
    rows = measure(args.quick, native)
    reference = next(row for row in rows if row["cell"] == REFERENCE)
    for row in rows:
        for key in [k for k in row if k.endswith("_ms")]:
            row[key.replace("_ms", "_ratio")] = row[key] / reference[key]

    runtimes = ["onnxruntime", "onnxruntime_1thread", *(["aoti", "aoti_cpp"] if native else []), "torchscript", "eager"]
    runtimes += ["compiled"] if native else []
    columns: list[tuple[str, Callable[[dict], str]]] = [
        ("cell:", lambda r: r["cell"]),
        ("state KiB / env", lambda r: f"{r['state_kib']:.1f}"),
        (".onnx KiB", lambda r: f"{r['onnx_kib']:.0f}"),
        (".pt KiB", lambda r: f"{r['torchscript_kib']:.0f}"),
        *([(".pt2 KiB", lambda r: f"{r['aoti_kib']:.0f}")] if native else []),
    ]
    for batch in BATCHES:
        for runtime in runtimes:
            field = f"{runtime}_b{batch}"
            header = f"{runtime.replace('_1thread', ' 1 thread').replace('_cpp', ' C++')} ms B={batch}"
            columns.append((header, lambda r, f=field: f"{r[f + '_ms']:.3f} ({r[f + '_ratio']:.2f}x)"))
    sizes_text = (
        "small sizes (--quick)"
        if args.quick
        else (
            "paper size: 4 layers, d_model 128, 4 heads, d_head 64, d_ffc 128; AGaLiTe eta 8, r 2; "
            "GTrXL memory_len 128; LSTM 256"
        )
    )
    description = (
        f"Made by `{command_line('benchmarks.export_latency', argv)}`. "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, {torch.get_num_threads()} CPU threads "
        "(onnxruntime intra-op threads the same, and 1 in the '1 thread' columns), "
        f"{machine()}. {sizes_text}; "
        f"an RtxPPO policy ({OBSERVATION_DIM} observations, 4 actions, heads of 64) exported with sb3_rtx.export. "
        f"One acting step (action, value, new state) from a state that has seen {HISTORY} steps: median ms, "
        f"runtimes taking turns in runs of 10 steps; (x) = ratio to {REFERENCE} in the same runtime and batch. "
        + (
            "aoti C++: the same package run by examples/aoti_cpp/run_policy.cpp --time (no Python in the process; "
            f"{NATIVE_TURNS} processes per cell and batch, the cells taking turns; median of their medians over "
            f"{NATIVE_ROUNDS} runs of 10 steps). "
            if native
            else ""
        )
        + f"{'--quick run, numbers are noisy' if args.quick else 'Full run'}: {time.perf_counter() - begin:.0f} s."
    )
    name = "export_latency_quick" if args.quick else "export_latency"
    if args.threads is not None:  # a table of its own, beside the default's (as benchmarks.efficiency)
        name += f"_{args.threads}threads"
    print(write_report(rows, args.out, name, "Exported policy step: latency and file size", description, columns))
    return rows


if __name__ == "__main__":
    main()
