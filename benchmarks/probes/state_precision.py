"""Does keeping the rollout buffer's cell states in bfloat16 change what RtxPPO learns?

RtxPPO stores one cell state per env and training sequence (``state_dtype``); training replays
each sequence from it. This trains AGaLiTe (the learning benchmark's cell and PPO settings) on
T-Maze with the states stored in float32 and in bfloat16, same seeds, in two settings:

* ``corridor 40, sequence_length 128``: the learning benchmark's setting (one stored state per env
  and rollout; most sequences start inside an episode);
* ``corridor 10, sequence_length 16``: many stored states (8 per env and rollout), episodes of
  about 12 steps, so most training sequences start from a stored state.

    python -m benchmarks.probes.state_precision            # about 8 minutes on an idle 2-core machine
    python -m benchmarks.probes.state_precision --resume   # finish an interrupted run
    python -m benchmarks.probes.state_precision --quick    # a smoke run (seconds)

It writes ``benchmarks/results/probes/state_precision.{md,csv}`` and the runs to ``state_precision_runs.jsonl``
(``state_precision_quick*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


from benchmarks.learning import MODELS
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, PPO, RunSpec, add_sweep_arguments, mean_success, run_all, sweep_time

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
#: (corridor, sequence_length, environment steps)
SETTINGS = ((40, 128, 150_000), (10, 16, 60_000))
DTYPES = ("float32", "bfloat16")


def specs(settings, seeds: list[int], eval_episodes: int) -> list[RunSpec]:
    algo, policy, policy_kwargs = MODELS["AGaLiTe"]
    return [
        RunSpec(
            label=f"AGaLiTe {dtype}",
            algo=algo,
            policy=policy,
            policy_kwargs=policy_kwargs,
            env_kwargs=dict(corridor_len=corridor),
            seed=seed,
            timesteps=timesteps,
            eval_episodes=eval_episodes,
            tags=dict(dtype=dtype, corridor=corridor, sequence_length=sequence_length),
            algo_kwargs=dict(state_dtype=dtype, sequence_length=sequence_length),
        )
        for corridor, sequence_length, timesteps in settings
        for dtype in DTYPES
        for seed in seeds
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser, [0, 1, 2, 3, 4, 5], "smoke run: corridor 4, 1 seed, 2 rollouts", RESULTS)
    args = parser.parse_args(argv)
    settings = SETTINGS
    if args.quick:
        settings, args.seeds, args.eval_episodes = ((4, 16, 2 * N_ENVS * PPO["n_steps"]),), [0], 8
    stem = "state_precision_quick" if args.quick else "state_precision"
    start = time.perf_counter()
    runs = run_all(
        specs(settings, args.seeds, args.eval_episodes),
        args.out / f"{stem}_runs.jsonl",
        args.jobs,
        args.resume,
        lambda r: print(
            f"{r['label']:>17} corridor {r['tags']['corridor']:>3} seed {r['seed']}: success {r['success']:.2f}", flush=True
        ),
    )
    rows = []
    for corridor, sequence_length, timesteps in settings:
        for dtype in DTYPES:
            tags = dict(dtype=dtype, corridor=corridor, sequence_length=sequence_length)
            success, seeds = mean_success(runs, **tags)
            curve, curve_seeds = mean_success(runs, "curve_mean", **tags)
            rows.append(
                dict(
                    corridor=corridor,
                    sequence_length=sequence_length,
                    timesteps=timesteps,
                    state_dtype=dtype,
                    success=success,
                    success_seeds=seeds,
                    curve_mean=curve,
                    curve_seeds=curve_seeds,
                )
            )
    columns: list[tuple[str, Any]] = [
        ("corridor", lambda r: str(r["corridor"])),
        ("sequence_length", lambda r: str(r["sequence_length"])),
        ("steps", lambda r: f"{r['timesteps']:,}"),
        ("buffer state dtype:", lambda r: r["state_dtype"]),
        ("final success (seeds)", lambda r: f"{r['success']:.2f} ({r['success_seeds']})"),
        ("mean training success (seeds)", lambda r: f"{r['curve_mean']:.2f} ({r['curve_seeds']})"),
    ]
    table = write_report(
        rows,
        args.out,
        stem,
        "T-Maze with the rollout buffer's cell states in float32 and bfloat16",
        f"AGaLiTe {MODELS['AGaLiTe'][2]['cell_kwargs']}, PPO {PPO}, {N_ENVS} envs, seeds {args.seeds}. Final success: "
        f"the final policy acting deterministically on {args.eval_episodes} fresh episodes; mean training success: "
        f"the mean of the last-100-episodes training success over the run (how early it learned). "
        f"{sweep_time(runs, args.jobs, start)} Made by `{command_line('benchmarks.probes.state_precision', argv)}`",
        columns,
    )
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
