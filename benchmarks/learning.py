"""Who learns T-Maze: RtxPPO with each cell against sb3-contrib's RecurrentPPO, as the corridor grows.

Every run gets the same PPO settings and the same budget of environment steps; only the memory
differs. The cue is shown in the first observation only, so a policy that does not remember it
succeeds half the time at best (``tests/test_tmaze.py`` checks that bound).

    python -m benchmarks.learning                  # the sweep in the docs (about 30 minutes on an idle 2-core machine)
    python -m benchmarks.learning --resume         # finish an interrupted sweep
    python -m benchmarks.learning --quick          # a smoke run (seconds)

Per run it records the training success rate (the last 100 training episodes, after each rollout)
as the learning curve, and at the end the success rate of the final policy acting
deterministically on ``--eval-episodes`` fresh episodes. Runs go ``--jobs`` at a time, one torch
thread each. Every finished run is appended to ``learning_runs.jsonl`` (so ``--resume`` can skip
it); the summary goes to ``learning.md`` / ``.csv`` and the plots to ``learning_curves.png`` and
``learning_success.png`` under ``benchmarks/results/`` (``learning_quick*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, PPO, RunSpec, add_sweep_arguments, mean_success, run_all, sweep_time

RESULTS = Path(__file__).resolve().parent / "results"

#: one small layer for every transformer cell, as hyperparams/ppo_rtx.yml's T-Maze entry gets (heads split d_model)
SMALL = dict(n_layers=1, d_model=64, n_heads=4, d_head=16, d_ffc=64)

#: label -> (algorithm, policy, policy_kwargs)
MODELS: dict[str, tuple[str, str, dict]] = {
    "AGaLiTe": ("RtxPPO", "MlpRtxPolicy", dict(cell="agalite", cell_kwargs=dict(SMALL, eta=4, r=2))),
    "GaLiTe": ("RtxPPO", "MlpRtxPolicy", dict(cell="galite", cell_kwargs=dict(SMALL, eta=4))),
    "GTrXL": ("RtxPPO", "MlpRtxPolicy", dict(cell="gtrxl", cell_kwargs=dict(SMALL, memory_len=64))),
    "LSTM": ("RtxPPO", "MlpRtxPolicy", dict(cell="lstm", cell_kwargs=dict(hidden_size=128))),
    # sb3-contrib as its users run it: MlpLstmPolicy's defaults (LSTM-256, separate critic LSTM)
    "RecurrentPPO": ("RecurrentPPO", "MlpLstmPolicy", {}),
}


def specs(models: list[str], corridors: list[int], seeds: list[int], timesteps: int, eval_episodes: int) -> list[RunSpec]:
    """Every (model, corridor, seed) run; longest corridors first (slowest), so the pool ends on short ones."""
    return [
        RunSpec(
            label=model,
            algo=MODELS[model][0],
            policy=MODELS[model][1],
            policy_kwargs=MODELS[model][2],
            env_kwargs=dict(corridor_len=corridor),
            seed=seed,
            timesteps=timesteps,
            eval_episodes=eval_episodes,
            tags=dict(model=model, corridor=corridor),
        )
        for corridor in sorted(corridors, reverse=True)
        for model in models
        for seed in seeds
    ]


def summarise(runs: list[dict], models: list[str], corridors: list[int]) -> list[dict]:
    """One row per model: mean final success per corridor (with each seed's value) and mean speed."""
    rows = []
    for model in models:
        row: dict[str, Any] = {"model": model}
        for corridor in corridors:
            row[f"success_{corridor}"], row[f"seeds_{corridor}"] = mean_success(runs, model=model, corridor=corridor)
        mine = [r for r in runs if r["tags"]["model"] == model]
        row["fps"] = float(np.mean([r["fps"] for r in mine])) if mine else float("nan")
        row["train_min"] = float(np.mean([r["train_s"] for r in mine]) / 60) if mine else float("nan")
        rows.append(row)
    return rows


def plot(runs: list[dict], models: list[str], corridors: list[int], out_dir: Path, stem: str) -> None:
    """Learning curves (one panel per corridor) and final success against corridor length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def matching(model: str, corridor: int | None = None) -> list[dict]:
        return [r for r in runs if r["tags"]["model"] == model and corridor in (None, r["tags"]["corridor"])]

    fig, axes = plt.subplots(1, len(corridors), figsize=(4.2 * len(corridors), 3.4), sharey=True, squeeze=False)
    for ax, corridor in zip(axes[0], corridors, strict=False):
        for model in models:
            curves = [r["curve"] for r in matching(model, corridor) if r["curve"]]
            if not curves:
                continue
            # seeds log at the same rollout ends; cut to the shortest so they can be averaged
            length = min(len(c) for c in curves)
            steps = np.array([s for s, _ in curves[0][:length]])
            values = np.array([[v for _, v in c[:length]] for c in curves])
            (line,) = ax.plot(steps, values.mean(0), label=model)
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
        ax.set_title(f"corridor {corridor}")
        ax.set_xlabel("environment steps")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training success (last 100 episodes)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / f"{stem}_curves.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for model in models:
        means = [mean_success(runs, model=model, corridor=c)[0] for c in corridors]
        (line,) = ax.plot(corridors, means, marker="o", label=model)
        for r in matching(model):
            ax.scatter(r["tags"]["corridor"], r["success"], color=line.get_color(), s=10, alpha=0.4)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="memoryless bound")
    ax.set_xlabel("corridor length")
    ax.set_ylabel("final success (deterministic)")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / f"{stem}_success.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--corridors", nargs="+", type=int, default=[10, 40, 80])
    parser.add_argument("--timesteps", type=int, default=150_000, help="environment steps per run")
    add_sweep_arguments(parser, [0, 1, 2], "smoke run: 2 models, 1 corridor, 1 seed, 2 rollouts", RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.models = list(dict.fromkeys([args.models[0], "RecurrentPPO"]))
        args.corridors, args.seeds, args.timesteps, args.eval_episodes = [4], [0], 2 * N_ENVS * PPO["n_steps"], 8
    stem = "learning_quick" if args.quick else "learning"

    def report(result: dict) -> None:
        print(
            f"{result['label']:>12} corridor {result['tags']['corridor']:>3} seed {result['seed']}: "
            f"success {result['success']:.2f}  ({result['train_s'] / 60:.1f} min, {result['fps']:.0f} fps)",
            flush=True,
        )

    start = time.perf_counter()
    runs = run_all(
        specs(args.models, args.corridors, args.seeds, args.timesteps, args.eval_episodes),
        args.out / f"{stem}_runs.jsonl",
        args.jobs,
        args.resume,
        report,
    )
    rows = summarise(runs, args.models, args.corridors)
    columns: list[tuple[str, Any]] = [("model:", lambda r: r["model"])]
    for corridor in args.corridors:
        columns.append((f"corridor {corridor}", lambda r, c=corridor: f"{r[f'success_{c}']:.2f} ({r[f'seeds_{c}']})"))
    columns += [("fps", lambda r: f"{r['fps']:.0f}"), ("min / run", lambda r: f"{r['train_min']:.1f}")]
    table = write_report(
        rows,
        args.out,
        stem,
        "T-Maze: final success rate by corridor length",
        f"Success of the final policy acting deterministically on {args.eval_episodes} fresh episodes: mean over "
        f"seeds {args.seeds} (each seed's value in brackets); 0.5 is the best a memoryless policy can do. "
        f"{args.timesteps} environment steps per run, {N_ENVS} envs, PPO {PPO}, RtxPPO sequence_length "
        f"{PPO['n_steps']}. Transformer cells: {SMALL} (AGaLiTe eta 4, r 2; GaLiTe eta 4; GTrXL memory_len 64); "
        f"RtxPPO LSTM: 128 units; RecurrentPPO: MlpLstmPolicy defaults (LSTM 256, separate critic LSTM). "
        f"{sweep_time(runs, args.jobs, start)} Made by `{command_line('benchmarks.learning', argv)}`",
        columns,
    )
    plot(runs, args.models, args.corridors, args.out, stem)
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
