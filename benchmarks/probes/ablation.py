"""The paper's diagnostic study on T-Maze: AGaLiTe's feature expansion eta and rank r, against GaLiTe.

AGaLiTe approximates GaLiTe's ``d x eta d`` memory with ``r`` oscillating rank-one terms. This
sweep trains AGaLiTe for every eta in {1, 2, 4, 8} and r in {1, 2, 4, 8} (the paper's
``frequencies="reference"``), the ``"distinct"`` frequency set at eta 4, and GaLiTe at every eta,
all with the same small layer, PPO settings and step budget (see :mod:`benchmarks.tmaze_runs`), and
puts each configuration's success next to its cost: state floats per env and acting step time.

    python -m benchmarks.probes.ablation              # the sweep in the docs (about 10 minutes on an idle 2-core machine)
    python -m benchmarks.probes.ablation --resume     # finish an interrupted sweep
    python -m benchmarks.probes.ablation --quick      # a smoke run

Writes ``ablation.md`` / ``.csv`` and ``ablation.png`` (success against state size, and the
eta x r grid) under ``benchmarks/results/probes/`` (``ablation_quick*`` with ``--quick``). Step times are
measured after the training runs, in this process, one thread: median of ``--time-steps`` acting
steps at batch 1 after warm-up, every configuration timed in interleaved rounds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, PPO, RunSpec, add_sweep_arguments, mean_success, run_all, sweep_time

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
LAYER = dict(n_layers=1, d_model=64, n_heads=4, d_head=16, d_ffc=64)
GRID = (1, 2, 4, 8)


def configurations() -> list[dict]:
    """Each configuration: its label, cell and cell kwargs, and tags for grouping."""
    configs = [
        dict(
            label=f"AGaLiTe eta={eta} r={r}",
            cell="agalite",
            cell_kwargs=dict(LAYER, eta=eta, r=r),
            tags=dict(cell="agalite", eta=eta, r=r, frequencies="reference"),
        )
        for eta in GRID
        for r in GRID
    ]
    # r = 1 is the same single frequency (pi) in both sets
    configs += [
        dict(
            label=f"AGaLiTe eta=4 r={r} distinct",
            cell="agalite",
            cell_kwargs=dict(LAYER, eta=4, r=r, frequencies="distinct"),
            tags=dict(cell="agalite", eta=4, r=r, frequencies="distinct"),
        )
        for r in GRID[1:]
    ]
    configs += [
        dict(
            label=f"GaLiTe eta={eta}",
            cell="galite",
            cell_kwargs=dict(LAYER, eta=eta),
            tags=dict(cell="galite", eta=eta, r=None, frequencies=None),
        )
        for eta in GRID
    ]
    return configs


def step_costs(configs: list[dict], input_dim: int, repeats: int) -> dict[str, tuple[int, float]]:
    """Label -> (state floats per env, median acting step time in ms at batch 1), one thread, the
    configurations timed in interleaved rounds (``benchmarks.efficiency``'s timer and acting step)."""
    import torch

    from benchmarks.efficiency import acting_step, interleaved_ms
    from sb3_rtx.cells import make_cell

    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    cells = {c["label"]: make_cell(c["cell"], input_dim, **c["cell_kwargs"]) for c in configs}
    steps = {label: acting_step(cell, cpu, batch=1, history=1, input_dim=input_dim) for label, cell in cells.items()}
    times, _ = interleaved_ms(steps, cpu, repeats=repeats, warmup=20, budget_s=0.0, min_rounds=repeats)
    return {label: (cells[label].state_numel, times[label]) for label in cells}


def plot(rows: list[dict], out_path: Path) -> None:
    """Left: success against state floats per env; right: AGaLiTe's success on the eta x r grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    groups = [
        ("AGaLiTe (reference)", "agalite", "reference", "o"),
        ("AGaLiTe (distinct), eta 4", "agalite", "distinct", "s"),
        ("GaLiTe", "galite", None, "^"),
    ]
    for name, cell, frequencies, marker in groups:
        mine = [r for r in rows if r["cell"] == cell and r["frequencies"] == frequencies]
        left.scatter([r["state_floats"] for r in mine], [r["success"] for r in mine], marker=marker, label=name)
    left.set_xscale("log")
    left.set_xlabel("state floats per env (one layer)")
    left.set_ylabel("final success (mean over seeds)")
    left.axhline(0.5, color="grey", lw=0.8, ls="--")
    left.set_ylim(-0.03, 1.03)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)

    grid = np.full((len(GRID), len(GRID)), np.nan)
    for r in rows:
        if r["cell"] == "agalite" and r["frequencies"] == "reference":
            grid[GRID.index(r["eta"]), GRID.index(r["r"])] = r["success"]
    image = right.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower")
    for i in range(len(GRID)):
        for j in range(len(GRID)):
            if not np.isnan(grid[i, j]):
                right.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white" if grid[i, j] < 0.6 else "black")
    right.set_xticks(range(len(GRID)), [str(g) for g in GRID])
    right.set_yticks(range(len(GRID)), [str(g) for g in GRID])
    right.set_xlabel("r (oscillator rank)")
    right.set_ylabel("eta (feature expansion)")
    right.set_title("AGaLiTe success (reference frequencies)")
    fig.colorbar(image, ax=right, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corridor", type=int, default=10)
    parser.add_argument("--distractors", type=int, default=2, help="random distractor bits per observation")
    parser.add_argument("--timesteps", type=int, default=50_000, help="environment steps per run")
    parser.add_argument("--time-steps", type=int, default=300, help="acting steps timed per configuration")
    add_sweep_arguments(parser, [0, 1, 2], "smoke run: 3 configurations, 1 seed, 1 rollout", RESULTS)
    args = parser.parse_args(argv)
    configs = configurations()
    if args.quick:
        quick = ("AGaLiTe eta=4 r=2", "AGaLiTe eta=4 r=2 distinct", "GaLiTe eta=4")
        configs = [c for c in configs if c["label"] in quick]
        args.corridor, args.seeds, args.timesteps = 4, [0], N_ENVS * PPO["n_steps"]
        args.eval_episodes, args.time_steps = 8, 20
    stem = "ablation_quick" if args.quick else "ablation"
    env_kwargs = dict(corridor_len=args.corridor, num_distractors=args.distractors)

    specs = [
        RunSpec(
            label=c["label"],
            algo="RtxPPO",
            policy="MlpRtxPolicy",
            policy_kwargs=dict(cell=c["cell"], cell_kwargs=c["cell_kwargs"]),
            env_kwargs=env_kwargs,
            seed=seed,
            timesteps=args.timesteps,
            eval_episodes=args.eval_episodes,
            tags=dict(c["tags"], label=c["label"]),
        )
        for c in configs
        for seed in args.seeds
    ]

    def report(result: dict) -> None:
        print(
            f"{result['label']:>28} seed {result['seed']}: success {result['success']:.2f} ({result['train_s'] / 60:.1f} min)",
            flush=True,
        )

    start = time.perf_counter()
    runs = run_all(specs, args.out / f"{stem}_runs.jsonl", args.jobs, args.resume, report)
    input_dim = 3 + args.corridor.bit_length() + args.distractors  # T-Maze's observation size
    costs = step_costs(configs, input_dim, args.time_steps)
    rows = []
    for c in configs:
        success, per_seed = mean_success(runs, label=c["label"])
        learning, _ = mean_success(runs, "curve_mean", label=c["label"])
        steps_to_90, _ = mean_success(runs, "steps_to_90", label=c["label"])
        floats, step_ms = costs[c["label"]]
        rows.append(
            {
                "config": c["label"],
                **c["tags"],
                "success": success,
                "seeds": per_seed,
                "curve_mean": learning,
                "steps_to_90": steps_to_90,
                "state_floats": floats,
                "act_ms": step_ms,
            }
        )
    galite = {r["eta"]: r for r in rows if r["cell"] == "galite"}
    for row in rows:
        same_eta = galite.get(row["eta"])
        row["state_vs_galite"] = row["state_floats"] / same_eta["state_floats"] if same_eta else float("nan")
    table = write_report(
        rows,
        args.out,
        stem,
        "Ablation on T-Maze: AGaLiTe's eta and r against GaLiTe",
        f"T-Maze corridor {args.corridor} with {args.distractors} distractor bits; {args.timesteps} environment steps "
        f"per run, seeds {args.seeds}, success of the final policy acting deterministically on {args.eval_episodes} "
        f"fresh episodes (each seed's value in brackets; 0.5 is the memoryless bound), the mean of the "
        f"training success curve over the run (higher = learned earlier), and the steps until training success "
        f"first reached 90% (mean over seeds; a seed that never did counts the whole budget). One layer {LAYER} "
        f"PPO {PPO}, {N_ENVS} envs. State floats per env and acting step time (batch 1, median of "
        f"{args.time_steps} steps, 1 thread) of that layer. {sweep_time(runs, args.jobs, start)} "
        f"Made by `{command_line('benchmarks.probes.ablation', argv)}`",
        [
            ("configuration:", lambda r: r["config"]),
            ("success", lambda r: f"{r['success']:.2f} ({r['seeds']})"),
            ("mean training success", lambda r: f"{r['curve_mean']:.2f}"),
            ("steps to 90% (k)", lambda r: f"{r['steps_to_90'] / 1000:.0f}"),
            ("state floats / env", lambda r: f"{r['state_floats']:,}"),
            ("state vs GaLiTe (same eta)", lambda r: f"{r['state_vs_galite']:.2f}x"),
            ("act ms (B=1)", lambda r: f"{r['act_ms']:.3f}"),
        ],
    )
    plot(rows, args.out / f"{stem}.png")
    print()
    print(table)
    return rows


if __name__ == "__main__":
    main()
