"""Efficiency of the cells: acting cost, memory and training cost, AGaLiTe / GaLiTe vs GTrXL vs LSTM.

For every cell, at the paper's T-Maze size (4 layers, d_model 128, 4 heads, d_head 64, d_ffc 128,
eta 8, r 2; LSTM-256) and at a small size (2 layers, d_model 64, 2 heads, d_head 32, d_ffc 64,
eta 4, r 2; LSTM-64), with GTrXL at memory_len 32, 64, 128 and 256, it measures in one run:

* acting cost: wall time of one acting step (T=1, no grad) at batch 1 and batch 64, the median of
  many repeats after warm-up (cells take turns in runs of 10 steps, see :func:`interleaved_ms`),
  from a state that has seen a full memory (GTrXL attends over all its slots); and the FLOPs of
  one step at batch 1;
* memory: state bytes per env (``state_numel`` x 4 bytes, float32), peak memory of the acting step
  (batch 64) and of a training step (forward + backward over T=128, batch 16);
* training cost: wall time of that training step (the multi-step form), and its FLOPs;
* compiled acting: AGaLiTe's and GTrXL M=128's acting step again with ``compile_acting()``
  (``torch.compile``, inductor with its C++ wrapper), both compiled so the comparison stays fair,
  with the seconds the first (compiling) step took. ``--no-compile`` skips it.
* compiled training: the same two cells' training step again, compiled: AGaLiTe with
  ``compile_training()`` (its key side's chunk work as fused kernels), GTrXL M=128, which has
  no compiled form in the library, with its whole forward through ``torch.compile`` (what a user
  could do; inductor fuses its element-wise ops and the backward's too), with the seconds the first
  (compiling) step took, and each compiled step's peak memory. ``--no-compile`` skips it too.

How it measures:

* time on CPU: ``time.perf_counter`` around each call; on CUDA: CUDA events, synchronised.
* peak memory on CPU: ``torch.profiler`` with ``profile_memory=True`` records every allocation and
  free of torch's CPU allocator during one step; the peak is the largest running sum of those
  events (bytes allocated by the step beyond what was live before it: activations, saved tensors,
  gradients, kernel workspaces). On CUDA: ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``, minus the bytes allocated before the step. Parameters and the
  incoming state are excluded on both.
* FLOPs: ``torch.utils.flop_counter.FlopCounterMode``, which counts only matmul-like ops (mm, bmm,
  addmm, attention, convolutions), not element-wise ops or reductions; for the linear-attention
  cells a large share of the real work is element-wise (the eta * d-wide gates and decays), so
  read FLOPs as a lower bound and prefer wall time. The counter does not know torch's CPU attention
  kernel (GTrXL) nor its CPU LSTM kernel: attention is counted with torch's own SDPA formulas
  (registered below), the LSTM analytically (2 FLOPs per weight per step and env, x3 for training).

Ratios are to GTrXL with memory_len 128 at the same size, measured in the same run. Every device
found is measured: the CPU always, CUDA too when available.

Run from the repository root:

    python -m benchmarks.efficiency            # under 10 minutes on a 2-core CPU
    python -m benchmarks.efficiency --quick    # a smoke run (seconds): few repeats, T=16 training
    python -m benchmarks.efficiency --threads 1   # one CPU thread -> efficiency_1threads.*
    python -m benchmarks.efficiency --device cuda # CUDA only -> efficiency_cuda.*

It writes ``benchmarks/results/efficiency.{csv,md,png}`` (``efficiency_quick.*`` with ``--quick``,
``efficiency_cuda.*`` with ``--device cuda``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from benchmarks.report import command_line, machine, write_report
from sb3_rtx.cells import make_cell

RESULTS = Path(__file__).resolve().parent / "results"
INPUT_DIM = 32
BYTES_PER_FLOAT = 4  # float32
MEMORY_LENS = (32, 64, 128, 256)
REFERENCE = "GTrXL M=128"
SIZES: dict[str, dict] = {
    "paper": dict(n_layers=4, d_model=128, n_heads=4, d_head=64, d_ffc=128),
    "small": dict(n_layers=2, d_model=64, n_heads=2, d_head=32, d_ffc=64),
}
LINEAR_EXTRA = {"paper": dict(eta=8, r=2), "small": dict(eta=4, r=2)}
LSTM_HIDDEN = {"paper": 256, "small": 64}
ACT_BATCHES = (1, 64)
ACT_BLOCK = 10  # consecutive acting calls per cell and round
TRAIN_BATCH = 16
#: cells whose acting step is also measured compiled (both sides of the headline ratio)
COMPILED = ("AGaLiTe", REFERENCE)


def configs(size: str) -> list[tuple[str, str, dict]]:
    """(label, cell name, keywords) of every cell measured at one size."""
    base, extra = SIZES[size], LINEAR_EXTRA[size]
    rows = [("AGaLiTe", "agalite", {**base, **extra}), ("GaLiTe", "galite", {**base, "eta": extra["eta"]})]
    rows += [(f"GTrXL M={m}", "gtrxl", {**base, "memory_len": m}) for m in MEMORY_LENS]
    rows.append(("LSTM", "lstm", {"hidden_size": LSTM_HIDDEN[size]}))
    return rows


# ------------------------------------------------------------------ timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_ms(
    fns: dict[str, Callable[[], object]],
    device: torch.device,
    repeats: int,
    warmup: int,
    budget_s: float,
    min_rounds: int = 5,
    block: int = 1,
) -> tuple[dict[str, float], int]:
    """Median wall time (ms) of one call of each function, timed in rounds (``block`` consecutive
    calls of each per round) so that a change in machine load hits every cell alike and the ratios
    stay fair. Runs up to ``repeats`` rounds, fewer when ``budget_s`` runs out (at least
    ``min_rounds``), after ``warmup`` calls each.

    ``block > 1`` times each function warm, as an acting loop runs it: alternating single calls of
    two models evicts each one's weights and code from the caches between its calls, which slows a
    sub-millisecond step several-fold and measures the neighbour more than the cell."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {key: [] for key in fns}
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while rounds < repeats and (rounds < min_rounds or time.perf_counter() < deadline):
        for key, fn in fns.items():
            for _ in range(block):
                times[key].append(_time_call_ms(fn, device))
        rounds += 1
    return {key: statistics.median(values) for key, values in times.items()}, rounds


def _time_call_ms(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    begin = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - begin)


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by one call of ``fn`` beyond what was live before it (see module docstring)."""
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type().name == "CPU"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def _cpu_attention_flops(query, key, value, *args, **kwargs) -> int:
    """(the counter hands formulas the shapes of the op's tensor arguments)"""
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad_out, query, key, value, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


#: torch's counter knows the CUDA attention kernels but not the CPU one GTrXL runs on (it would count 0)
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
}


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        fn()
    return int(counter.get_total_flops())


def flops_and_peak(fn: Callable[[], object], device: torch.device) -> tuple[int, int]:
    """FLOPs and peak bytes of one call, from a single call (the counter allocates nothing)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        peak = peak_bytes(fn, device)
    return int(counter.get_total_flops()), peak


def lstm_flops(cell, seq_len: int, batch: int, backward: bool) -> int:
    """Matmul FLOPs of an LSTM (torch's CPU LSTM kernel is not seen by the counter): 2 per weight per
    step and env; a backward pass costs about twice the forward."""
    weights = sum(p.numel() for name, p in cell.lstm.named_parameters() if name.startswith("weight"))
    return 2 * weights * seq_len * batch * (3 if backward else 1)


# ----------------------------------------------------------- measurements


class Settings:
    def __init__(self, quick: bool, compiled: bool = True) -> None:
        self.compiled = compiled
        self.sizes = ("small",) if quick else tuple(SIZES)
        # acting: up to 300 rounds or 6 s per size and batch; training: 5 rounds (a GaLiTe step at
        # the paper size takes seconds on a 2-core CPU)
        # acting: rounds of ACT_BLOCK consecutive calls per cell (see interleaved_ms)
        self.act_repeats, self.train_repeats = (5, 1) if quick else (30, 5)
        self.act_budget, self.train_budget = (0.2, 0.0) if quick else (6.0, 0.0)
        self.train_len, self.train_batch = (16, 4) if quick else (128, TRAIN_BATCH)
        self.quick = quick

    def history(self, kwargs: dict) -> int:
        """Steps run before acting, so GTrXL's memory is full."""
        return 40 if self.quick else 2 * kwargs.get("memory_len", 32)


def acting_step(cell, device: torch.device, batch: int, history: int, input_dim: int = INPUT_DIM) -> Callable[[], None]:
    """One acting step (T=1, no grad) from a state that has seen ``history`` steps; each call advances it."""
    x = torch.randn(1, batch, input_dim, device=device)
    starts = torch.zeros(1, batch, device=device)
    with torch.inference_mode():
        _, state = cell(torch.randn(history, batch, input_dim, device=device), None, None)
    holder = [state]

    def step() -> None:
        with torch.inference_mode():
            _, holder[0] = cell(x, holder[0], starts)

    return step


def training_step(cell, device: torch.device, seq_len: int, batch: int) -> Callable[[], None]:
    """Forward + backward over ``seq_len`` steps with a few episode starts inside (the multi-step form)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(seq_len, batch, INPUT_DIM, generator=gen).to(device)
    starts = (torch.rand(seq_len, batch, generator=gen) < 0.02).float().to(device)
    with torch.no_grad():
        _, state = cell(torch.randn(seq_len, batch, INPUT_DIM, generator=gen).to(device), None, None)

    def step() -> None:
        cell.zero_grad(set_to_none=True)
        y, _ = cell(x, state, starts)
        y.square().mean().backward()

    return step


def measure_size(device: torch.device, size: str, settings: Settings) -> list[dict]:
    cells = {}
    rows = {}
    for label, name, kwargs in configs(size):
        torch.manual_seed(0)
        cells[label] = cell = make_cell(name, INPUT_DIM, **kwargs).to(device)
        rows[label] = {"device": device.type, "size": size, "cell": label, "state_numel": cell.state_numel}
        rows[label]["state_bytes"] = cell.state_numel * BYTES_PER_FLOAT
    kwargs_of = {label: kwargs for label, _, kwargs in configs(size)}

    for batch in ACT_BATCHES:
        steps = {label: acting_step(cell, device, batch, settings.history(kwargs_of[label])) for label, cell in cells.items()}
        medians, rounds = interleaved_ms(steps, device, settings.act_repeats, 10, settings.act_budget, block=ACT_BLOCK)
        for label, step in steps.items():
            rows[label][f"act_b{batch}_ms"] = medians[label]
            rows[label][f"act_b{batch}_repeats"] = rounds * ACT_BLOCK
            if batch == 1:
                is_lstm = label == "LSTM"
                rows[label]["act_b1_flops"] = lstm_flops(cells[label], 1, 1, False) if is_lstm else count_flops(step)
            if batch == ACT_BATCHES[-1]:
                rows[label][f"act_b{batch}_peak_bytes"] = peak_bytes(step, device)

    if settings.compiled:
        measure_compiled_acting(device, cells, rows, kwargs_of, settings)

    steps = {label: training_step(cell, device, settings.train_len, settings.train_batch) for label, cell in cells.items()}
    compiled = compiled_training_steps(device, cells, rows, settings) if settings.compiled else {}
    # the compiled steps take turns with the eager ones: one run's load hits both alike
    repeats = settings.train_repeats
    medians, rounds = interleaved_ms({**steps, **compiled}, device, repeats, 1, settings.train_budget, min_rounds=repeats)
    for key in compiled:
        rows[key.removesuffix(COMPILED_SUFFIX)]["train_compiled_ms"] = medians[key]
    for label, step in steps.items():
        row = rows[label]
        row.update(
            train_ms=medians[label], train_repeats=rounds, train_seq_len=settings.train_len, train_batch=settings.train_batch
        )
        cells[label].zero_grad(set_to_none=True)  # gradients of earlier calls would count as live memory
        row["train_flops"], row["train_peak_bytes"] = flops_and_peak(step, device)
        if label == "LSTM":
            row["train_flops"] = lstm_flops(cells[label], settings.train_len, settings.train_batch, True)
        cells[label].zero_grad(set_to_none=True)
        print(
            f"{device.type} {size:>5} {label:>12}: act B=1 {row['act_b1_ms']:.3f} ms, B=64 {row['act_b64_ms']:.3f} ms, "
            f"train {row['train_ms']:.1f} ms, state {row['state_bytes'] / 1024:.1f} KiB, "
            f"train peak {row['train_peak_bytes'] / 2**20:.1f} MiB",
            flush=True,
        )
    return list(rows.values())


def measure_compiled_acting(device: torch.device, cells: dict, rows: dict, kwargs_of: dict, settings: Settings) -> None:
    """``act_b<B>_compiled_ms`` and ``compile_b<B>_s`` for the :data:`COMPILED` cells (copies, so
    the eager cells stay eager). ``--quick`` compiles at B=1 only: on a machine with a cold inductor
    cache each compile costs tens of seconds, and the B=64 graph runs the same code."""
    for batch in ACT_BATCHES[:1] if settings.quick else ACT_BATCHES:
        steps = {}
        for label in COMPILED:
            cell = copy.deepcopy(cells[label]).compile_acting()
            steps[label] = step = acting_step(cell, device, batch, settings.history(kwargs_of[label]))
            begin = time.perf_counter()
            step()  # compiles
            sync(device)
            rows[label][f"compile_b{batch}_s"] = time.perf_counter() - begin
            if not cell.acting_compiled:  # no C++ compiler, ...: the warning said why
                print(f"{label}: torch.compile failed, compiled acting not measured", flush=True)
                return
        medians, _ = interleaved_ms(steps, device, settings.act_repeats, 10, settings.act_budget, block=ACT_BLOCK)
        for label, median in medians.items():
            rows[label][f"act_b{batch}_compiled_ms"] = median


#: the key of a compiled training step in the training run's turns
COMPILED_SUFFIX = " (compiled)"


def compiled_training_steps(device: torch.device, cells: dict, rows: dict, settings: Settings) -> dict:
    """Training steps of compiled copies of the :data:`COMPILED` cells, keyed ``label + COMPILED_SUFFIX``,
    each compiled by one first call (``compile_train_s``): AGaLiTe through ``compile_training()``, GTrXL
    (no compiled form of its own) with its forward compiled. Empty where compiling failed."""
    steps = {}
    for label in COMPILED:
        cell = copy.deepcopy(cells[label])
        if cell.has_compiled_training:
            cell.compile_training()
        else:
            cell._forward = torch.compile(cell._forward)
        step = training_step(cell, device, settings.train_len, settings.train_batch)
        begin = time.perf_counter()
        step()  # compiles
        sync(device)
        rows[label]["compile_train_s"] = time.perf_counter() - begin
        if cell.has_compiled_training and not cell.training_compiled:  # the warning said why
            print(f"{label}: torch.compile failed, compiled training not measured", flush=True)
            return {}
        cell.zero_grad(set_to_none=True)  # gradients of earlier calls would count as live memory
        rows[label]["train_compiled_peak_bytes"] = peak_bytes(step, device)
        cell.zero_grad(set_to_none=True)
        steps[label + COMPILED_SUFFIX] = step
    return steps


def measure(device: torch.device, settings: Settings) -> list[dict]:
    rows = [row for size in settings.sizes for row in measure_size(device, size, settings)]
    add_ratios(rows)
    return rows


RATIO_FIELDS = ("act_b1_ms", "act_b64_ms", "act_b1_flops", "state_bytes", "act_b64_peak_bytes", "train_ms", "train_peak_bytes")
COMPILED_FIELDS = ("act_b1_compiled_ms", "act_b64_compiled_ms", "train_compiled_ms", "train_compiled_peak_bytes")


def add_ratios(rows: list[dict]) -> None:
    """``<field>_ratio``: each row's value over GTrXL M=128's at the same device and size."""
    for row in rows:
        reference = next(
            r for r in rows if r["cell"] == REFERENCE and r["size"] == row["size"] and r["device"] == row["device"]
        )
        for field in RATIO_FIELDS + COMPILED_FIELDS:
            if field in row and field in reference:
                row[f"{field}_ratio"] = row[field] / reference[field] if reference[field] else float("nan")


# ------------------------------------------------------------------ output


def plot(rows: list[dict], path: Path) -> None:
    """Cost vs GTrXL memory length, AGaLiTe / GaLiTe / LSTM as flat lines; one row of panels per size and device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("act_b1_ms", "acting step, batch 1 (ms)"),
        ("act_b64_ms", "acting step, batch 64 (ms)"),
        ("train_ms", "training step (ms)"),
        ("state_bytes", "state per env (KiB)"),
        ("train_peak_bytes", "training step peak (MiB)"),
    ]
    scale = {"state_bytes": 1 / 1024, "train_peak_bytes": 1 / 2**20}
    groups = sorted({(r["device"], r["size"]) for r in rows}, key=lambda g: (g[0], list(SIZES).index(g[1])))
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(4 * len(panels), 3.2 * len(groups)), squeeze=False)
    styles = {"AGaLiTe": ("tab:red", "-"), "GaLiTe": ("tab:orange", "--"), "LSTM": ("tab:gray", ":")}
    for i, (device, size) in enumerate(groups):
        group = [r for r in rows if r["device"] == device and r["size"] == size]
        gtrxl = sorted((r for r in group if r["cell"].startswith("GTrXL")), key=lambda r: int(r["cell"].split("=")[1]))
        lens = [int(r["cell"].split("=")[1]) for r in gtrxl]
        for j, (field, title) in enumerate(panels):
            ax = axes[i][j]
            factor = scale.get(field, 1.0)
            ax.plot(lens, [r[field] * factor for r in gtrxl], "o-", color="tab:blue", label="GTrXL")
            for r in group:
                if r["cell"] in styles:
                    color, line = styles[r["cell"]]
                    ax.axhline(r[field] * factor, color=color, linestyle=line, label=r["cell"])
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(lens, [str(m) for m in lens])
            ax.set_xlabel("GTrXL memory_len")
            ax.set_title(f"{title}\n{size} size, {device}", fontsize=9)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true",
        help="few repeats, T=16 training, compiled acting at B=1 only (a smoke run, numbers are noisy)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for efficiency.{csv,md,png}")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all", help="all: the CPU, and CUDA if present")
    parser.add_argument(
        "--no-compile", action="store_true", help="skip the compiled acting step (needs a C++ compiler on CPU)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's own choice); results go to efficiency_<N>threads.* "
        "(one thread is how RL runs usually act: one process per run or per env worker)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    devices = []
    if args.device in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if not devices:
        parser.error("--device cuda: no CUDA device available")

    settings = Settings(args.quick, compiled=not args.no_compile)
    rows = [row for device in devices for row in measure(device, settings)]
    name = "efficiency_quick" if args.quick else "efficiency"
    if args.device == "cuda":  # a CUDA-only run must not overwrite the CPU table
        name += "_cuda"
    if args.threads is not None:
        name += f"_{args.threads}threads"
    train_len, train_batch = rows[0]["train_seq_len"], rows[0]["train_batch"]
    elapsed = time.perf_counter() - begin
    cuda = f"; CUDA: {torch.cuda.get_device_name()}" if any(d.type == "cuda" for d in devices) else ""
    description = (
        f"Made by `{command_line('benchmarks.efficiency', argv)}`. "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {machine()}{cuda}; "
        f"input_dim {INPUT_DIM}, float32. Sizes: paper = 4 layers, d_model 128, 4 heads, d_head 64, d_ffc 128, eta 8, r 2, "
        f"LSTM-256; small = 2 layers, d_model 64, 2 heads, d_head 32, d_ffc 64, eta 4, r 2, LSTM-64. "
        f"Acting: median wall time of one step (T=1, no grad; cells take turns in runs of {ACT_BLOCK} steps), "
        "FLOPs at batch 1 (matmul-like ops only), peak at batch 64. "
        f"Training: forward + backward over T={train_len}, batch {train_batch}. Peak = bytes allocated beyond what was live "
        f"before the step (CPU: torch.profiler allocator events; CUDA: max_memory_allocated). "
        f"Ratios (x) are to {REFERENCE} at the same size and device. "
        f"{'--quick run, numbers are noisy' if args.quick else 'Full run'}: {elapsed:.0f} s."
    )

    def ratio(field: str) -> Callable[[dict], str]:
        return lambda r: f"{r[field + '_ratio']:.2f}x" if field + "_ratio" in r else "-"

    def compiled_ms(batch: int) -> Callable[[dict], str]:
        field, seconds = f"act_b{batch}_compiled_ms", f"compile_b{batch}_s"
        return lambda r: f"{r[field]:.3f} ({r[seconds]:.0f} s)" if field in r else "-"

    def compiled_train_ms(r: dict) -> str:
        return f"{r['train_compiled_ms']:.1f} ({r['compile_train_s']:.0f} s)" if "train_compiled_ms" in r else "-"

    def compiled_train_peak(r: dict) -> str:
        return f"{r['train_compiled_peak_bytes'] / 2**20:.1f}" if "train_compiled_peak_bytes" in r else "-"

    table = write_report(
        rows,
        args.out,
        name,
        "Cell efficiency: acting, memory, training",
        description,
        [
            ("device:", lambda r: r["device"]),
            ("size:", lambda r: r["size"]),
            ("cell:", lambda r: r["cell"]),
            ("state KiB / env", lambda r: f"{r['state_bytes'] / 1024:.1f}"),
            ("act ms B=1", lambda r: f"{r['act_b1_ms']:.3f}"),
            ("act ms B=64", lambda r: f"{r['act_b64_ms']:.3f}"),
            ("act MFLOP B=1", lambda r: f"{r['act_b1_flops'] / 1e6:.2f}"),
            ("act peak MiB B=64", lambda r: f"{r['act_b64_peak_bytes'] / 2**20:.2f}"),
            ("train ms", lambda r: f"{r['train_ms']:.1f}"),
            ("train GFLOP", lambda r: f"{r['train_flops'] / 1e9:.2f}"),
            ("train peak MiB", lambda r: f"{r['train_peak_bytes'] / 2**20:.1f}"),
            ("act B=1", ratio("act_b1_ms")),
            ("act B=64", ratio("act_b64_ms")),
            ("state", ratio("state_bytes")),
            ("train", ratio("train_ms")),
            ("train peak", ratio("train_peak_bytes")),
            ("compiled act ms B=1 (compile)", compiled_ms(1)),
            ("compiled act ms B=64 (compile)", compiled_ms(64)),
            ("compiled B=1", ratio("act_b1_compiled_ms")),
            ("compiled B=64", ratio("act_b64_compiled_ms")),
            ("compiled train ms (compile)", compiled_train_ms),
            ("compiled train", ratio("train_compiled_ms")),
            ("compiled train peak MiB", compiled_train_peak),
            ("compiled train peak", ratio("train_compiled_peak_bytes")),
        ],
    )
    plot(rows, args.out / f"{name}.png")
    print()
    print(table)
    print(f"wrote {args.out / name}.{{csv,md,png}} in {elapsed:.0f} s")
    return rows


if __name__ == "__main__":
    main()
