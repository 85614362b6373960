"""Scores of the ``hyperparams/ppo_rtx.yml`` entries: train each with the real zoo CLI, then evaluate.

    python -m benchmarks.zoo_scores                                    # every entry, full budgets
    python -m benchmarks.zoo_scores --envs CartPoleNoVel-v1 --seeds 0 1
    python -m benchmarks.zoo_scores --quick                            # smoke run: tiny budgets

Each run is ``python -m rl_zoo3.train --algo ppo_rtx --env ENV --seed S`` (the yml's own
``n_timesteps`` unless ``-n`` is given), followed by a deterministic evaluation of the saved model
on fresh environments (with the run's VecNormalize statistics, as ``rl_zoo3 enjoy`` does).
``--advantages minibatch`` trains every entry with ``normalize_advantage: True`` instead (SB3's
per-minibatch normalisation, passed as ``--hyperparams``), ``--advantages both`` each way, so the
table shows what RtxPPO's running advantage scale does outside memory tasks. ``--hyperparams
KEY:VALUE ...`` passes further overrides to every run, in rl_zoo3's own syntax (a ``policy_kwargs``
override replaces the entry's whole dict, as in the zoo); the table names them.
Writes ``benchmarks/results/zoo_scores.md`` and ``.csv`` (``zoo_scores_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from benchmarks.report import command_line, machine, write_report
from sb3_rtx.envs import suite_ids

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
# the memory suites' ids (sb3_rtx/envs/suites): run only when named with --envs
SUITE_IDS = {env_id for ids in suite_ids().values() for env_id in ids}


def yml_entries() -> dict[str, dict]:
    from sb3_rtx.zoo import default_config

    with open(default_config()) as f:
        entries = yaml.safe_load(f)
    return {env: entry for env, entry in entries.items() if env not in ("default", "atari")}


#: ``--advantages`` choices: the entry's own setting (RtxPPO's running scale unless it pins one), or
#: SB3's per-minibatch normalisation
ADVANTAGES = {"entry": None, "minibatch": "normalize_advantage:True"}


def train_command(
    env_id: str,
    seed: int,
    log_dir: Path,
    n_timesteps: int | None,
    advantages: str = "entry",
    overrides: Sequence[str] = (),
) -> list[str]:
    """The ``rl_zoo3.train`` call of one run. The advantage setting and ``overrides`` go in one
    ``--hyperparams`` flag: the zoo keeps only the last such flag's values."""
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo_rtx", "--env", env_id, "--seed", str(seed)]
    command += ["-f", str(log_dir), "--eval-freq", "-1", "--log-interval", "-2", "--verbose", "0"]
    if n_timesteps:
        command += ["-n", str(n_timesteps)]
    hyperparams = [item for item in (ADVANTAGES[advantages], *overrides) if item]
    if hyperparams:
        command += ["--hyperparams", *hyperparams]
    return command


def train(command: list[str]) -> float:
    """Run one zoo training call on one torch thread; its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start


def evaluate(env_id: str, log_dir: Path, n_episodes: int, seed: int) -> tuple[float, float]:
    import torch
    from rl_zoo3.utils import create_test_env, get_saved_hyperparams
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_rtx import RtxPPO

    torch.set_num_threads(1)
    name = env_id.replace("/", "-")  # how rl_zoo3 names its folders and files
    run = next((log_dir / "ppo_rtx").glob(f"{name}_*"))
    stats_path = run / name
    hyperparams, maybe_stats = get_saved_hyperparams(str(stats_path), test_mode=True)
    env_kwargs = hyperparams.pop("env_kwargs", {}) or {}
    env = create_test_env(
        env_id,
        n_envs=1,
        stats_path=maybe_stats,
        seed=seed + 1000,
        should_render=False,
        hyperparams=hyperparams,
        env_kwargs=env_kwargs,
    )
    model = RtxPPO.load(run / f"{name}.zip", env=env, device="cpu")
    rewards, _ = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True)
    env.close()
    return float(np.mean(rewards)), float(np.std(rewards))


def score(env_id: str, seed: int, advantages: str, entry: dict, args: argparse.Namespace) -> dict:
    """Train one entry with one seed through the zoo CLI, evaluate it; one table row."""
    overrides = args.hyperparams
    with tempfile.TemporaryDirectory() as tmp:
        seconds = train(train_command(env_id, seed, Path(tmp), args.n_timesteps, advantages, overrides))
        mean, std = evaluate(env_id, Path(tmp), args.episodes, seed)
    row = {
        "env": env_id,
        "seed": seed,
        "advantages": advantages,
        "n_timesteps": args.n_timesteps or int(float(entry["n_timesteps"])),
        "cell": _cell_of(entry, overrides),
        "hyperparams": " ".join(overrides),
        "train_minutes": round(seconds / 60, 2),
        "mean_return": round(mean, 2),
        "std_return": round(std, 2),
        "episodes": args.episodes,
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="*", help="entries to run (default: all of ppo_rtx.yml)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("-n", "--n-timesteps", type=int, help="override every entry's n_timesteps")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per run")
    parser.add_argument("--quick", action="store_true", help="smoke run: CueRecall only, 2 seeds of 512 steps, 2 episodes")
    parser.add_argument("--update", action="store_true", help="replace only these runs' rows in the saved table")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once (one core each)")
    parser.add_argument(
        "--advantages",
        choices=[*ADVANTAGES, "both"],
        default="entry",
        help="the entry's own advantage setting, normalize_advantage=True (minibatch), or both",
    )
    parser.add_argument(
        "--hyperparams",
        nargs="+",
        default=[],
        metavar="KEY:VALUE",
        help="overrides for every run, as rl_zoo3.train's --hyperparams (e.g. ent_coef:0.01)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    bad = [item for item in args.hyperparams if ":" not in item]
    if bad:
        parser.error(f"--hyperparams takes KEY:VALUE items, as rl_zoo3.train does; got {bad}")
    entries = yml_entries()
    if args.quick:
        args.envs, args.n_timesteps, args.episodes, args.seeds = ["sb3_rtx/CueRecall-v0"], 512, 2, [0, 1]
    # the memory suites' entries need optional packages and far longer runs: only when named
    envs = args.envs or [env for env in entries if env not in SUITE_IDS]
    unknown = [env for env in envs if env not in entries]
    if unknown:
        raise SystemExit(f"no ppo_rtx.yml entry for {unknown}; entries: {', '.join(entries)}")

    settings = list(ADVANTAGES) if args.advantages == "both" else [args.advantages]
    runs = [(env_id, seed, advantages) for env_id in envs for advantages in settings for seed in args.seeds]
    # training runs are subprocesses with one torch thread each: --jobs of them at once
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda run: score(*run, entries[run[0]], args), runs))
    name = "zoo_scores_quick" if args.quick else "zoo_scores"
    if args.update:
        rows = merged_with_saved(rows, args.out / f"{name}.csv", order=list(entries))

    # the overrides' column only where a run had some: the tables without them stay as they were
    overridden = [("zoo --hyperparams:", lambda r: f"`{r['hyperparams']}`")] if any(r.get("hyperparams") for r in rows) else []
    table = write_report(
        rows,
        args.out,
        name,
        "ppo_rtx zoo entries: measured scores",
        f"Made by `{command_line('benchmarks.zoo_scores', None)}` on {machine()} "
        f"({os.cpu_count()} cores), one torch thread per training run (train times are wall times: they grow "
        "when runs share the cores with --jobs); deterministic evaluation of the final model "
        f"over {args.episodes} episodes on fresh environments.",
        [
            ("environment:", lambda r: f"`{r['env']}`"),
            ("cell:", lambda r: r["cell"]),
            *overridden,
            ("advantages:", lambda r: ADVANTAGE_LABELS[r.get("advantages", "entry")]),
            ("seed", lambda r: str(r["seed"])),
            ("timesteps", lambda r: f"{r['n_timesteps']:.0e}".replace("e+0", "e")),
            ("train time (min)", lambda r: f"{r['train_minutes']:.1f}"),
            ("return (mean ± std)", lambda r: f"{r['mean_return']:.1f} ± {r['std_return']:.1f}"),
        ],
    )
    print(table)


#: how the table names each ``--advantages`` setting
ADVANTAGE_LABELS = {"entry": "as the entry (running scale)", "minibatch": "per minibatch"}


def _run_key(row: dict) -> tuple[str, int, str, str]:
    return row["env"], int(row["seed"]), row.get("advantages") or "entry", row.get("hyperparams") or ""


def merged_with_saved(rows: list[dict], saved: Path, order: list[str]) -> list[dict]:
    """The saved table's rows with these runs' (env, seed, advantages, overrides) rows replaced, in the
    yml's order."""
    fresh = {_run_key(row) for row in rows}
    kept = []
    if saved.exists():
        with open(saved, newline="") as f:
            kept = [row for row in csv.DictReader(f) if _run_key(row) not in fresh]
    for row in kept:  # CSV gives strings; the table formats numbers
        for key in ("seed", "n_timesteps", "episodes"):
            row[key] = int(row[key])
        for key in ("train_minutes", "mean_return", "std_return"):
            row[key] = float(row[key])
    return sorted(
        kept + rows,
        key=lambda row: (
            order.index(row["env"]) if row["env"] in order else len(order),
            *_run_key(row)[2:],
            row["seed"],
        ),
    )


def _cell_of(entry: dict, overrides: Sequence[str] = ()) -> str:
    """The entry's cell, or the one a ``policy_kwargs`` override names (it replaces the entry's dict)."""
    text = str(entry.get("policy_kwargs", ""))
    text = next((item.split(":", 1)[1] for item in overrides if item.startswith("policy_kwargs:")), text)
    text = text.replace('"', "'")
    return next((cell for cell in ("galite", "agalite", "gtrxl", "lstm") if f"cell='{cell}'" in text), "agalite")


if __name__ == "__main__":
    main()
