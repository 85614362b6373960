"""Probe: is AGaLiTe's gap on PositionOnlyPendulum (a development task) one of memory?

    python -m benchmarks.probes.pendulum_control --jobs 2
    python -m benchmarks.probes.pendulum_control --quick        # smoke run (CI)

On the development set the LSTM leads AGaLiTe on POPGym's PositionOnlyPendulum (0.51 against 0.34
at 200k steps), with the value convolution or without it, although, trained supervised on the same
kind of trajectories, AGaLiTe reads the angular velocity from two positions as well as the LSTM
does. This probe takes memory out: each model also runs on the full pendulum (gymnasium's
``Pendulum-v1``, the velocity observed, its reward scaled as POPGym scales it, 200 steps), and
memoryless PPO (SB3's ``MlpPolicy``, the same heads) runs on both. If AGaLiTe is behind with the
velocity given too, the gap is in learning control, not in remembering.

Models (the memory suite's settings and sizes, :data:`benchmarks.tmaze_runs.PPO`, 8 envs):

* ``PPO (no memory)``: SB3's PPO with ``MlpPolicy`` and the suite's ``net_arch``; advantages
  normalised per minibatch (SB3's default: PPO has no running scale).
* ``AGaLiTe``, ``LSTM``: RtxPPO with the memory suite's cells (:data:`benchmarks.learning.MODELS`)
  and its default running advantage scale, as in the memory suite.
* ``AGaLiTe (output x c)``: the default AGaLiTe whose cell output is multiplied by a fixed ``c``
  (the LSTM's output root mean square at the start over AGaLiTe's, measured on the task's own
  observations): a probe-local edit, not an option of the library. Multiplying by ``c`` is the
  same as starting the heads' first layers ``c`` times smaller and letting them learn ``c`` times
  slower; the heads then start in their linear range.
* ``AGaLiTe (critic head starts x c)``, ``(actor head starts x c)``: the output as it is, one head's
  first layer started ``c`` times smaller (then learned at the optimiser's rate): which head's
  start matters.
* ``AGaLiTe (critic gradient stopped)``: the default, none of whose critic's gradient reaches the
  shared cell (a probe-local edit, as in ``tmaze_phases``): does the loud critic's gradient cost the
  actor's control?
* ``AGaLiTe (relu critic head)``: the default with the critic's hidden layer relu (the actor's
  stays tanh; a probe-local edit, as in ``tmaze_phases``): a critic head that cannot saturate.
* ``AGaLiTe (value output starts at zero)``: the default with the value output layer (64 -> 1)
  started at zero (``value_init_scale=0``): the value starts at 0, as behind the quiet critic, with
  the critic's hidden layer at SB3's start.
* ``AGaLiTe (critic reads output x0.04, cell gradient kept)``: the critic's head reads the output
  times 0.04 (its weights at SB3's start), its gradient into the cell not scaled down (as in
  ``tmaze_phases``): a quiet critic input with the default's gradient into the memory.
* ``AGaLiTe (linear value path)``: the value plus a linear function of the cell's output, learned
  from zero (as in ``tmaze_phases``): a smooth path beside the saturated tanh layer.
* ``AGaLiTe (multiscale gates)``: the default with ``gate_init="multiscale"`` (value spans from 4 to
  256 steps within every head, where the default's heads start at 400 down to 20): the spread that
  averaged a noisy level best of AGaLiTe's starts (``noisy_level``).
* ``AGaLiTe (long first head)``: the default with ``gate_init="long_first"``: the first head's
  value spans all long (about 400 steps, as the default's first head), each other head's spread
  over 4-256 steps as ``"multiscale"``'s.
* ``AGaLiTe (cell_gae_lambda 0)``: the default with RtxPPO's ``cell_gae_lambda=0`` (the actor's
  gradient into the cell from each step's TD error, the head's from GAE's): on the development set it
  halves PositionOnlyPendulum; with the velocity observed too, the loss is in learning control
  through the cell, not in remembering.
* ``LSTM (cell_gae_lambda 0)``: the same option behind RtxPPO's LSTM: is the cost the gated linear
  memory's, or any memory's?
* ``AGaLiTe (memory projections' credit at lambda 0)``: only the memory's input projections learn
  from the one-step credit, the current step's features from GAE's
  (:func:`~benchmarks.probes.credit.split_parameter_credit`).
* ``AGaLiTe (learned gain from c)``: the output times a learned scalar that starts at ``c`` (the
  same start; the heads and the gain then learn at the optimiser's own rate): does the start's
  scale matter, or the heads' slower learning?

Reported: the final policy's mean episode return (deterministic, 96 episodes as in the memory suite, in [-1, 1]) on the
positions-only task and on the full one, every seed; and each model's output root mean square at
the start. Table: ``benchmarks/results/probes/pendulum_control.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.learning import MODELS as CELL_MODELS
from benchmarks.memory_suite import ALGO_CHOICES  # the RtxPPO keywords of a label (its cell_gae_lambda)
from benchmarks.probes.credit import (
    MEMORY_PROJECTIONS_LAMBDA_0,
    MEMORY_ROWS_LAMBDA_0,
    VALUES_INTO_MEMORY_LAMBDA_0,
    edit_credit,
)
from benchmarks.probes.tmaze_phases import (
    ACTOR_GRADIENT_SCALE,
    VARIANTS as TMAZE_VARIANTS,
    edit_actor,
    edit_critic,
    rebuild_optimizer,
)
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, NET_ARCH, PPO

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
POSITIONS_ID = "sb3_rtx/POPGym-PositionOnlyPendulum-Easy-v0"
OBSERVATIONS = ("positions", "full")
STEPS, EVAL_EPISODES = 200_000, 96
#: POPGym's PositionOnlyPendulum maps the pendulum's reward from [LOW, 0] to [-1, 1] over an episode
LOW, EPISODE_STEPS = -16.2736044, 200
MODELS = (
    "PPO (no memory)", "AGaLiTe", "LSTM", "AGaLiTe (output x c)", "AGaLiTe (learned gain from c)",
    "AGaLiTe (critic head starts x c)", "AGaLiTe (actor head starts x c)", "AGaLiTe (critic gradient stopped)",
    "AGaLiTe (relu critic head)", "AGaLiTe (value output starts at zero)",
    "AGaLiTe (critic reads output x0.04, cell gradient kept)", "AGaLiTe (linear value path)",
    "AGaLiTe (dual critic: quiet baseline)", "AGaLiTe (dual critic, both gradients)",
    "AGaLiTe (critic input gain learned from 1)", "AGaLiTe (multiscale gates)", "AGaLiTe (long first head)",
    "AGaLiTe (cell_gae_lambda 0)", MEMORY_PROJECTIONS_LAMBDA_0, "LSTM (cell_gae_lambda 0)", *MEMORY_ROWS_LAMBDA_0,
    VALUES_INTO_MEMORY_LAMBDA_0,
    # tmaze_phases' edits of the actor's gradient into the default AGaLiTe (built here from the label's cell)
    *(label for label in ACTOR_GRADIENT_SCALE if TMAZE_VARIANTS[label] == ("AGaLiTe", {})),
)  # fmt: skip
#: label -> the default with this gate_init
GATE_STARTS = {"AGaLiTe (multiscale gates)": "multiscale", "AGaLiTe (long first head)": "long_first"}
#: the split runs: which head's start scale matters (its first layer's weights times c at the start)
HEAD_STARTS = {"AGaLiTe (critic head starts x c)": "value_net", "AGaLiTe (actor head starts x c)": "policy_net"}
#: what runs without --models (the learned gain was a follow-up, run on its own: docs, "Learning memory")
DEFAULT_MODELS = MODELS[:4]


def full_pendulum() -> Any:
    """``Pendulum-v1`` (velocity observed) with POPGym's reward scaling, so scores compare."""
    import gymnasium as gym

    env = gym.make("Pendulum-v1", max_episode_steps=EPISODE_STEPS)
    return gym.wrappers.TransformReward(env, lambda r: (r - LOW / 2) / (-LOW / 2) / EPISODE_STEPS)


def make_env(observations: str) -> Any:
    return full_pendulum if observations == "full" else POSITIONS_ID


def output_rms(cell: Any, env_id: Any, seed: int) -> float:
    """Root mean square of a cell's output over a few random-action episodes of the task."""
    import numpy as np
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(env_id, n_envs=N_ENVS, seed=10_000 + seed)
    obs, steps = [env.reset()], 64
    for _ in range(steps - 1):
        obs.append(env.step(np.stack([env.action_space.sample() for _ in range(N_ENVS)]))[0])
    x = torch.as_tensor(np.stack(obs), dtype=torch.float32)
    with torch.no_grad():
        y, _ = cell(x, None, torch.zeros(steps, N_ENVS))
    return float(y.pow(2).mean().sqrt())


def scale_output(cell: Any, factor: float) -> None:
    """Multiply ``cell``'s output by ``factor`` on every path (acting and training call ``_forward``)."""
    forward = cell._forward

    def scaled(x, state, starts):
        y, new_state = forward(x, state, starts)
        return y * factor, new_state

    cell._forward = scaled


def learned_gain(agent: Any, start: float) -> None:
    """Multiply each of ``agent``'s cells' output by a learned scalar starting at ``start``, and
    rebuild the optimiser so that it trains the scalar too."""
    import torch

    policy = agent.policy
    for cell in policy.cells:
        cell.register_parameter("probe_gain", torch.nn.Parameter(torch.tensor(start)))
        forward = cell._forward

        def gained(x, state, starts, cell=cell, forward=forward):
            y, new_state = forward(x, state, starts)
            return y * cell.probe_gain, new_state

        cell._forward = gained
    rebuild_optimizer(agent)


def run(model: str, observations: str, seed: int, steps: int, eval_episodes: int, gae_lambda: float | None = None) -> dict:
    """One training run; its row (``gae_lambda``: the suite's, 0.95, unless given)."""
    import numpy as np
    import torch
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    import sb3_rtx  # noqa: F401  (registers the sb3_rtx/ ids)
    from sb3_rtx import RtxPPO

    torch.set_num_threads(1)
    env_id = make_env(observations)
    env = make_vec_env(env_id, n_envs=N_ENVS, seed=seed)
    rms = float("nan")
    ppo = PPO if gae_lambda is None else dict(PPO, gae_lambda=gae_lambda)
    if model == "PPO (no memory)":
        settings = dict(ppo, normalize_advantage=True)
        agent: Any = SB3PPO("MlpPolicy", env, policy_kwargs=dict(net_arch=NET_ARCH), seed=seed, **settings)
    else:
        cell_model = model.split(" (")[0]
        policy_kwargs = dict(net_arch=NET_ARCH, **CELL_MODELS[cell_model][2])
        if model == "AGaLiTe (value output starts at zero)":
            policy_kwargs["value_init_scale"] = 0.0
        if model in GATE_STARTS:
            policy_kwargs["cell_kwargs"] = dict(policy_kwargs["cell_kwargs"], gate_init=GATE_STARTS[model])
        settings = dict(ppo, normalize_advantage="running", **ALGO_CHOICES.get(model, {}))  # as in the memory suite
        agent = RtxPPO("MlpRtxPolicy", env, sequence_length=PPO["n_steps"], policy_kwargs=policy_kwargs, seed=seed, **settings)
        rms = output_rms(agent.policy.cell_actor, env_id, seed)
        if model in ("AGaLiTe (output x c)", "AGaLiTe (learned gain from c)", *HEAD_STARTS):
            lstm = RtxPPO("MlpRtxPolicy", env, policy_kwargs=dict(net_arch=NET_ARCH, **CELL_MODELS["LSTM"][2]), seed=seed)
            factor = output_rms(lstm.policy.cell_actor, env_id, seed) / rms
            if model == "AGaLiTe (output x c)":
                for cell in agent.policy.cells:
                    scale_output(cell, factor)
            elif model in HEAD_STARTS:
                with torch.no_grad():
                    getattr(agent.policy.mlp_extractor, HEAD_STARTS[model])[0].weight.mul_(factor)
            else:
                learned_gain(agent, factor)
            if model not in HEAD_STARTS:
                rms *= factor
        edit_critic(agent, model)  # the critic variants' probe-local edits, as in tmaze_phases
        edit_actor(agent, model)  # and the actor's gradient into the cell
        edit_credit(agent, model, seed)  # and the credit's (benchmarks.probes.credit)
    start = time.perf_counter()
    agent.learn(steps)
    eval_env = make_vec_env(env_id, n_envs=N_ENVS, seed=10_000 + seed)  # the memory suite's
    returns, _ = evaluate_policy(
        agent, eval_env, n_eval_episodes=eval_episodes, deterministic=True, return_episode_rewards=True
    )
    row = dict(
        model=model,
        observations=observations,
        seed=seed,
        steps=steps,
        output_rms=rms,
        score=float(np.mean(returns)),
        train_s=round(time.perf_counter() - start, 1),
    )
    print(f"{model:>22} {observations:>9} seed {seed}: {row['score']:.2f} (output rms {rms:.3f})", flush=True)
    return row


def summary(rows: list[dict], models: list[str]) -> list[dict]:
    """One row per model: mean and seeds on each observation set, and the output's start scale."""
    table = []
    for model in models:
        row: dict[str, Any] = dict(model=model)
        for observations in OBSERVATIONS:
            runs = sorted(
                (r for r in rows if r["model"] == model and r["observations"] == observations), key=lambda r: r["seed"]
            )
            row[observations] = (
                f"{sum(r['score'] for r in runs) / len(runs):.2f} ({' '.join(format(r['score'], '.2f') for r in runs)})"
                if runs
                else "-"
            )
        scales = [r["output_rms"] for r in rows if r["model"] == model and r["observations"] == "positions"]
        row["output_rms"] = f"{sum(scales) / len(scales):.3f}" if scales and scales[0] == scales[0] else "-"
        table.append(row)
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(DEFAULT_MODELS))
    parser.add_argument("--observations", nargs="+", choices=OBSERVATIONS, default=list(OBSERVATIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: two models, one seed, 2 rollouts")
    parser.add_argument(
        "--gae-lambda", type=float, default=None, help=f"GAE lambda (default: the suite's, {PPO['gae_lambda']})"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    eval_episodes = EVAL_EPISODES
    if args.quick:
        args.models, args.seeds, args.steps, eval_episodes = (
            ["PPO (no memory)", "AGaLiTe (output x c)"],
            [0],
            2 * N_ENVS * PPO["n_steps"],
            8,
        )
    runs = [
        (m, o, s, args.steps, eval_episodes, args.gae_lambda)
        for m in args.models
        for o in args.observations
        for s in args.seeds
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run, *zip(*runs, strict=True)))
    gae = {} if args.gae_lambda is None else {"gae_lambda": args.gae_lambda}
    table = write_report(
        summary(rows, args.models),
        args.out,
        "pendulum_control_quick" if args.quick else "pendulum_control",
        "Pendulum control: with the velocity hidden and given",
        f"Made by `{command_line('benchmarks.probes.pendulum_control', argv)}`. The final policy's mean episode return "
        f"(deterministic, {eval_episodes} episodes; in [-1, 1]) after {args.steps / 1000:g}k steps on POPGym's "
        f"PositionOnlyPendulum-Easy (positions) and on Pendulum-v1 with POPGym's reward scaling (full: the velocity "
        f"observed); seeds {', '.join(map(str, args.seeds))}, each in brackets. The memory suite's PPO settings "
        f"({N_ENVS} envs, {dict(PPO, normalize_advantage='running', **gae)}; PPO (no memory) normalises advantages per "
        f"minibatch, SB3's PPO has no running scale), heads {NET_ARCH}, its cells. "
        f"Output rms: the cell's output at the start (positions task, random actions).",
        [
            ("model:", lambda r: r["model"]),
            ("positions", lambda r: r["positions"]),
            ("full (velocity observed)", lambda r: r["full"]),
            ("output rms at start", lambda r: r["output_rms"]),
        ],
    )
    print(table)
    return rows


if __name__ == "__main__":
    main()
