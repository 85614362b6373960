"""Training throughput: sb3-contrib RecurrentPPO (LSTM) against RtxPPO with every cell.

Same env, n_envs, n_steps, batch size and epochs for every row. For each configuration it reports
frames per second over ``learn`` and where the time went: collecting rollouts (acting, one step at
a time) and training (PPO epochs over the rollout); the median of ``--repeats`` runs (3), made in
turns (every configuration once, then again), each run's fps in brackets: one run's fps moves by a
fifth between runs on a 2-core machine, and taking turns spreads slow spells over all rows.

    python -m benchmarks.train_throughput            # CartPoleNoVel-v1, about a minute on 2 cores
    python -m benchmarks.train_throughput --quick    # a smoke run
    python -m benchmarks.train_throughput --size paper   # AGaLiTe and GTrXL-128 at the paper's T-Maze size
    python -m benchmarks.train_throughput --device cuda  # every model on CUDA -> train_throughput_cuda.*
    python -m benchmarks.train_throughput --size paper --compile-training   # AGaLiTe compiled too
    python -m benchmarks.train_throughput --size paper --compile-training --compile-acting   # and every acting step

With ``--size paper`` the transformer rows are the paper's T-Maze size (4 layers, d_model 128, 4
heads, d_head 64, d_ffc 128; AGaLiTe eta 8, r 2; GTrXL memory_len 128), the sizes of the efficiency
table, and the table goes to ``train_throughput_paper.md``.

Writes ``benchmarks/results/train_throughput.md`` and ``.csv``; ``--profile agalite`` also runs the
first matching configuration once more under ``torch.profiler`` and writes its top operators,
split into acting (collect) and training, to ``train_throughput_profile.txt``.

RecurrentPPO runs twice: with its defaults (separate actor and critic LSTMs) and with one shared
LSTM, since RtxPPO shares one cell between actor and critic by default; compare like with like.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.report import command_line, machine, write_report
from sb3_rtx import RtxPPO

RESULTS = Path(__file__).resolve().parent / "results"
SMALL = dict(n_layers=2, d_model=64, n_heads=2, d_head=32, d_ffc=64)
PAPER = dict(n_layers=4, d_model=128, n_heads=4, d_head=64, d_ffc=128)


#: what a row compiled for acting adds to its label (:func:`_with`; its "fps vs GTrXL" is against GTrXL's
#: row so compiled)
COMPILED_ACTING = ", compile_acting"


def candidates(
    sequence_length: int, size: str = "small", compile_training: bool = False, compile_acting: bool = False
) -> list[tuple[str, Callable[..., Any], dict]]:
    rtx = lambda cell, **kw: dict(  # noqa: E731
        policy="MlpRtxPolicy", sequence_length=sequence_length, policy_kwargs=dict(cell=cell, cell_kwargs=kw)
    )
    rows = _candidates(rtx, size)
    if compile_training:  # AGaLiTe again, with its training form compiled, after its eager row
        at = next(i for i, (label, *_) in enumerate(rows) if "agalite" in label)
        rows.insert(at + 1, _with(rows[at], "compile_training"))
    if compile_acting:  # every transformer row again, right after it, acting compiled (RtxPPO's rollouts)
        expanded = []
        for row in rows:
            expanded.append(row)
            if row[1] is RtxPPO and "lstm" not in row[0]:
                expanded.append(_with(row, "compile_acting"))
        rows = expanded
    return rows


def _with(row: tuple[str, Callable[..., Any], dict], keyword: str) -> tuple[str, Callable[..., Any], dict]:
    """``row`` again with the policy keyword ``keyword=True``, named after it."""
    label, algo, kwargs = row
    return f"{label}, {keyword}", algo, dict(kwargs, policy_kwargs=dict(kwargs["policy_kwargs"], **{keyword: True}))


def _candidates(rtx: Callable[..., dict], size: str) -> list[tuple[str, Callable[..., Any], dict]]:
    recurrent_ppo = [
        ("RecurrentPPO LSTM-256 (separate actor/critic)", RecurrentPPO, dict(policy="MlpLstmPolicy")),
        (
            "RecurrentPPO LSTM-256 (shared)",
            RecurrentPPO,
            dict(policy="MlpLstmPolicy", policy_kwargs=dict(shared_lstm=True, enable_critic_lstm=False)),
        ),
        ("RtxPPO lstm-256", RtxPPO, rtx("lstm", hidden_size=256)),
    ]
    if size == "paper":
        return [
            *recurrent_ppo,
            ("RtxPPO agalite paper", RtxPPO, rtx("agalite", **PAPER, eta=8, r=2)),
            ("RtxPPO gtrxl paper M=128", RtxPPO, rtx("gtrxl", **PAPER, memory_len=128)),
        ]
    return [
        *recurrent_ppo,
        ("RtxPPO agalite small", RtxPPO, rtx("agalite", **SMALL, eta=4, r=2)),
        ("RtxPPO galite small", RtxPPO, rtx("galite", **SMALL, eta=4)),
        ("RtxPPO gtrxl small M=64", RtxPPO, rtx("gtrxl", **SMALL, memory_len=64)),
    ]


def timed_run(
    algo: Callable[..., Any],
    kwargs: dict,
    env_id: str,
    n_envs: int,
    n_steps: int,
    batch_size: int,
    n_epochs: int,
    timesteps: int,
    device: str = "cpu",
) -> dict[str, float]:
    env = make_vec_env(env_id, n_envs=n_envs, seed=0)
    kwargs = dict(kwargs)
    model = algo(
        kwargs.pop("policy"), env, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, seed=0, device=device, **kwargs
    )
    spent = {"collect": 0.0, "train": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                spent[name] += time.perf_counter() - start

        return wrapper

    model.collect_rollouts = timed("collect", model.collect_rollouts)
    model.train = timed("train", model.train)
    start = time.perf_counter()
    model.learn(timesteps)
    wall = time.perf_counter() - start
    return {"fps": model.num_timesteps / wall, "wall_s": wall, "collect_s": spent["collect"], "train_s": spent["train"]}


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's median over the runs of one configuration."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPoleNoVel-v1", help="gymnasium id (rl_zoo3's NoVel envs are registered)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--sequence-length", type=int, default=32, help="RtxPPO's truncated-BPTT length")
    parser.add_argument("--rollouts", type=int, default=4, help="rollouts per run")
    parser.add_argument("--quick", action="store_true", help="one short rollout per run, one run each")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration, in turns (the median is reported)")
    parser.add_argument("--profile", metavar="NAME", help="also profile the first run whose label contains NAME")
    parser.add_argument("--size", choices=["small", "paper"], default="small", help="the transformer cells' size")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu",
        help="where every model trains (SB3's 'auto' would pick CUDA where present, under a CPU table's name)",
    )  # fmt: skip
    parser.add_argument(
        "--compile-training", action="store_true",
        help="also AGaLiTe with compile_training=True (a row after its eager one; each run compiles in its "
        "first update, from inductor's disk cache after the first run)",
    )  # fmt: skip
    parser.add_argument(
        "--compile-acting", action="store_true",
        help="also every transformer cell with compile_acting=True (a row after each; its fps vs GTrXL is against "
        "GTrXL's compiled row)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    if args.env.endswith("NoVel-v1") or "NoVel" in args.env:
        import rl_zoo3.import_envs  # noqa: F401  (registers CartPoleNoVel-v1 and friends)
    if args.quick:
        args.n_steps, args.rollouts, args.sequence_length, args.batch_size = 32, 1, 16, 64
    timesteps = args.n_envs * args.n_steps * args.rollouts

    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    repeats = 1 if args.quick else args.repeats
    configurations = candidates(args.sequence_length, args.size, args.compile_training, args.compile_acting)
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in configurations}
    for _ in range(repeats):  # in turns: a slow spell of the machine falls on every configuration
        for label, algo, kwargs in configurations:
            torch.manual_seed(0)
            result = timed_run(algo, kwargs, args.env, args.n_envs, args.n_steps, args.batch_size, args.n_epochs,
                               timesteps, args.device)  # fmt: skip
            results[label].append(result)
            print(
                f"{label:>46}: fps {result['fps']:7.1f}  collect {result['collect_s']:6.1f}s  train {result['train_s']:6.1f}s",
                flush=True,
            )
    rows = [{"run": label, **median_run(runs), "fps_runs": [run["fps"] for run in runs]} for label, runs in results.items()]

    base = rows[0]["fps"]
    shared = rows[1]["fps"]
    # each row against GTrXL acting as it acts: eagerly, or compiled (its acting step only: GTrXL has no
    # compiled training form)
    gtrxl = {
        compiled: next(row["fps"] for row in rows if "gtrxl" in row["run"] and (COMPILED_ACTING in row["run"]) == compiled)
        for compiled in {COMPILED_ACTING in row["run"] for row in rows}
    }
    for row in rows:
        row["vs_recurrentppo"] = row["fps"] / base
        row["vs_recurrentppo_shared"] = row["fps"] / shared
        row["vs_gtrxl"] = row["fps"] / gtrxl[COMPILED_ACTING in row["run"]]
    runs_note = (
        f"Median of {repeats} runs each, made in turns (each run's fps in brackets). " if repeats > 1 else "One run each. "
    )
    table = write_report(
        rows,
        args.out,
        "train_throughput"
        + ("_paper" if args.size == "paper" else "")
        + ("_quick" if args.quick else "")
        + ("_cuda" if args.device == "cuda" else ""),
        f"Training throughput ({'CUDA: ' + torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'})",
        f"{args.env}, {args.n_envs} envs, n_steps {args.n_steps}, batch {args.batch_size}, {args.n_epochs} epochs, "
        f"{timesteps} steps per run, RtxPPO sequence_length {args.sequence_length}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {machine()}. {runs_note}"
        f"Made by `{command_line('benchmarks.train_throughput', argv)}`.",
        [
            ("run:", lambda r: r["run"]),
            (
                "fps",
                lambda r: f"{r['fps']:.0f}" + (f" ({' '.join(f'{x:.0f}' for x in r['fps_runs'])})" if repeats > 1 else ""),
            ),
            ("collect s", lambda r: f"{r['collect_s']:.1f}"),
            ("train s", lambda r: f"{r['train_s']:.1f}"),
            ("fps vs RecurrentPPO", lambda r: f"{r['vs_recurrentppo']:.2f}x"),
            ("fps vs RecurrentPPO (shared)", lambda r: f"{r['vs_recurrentppo_shared']:.2f}x"),
            ("fps vs GTrXL", lambda r: f"{r['vs_gtrxl']:.2f}x"),
        ],
    )
    print()
    print(table)
    if args.profile:
        label, algo, kwargs = next(
            c
            for c in candidates(args.sequence_length, args.size, args.compile_training, args.compile_acting)
            if args.profile in c[0]
        )
        profile_path = args.out / "train_throughput_profile.txt"
        profile_run(label, algo, kwargs, args, timesteps, profile_path)
        print(f"profile of {label!r} written to {profile_path}")
    return rows


def profile_run(
    label: str, algo: Callable[..., Any], kwargs: dict, args: argparse.Namespace, timesteps: int, path: Path
) -> None:
    """Profile one run, acting and training separately, and write the top operators of each."""
    from torch.profiler import profile, record_function

    env = make_vec_env(args.env, n_envs=args.n_envs, seed=0)
    kwargs = dict(kwargs)
    model = algo(
        kwargs.pop("policy"),
        env,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        seed=0,
        device=args.device,
        **kwargs,
    )
    collect, train = model.collect_rollouts, model.train

    def labelled(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            with record_function(name):
                return fn(*a, **kw)

        return wrapper

    model.collect_rollouts, model.train = labelled("collect_rollouts", collect), labelled("train", train)
    with profile() as prof:
        model.learn(timesteps)
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1e6 for e in events if e.key in ("collect_rollouts", "train")}
    text = [
        f"Profile of {label} on {args.env}: {timesteps} steps, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "time in phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(phases.items())),
        "",
        events.table(sort_by="self_cpu_time_total", row_limit=25),
    ]
    path.write_text("\n".join(text))


if __name__ == "__main__":
    main()
