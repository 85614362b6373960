"""Probe: under PPO on noisy cue recall, when does the cue become readable at the query, and when does
the actor answer with it?

    python -m benchmarks.probes.recall_phases --jobs 2                       # many cues (development side)
    python -m benchmarks.probes.recall_phases --task gauss-recall --jobs 2   # the development set's 8 cues
    python -m benchmarks.probes.recall_phases --quick                        # smoke run (CI)

Outside PPO AGaLiTe learns Gaussian cue recall with many cues far sooner than the LSTM
(``signal_budget --n-cues``); under PPO, with 16 or more cues, the LSTM starts sooner (docs,
"Many cues"). This probe trains the memory suite's models on one of its CueRecall tasks, with its
settings and seeds (RtxPPO's defaults: running advantage scale, GAE lambda 0.8, or ``--gae-lambda``;
``--ent-coef`` / ``--n-epochs`` / ``--learning-rate`` for another entropy bonus, number of epochs or
learning rate; ``--value-lambda`` for the critic's targets at another lambda than the advantages;
``--query-flag-scale`` for a task whose query flag reads that value instead of 1, a diagnostic of
how loud the step to answer at must be), and every
``--every`` rollouts looks at the policy on ``HELD_OUT`` fresh episodes of the task (their own seeds,
never a training or scoring seed):

* **readable**: the held-out accuracy of a linear read-out of the cue from what the heads read at the
  query step (least squares on one-hot targets, fitted on three quarters of the episodes, scored on
  the rest): whether the memory has put the cue where a linear head could use it;
* **cue share**: the fraction of the variance of the actor's logits at the query, across episodes,
  that the cue explains (between-cue over total); about ``n_cues / HELD_OUT`` (0.016 with 32 cues)
  when the logits follow something else (the observation's noise, the memory's noise);
* **answers**: how often the deterministic policy's answer at the query is the cue;
* **entropy** of the policy at the query and, averaged, at the unscored steps before it;
* **actor saturated**: the fraction of the actor's first-layer tanh units beyond ``SATURATED`` at the
  query;
* **input selection**: how much more the memory's first layer weighs the cue's inputs than the noise's
  (:func:`input_selection`): 1 at the start, growing as the memory learns to keep the cue and leave
  the noise out of what it stores; and its two sides apart (:func:`input_weights`), which says
  whether the cue's weights grow or the noise's shrink.

Models: the memory suite's RtxPPO models, by label, and probe-local variants of them
(:data:`VARIANTS`): ``AGaLiTe (relu heads)``, the default with the heads' hidden layers relu
(``activation_fn=nn.ReLU``) instead of SB3's tanh; ``AGaLiTe (actor reads output x0.2)``, the
default whose actor head reads the cell's output times 0.2 (the critic's head reads it as it is).
``AGaLiTe (two layers)``, the default with a second layer (its gates then read what the first
layer's memory read); ``AGaLiTe (values start x0.25)``, the default whose values start a quarter as
large (:func:`scale_value_start`: about the same policy at the start, value rows that an Adam step
moves four times as far relative to their size), and ``AGaLiTe (values start x4)`` the other way.
``AGaLiTe (exp write gate)``, today's default with ``write_gate="exp"`` (the memory suite's
``AGaLiTe (selective write)`` keeps the starts of the default it was measured against).
``AGaLiTe (value rows decay 1)``, the default whose value rows decay after every update
(:func:`decay_value_rows`, coefficient 1). ``AGaLiTe (action-value advantages)``, the default whose
critic gives one value per action and whose actor's advantages come from them
(:mod:`benchmarks.probes.action_values`); ``AGaLiTe (dueling action values)``, the same with the
action values split into a state value and the actions' advantages. ``AGaLiTe (tree-backup
advantages)``, the default whose actor's advantages carry a later surprise back weighed by the
probability of each action taken on the way (:mod:`benchmarks.probes.credit`); ``AGaLiTe (cell credit
at lambda 0)``, the default whose actor's gradient into the cell comes from advantages at lambda 0
and into its head from RtxPPO's (:func:`~benchmarks.probes.credit.split_actor_credit`), and ``AGaLiTe
(cell credit at lambda 0.5)`` the same with the cell's at lambda 0.5, ``AGaLiTe (cell credit by tree
backup)`` with the cell's by tree-backup traces at RtxPPO's lambda; ``LSTM (cell credit at lambda 0)``,
RtxPPO's LSTM with the cell's at lambda 0; the other edits of the cell's share of GAE's credit are
listed in :data:`~benchmarks.probes.credit.CREDIT_VARIANTS`.

The development side only: ``--task`` takes the memory suite's CueRecall tasks outside its test set
(the test set chooses nothing, so nothing is looked into on it). Reported per model: the step at
which the cue became readable (first check with readable >= 0.9), the step at which the policy
answered with it (answers >= 0.9), the last check's measures, and the final policy's success as the
memory suite scores it; every seed. Curves go to ``recall_phases_runs.jsonl``; table:
``benchmarks/results/probes/recall_phases.md`` / ``.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.learning import MODELS as LEARNING_MODELS
from benchmarks.memory_suite import GAE_LAMBDA, MODELS, SETS, TASKS, specs
from benchmarks.probes.action_values import ACTION_VALUE_VARIANTS, DUELING, action_value_critic
from benchmarks.probes.credit import CREDIT_VARIANTS, edit_credit
from benchmarks.probes.signal_budget import EpisodeStream
from benchmarks.probes.tmaze_phases import (
    ACTOR_GRADIENT_SCALE,
    VARIANTS as TMAZE_VARIANTS,
    LEARNING_RATE_SCALES,
    SATURATED,
    actor_saturated,
    edit_actor,
    first_step,
    scale_cell_learning_rate,
    split_lambdas,
    thousands,
)
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, NET_ARCH, PPO, build_model, final_score

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
#: the memory suite's CueRecall tasks that are not in its test set
TASK_CHOICES = [name for name, (env_id, *_) in TASKS.items() if env_id == "sb3_rtx/CueRecall-v0" and name not in SETS["test"]]
DEFAULT_TASK = "gauss-recall-32cues"
#: held-out episodes per check (three quarters fit the read-out, a quarter scores it), and their seed base
HELD_OUT, HELD_OUT_SEED = 2048, 30_000
READABLE, ANSWERED = 0.9, 0.9
EVAL_EPISODES = 96
#: PPO settings a run may take instead of the suite's (one change at a time), with their types
OVERRIDABLE: dict[str, type] = {"ent_coef": float, "n_epochs": int, "learning_rate": float}
#: the memory suite's AGaLiTe cell keywords (its size), which variants that set ``cell_kwargs`` extend
AGALITE_CELL = LEARNING_MODELS["AGaLiTe"][2]["cell_kwargs"]
#: probe-local variants: label -> (the memory suite's model, policy keywords added); ``"relu"`` heads
#: are SB3's hidden layers with ``nn.ReLU`` instead of tanh (no unit saturates)
VARIANTS: dict[str, tuple[str, dict]] = {
    "AGaLiTe (relu heads)": ("AGaLiTe", dict(activation_fn="relu")),
    "AGaLiTe (actor reads output x0.2)": ("AGaLiTe", dict(actor_input_scale=0.2)),
    "AGaLiTe (cell learns at x0.25)": ("AGaLiTe", {}),
    "AGaLiTe (heads learn at x0.25)": ("AGaLiTe", {}),
    "AGaLiTe (two layers)": ("AGaLiTe", dict(cell_kwargs=dict(AGALITE_CELL, n_layers=2))),
    "AGaLiTe (values start x0.25)": ("AGaLiTe", {}),
    "AGaLiTe (values start x4)": ("AGaLiTe", {}),
    "AGaLiTe (exp write gate)": ("AGaLiTe", dict(cell_kwargs=dict(AGALITE_CELL, write_gate="exp"))),
    "AGaLiTe (value rows decay 1)": ("AGaLiTe", {}),
    **{label: TMAZE_VARIANTS[label] for label in ACTOR_GRADIENT_SCALE},  # tmaze_phases' edits of the actor's gradient
    **ACTION_VALUE_VARIANTS,
    **CREDIT_VARIANTS,
}
#: variants whose values' input weights start at another scale (:func:`scale_value_start`): variant -> factor
VALUE_START_SCALES = {"AGaLiTe (values start x0.25)": 0.25, "AGaLiTe (values start x4)": 4.0}
#: variants whose memory value rows decay after every optimiser step (:func:`decay_value_rows`): variant -> coefficient
VALUE_DECAYS = {"AGaLiTe (value rows decay 1)": 1.0}


def decay_value_rows(agent: Any, weight_decay: float) -> None:
    """After every optimiser step, shrink every memory layer's value rows (the projection's rows that
    make ``v``, not their bias) by ``1 - lr * weight_decay``, the decoupled decay of AdamW (Loshchilov
    and Hutter 2019) on those rows alone. Why these rows: an input weight whose gradient averages zero
    (the noise's, which nothing in the return follows) then relaxes towards zero with the time constant
    ``1 / (lr * weight_decay)`` updates, while one that a consistent gradient pushes (Adam moves it by
    about ``lr`` per update) settles near ``1 / weight_decay``, far above the size the value rows reach."""
    import torch

    rows = [block.mixer.features for cell in agent.policy.cells for block in cell.blocks]

    def decay(optimizer: Any, *_: Any) -> None:
        shrink = 1.0 - optimizer.param_groups[0]["lr"] * weight_decay
        with torch.no_grad():
            for features in rows:
                features.value_weight().mul_(shrink)

    agent.policy.optimizer.register_step_post_hook(decay)


def scale_value_start(agent: Any, scale: float) -> None:
    """Start every memory layer's values (the projection's value rows and their bias) ``scale`` times
    as large and the values' direct path (``value_skip``) ``1 / scale`` times, so the policy computes
    about what it did (each head's read is divided by its root mean square, and the value convolution
    is linear; only the norm's epsilon differs, where a head's read is tiny) while an Adam step of a
    fixed size moves the value rows further relative to their size."""
    import torch

    with torch.no_grad():
        for cell in agent.policy.cells:
            for block in cell.blocks:
                features = block.mixer.features
                features.value_weight().mul_(scale)
                bias = features.value_bias()
                if bias is not None:
                    bias.mul_(scale)
                if features.value_skip is not None:
                    features.value_skip.div_(scale)


def with_query_flag_scaled(observations: np.ndarray, n_cues: int, scale: float) -> np.ndarray:
    """A copy of CueRecall observations (one or many, the features last) whose query flag, the
    feature after the ``n_cues`` cue bits, is ``scale`` times what it was."""
    observations = observations.copy()
    observations[..., n_cues] *= scale
    return observations


def query_scaled_cue_recall(query_flag_scale: float = 1.0, **kwargs: Any) -> Any:
    """CueRecall (``kwargs``) whose query flag reads ``query_flag_scale`` instead of 1: a probe-local
    edit of the task, for training, scoring and the held-out checks alike."""
    import gymnasium as gym

    from sb3_rtx.envs.cue_recall import CueRecallEnv

    env = CueRecallEnv(**kwargs)
    space = env.observation_space
    high = space.high.copy()
    high[env.n_cues] = max(1.0, query_flag_scale)
    scaled_space = gym.spaces.Box(space.low, high, dtype=space.dtype)
    return gym.wrappers.TransformObservation(
        env, lambda observation: with_query_flag_scaled(observation, env.n_cues, query_flag_scale), scaled_space
    )


def input_weights(policy: Any, n_cues: int) -> tuple[float, float]:
    """The root mean square of the memory's first-layer input weights on the ``n_cues`` cue inputs and
    on the noise inputs (those after the query flag): for AGaLiTe and GaLiTe, the values' rows of
    their first layer's projection, which reads the observation (the values are what the memory
    averages over the steps it keeps, so they must weigh the cue above the noise for the average to
    carry it); for the LSTM, its first layer's input weights (every gate). NaNs for another cell, or a
    first layer that reads the stream rather than the observation."""
    cell = policy.cell_actor
    if cell.name == "lstm":
        weight = cell.lstm.weight_ih_l0
    else:
        features = getattr(getattr(cell.blocks[0], "mixer", None), "features", None)
        if features is None or features.project.in_features != cell.input_dim:
            return float("nan"), float("nan")
        weight = features.value_weight()
    weight = weight.detach().reshape(-1, weight.shape[-1])
    return float(weight[:, :n_cues].pow(2).mean().sqrt()), float(weight[:, n_cues + 1 :].pow(2).mean().sqrt())


def input_selection(policy: Any, n_cues: int) -> float:
    """How much more the memory's first layer weighs the cue's inputs than the noise's: the ratio of
    :func:`input_weights`' two root mean squares."""
    cue, noise = input_weights(policy, n_cues)
    return cue / noise


def query_measures(policy: Any, observations: np.ndarray, cues: np.ndarray) -> dict[str, float]:
    """The module docstring's measures on whole episodes ``(T, n, d)`` with their cues ``(n,)``."""
    import torch

    steps, n, _ = observations.shape
    starts = torch.zeros(steps, n)
    starts[0] = 1.0
    with torch.no_grad():
        latent, _, _ = policy._latents(
            torch.as_tensor(observations.reshape(steps * n, -1)), policy.initial_state(n), starts.reshape(-1)
        )
        distribution = policy._get_action_dist_from_latent(policy.latent_actor(latent))
        entropy = distribution.entropy().view(steps, n)
        logits = distribution.distribution.logits.view(steps, n, -1)[-1].numpy().astype(np.float64)
        query = latent.view(steps, n, -1)[-1]
        saturated = actor_saturated(policy, query)
    n_cues = logits.shape[1]
    cue_weights, noise_weights = input_weights(policy, n_cues)
    cue_means = np.stack([logits[cues == cue].mean(0) for cue in range(n_cues) if (cues == cue).any()])
    x = np.c_[query.numpy().astype(np.float64), np.ones(n)]
    targets = np.eye(n_cues)[cues]
    fit, test = slice(0, 3 * n // 4), slice(3 * n // 4, n)
    # a little ridge: the read-out has d + 1 inputs per answer, fitted on 1536 episodes
    weights = np.linalg.solve(x[fit].T @ x[fit] + 1e-3 * np.eye(x.shape[1]), x[fit].T @ targets[fit])
    return dict(
        readable=float(((x[test] @ weights).argmax(1) == cues[test]).mean()),
        cue_share=float(cue_means.var(0).sum() / max(logits.var(0).sum(), 1e-12)),
        answers=float((logits.argmax(1) == cues).mean()),
        entropy_query=float(entropy[-1].mean()),
        entropy_delay=float(entropy[:-1].mean()),
        actor_saturated=saturated,
        input_selection=cue_weights / noise_weights,
        cue_weights=cue_weights,
        noise_weights=noise_weights,
    )


def run(
    model: str,
    task: str,
    seed: int,
    steps: int,
    every: int,
    eval_episodes: int,
    gae_lambda: float = GAE_LAMBDA,
    overrides: dict[str, Any] | None = None,
    query_flag_scale: float = 1.0,
    value_lambda: float | None = None,
) -> dict:
    """One memory-suite run of ``model`` on ``task`` with its checks (``overrides``: PPO settings
    instead of the suite's, :data:`OVERRIDABLE`; ``query_flag_scale``: see
    :func:`query_scaled_cue_recall`; ``value_lambda``: the critic's targets at another lambda than the
    advantages, :func:`~benchmarks.probes.tmaze_phases.split_lambdas`); its row."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    base, added = VARIANTS.get(model, (model, {}))
    spec = specs([base], [task], [seed], eval_episodes, timesteps=steps, gae_lambda=gae_lambda)[0]
    if added.get("activation_fn") == "relu":  # a class for SB3 (a string above: printable)
        added = dict(added, activation_fn=torch.nn.ReLU)
    spec = dataclasses.replace(spec, label=model, policy_kwargs=dict(spec.policy_kwargs, **added))
    overrides = overrides or {}
    spec = dataclasses.replace(spec, algo_kwargs=dict(spec.algo_kwargs, **overrides))
    if spec.algo != "RtxPPO":
        raise ValueError(f"{model}: this probe runs RtxPPO's models (the policy's latent is read directly)")
    agent = build_model(spec)
    if model in DUELING:  # first: it rebuilds the optimiser
        action_value_critic(agent, dueling=DUELING[model])
    if model in LEARNING_RATE_SCALES:
        scale_cell_learning_rate(agent, *LEARNING_RATE_SCALES[model])
    edit_credit(agent, model, seed)
    edit_actor(agent, model)
    if model in VALUE_START_SCALES:
        scale_value_start(agent, VALUE_START_SCALES[model])
    if model in VALUE_DECAYS:
        decay_value_rows(agent, VALUE_DECAYS[model])
    if value_lambda is not None:
        split_lambdas(agent, value_lambda)
    observations, cues = EpisodeStream(spec.env_kwargs["delay"], HELD_OUT_SEED + seed, spec.env_kwargs).take(HELD_OUT)
    if query_flag_scale != 1.0:
        observations = with_query_flag_scaled(observations, spec.env_kwargs["n_cues"], query_flag_scale)
        task_kwargs = dict(spec.env_kwargs, query_flag_scale=query_flag_scale)
        spec = dataclasses.replace(spec, env_id=query_scaled_cue_recall, env_kwargs=task_kwargs)
    curve = [dict(steps=0, **query_measures(agent.policy, observations, cues))]

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if (self.num_timesteps // (N_ENVS * PPO["n_steps"])) % every == 0:
                curve.append(dict(steps=self.num_timesteps, **query_measures(agent.policy, observations, cues)))

    start = time.perf_counter()
    agent.learn(steps, callback=Check())
    train_s = round(time.perf_counter() - start, 1)
    curve.append(dict(steps=agent.num_timesteps, **query_measures(agent.policy, observations, cues)))
    success, _ = final_score(agent, spec.env_id, spec.env_kwargs, seed, eval_episodes)  # the memory suite's score
    row = dict(
        model=model,
        task=task,
        seed=seed,
        steps=steps,
        gae_lambda=agent.gae_lambda,
        **({"value_lambda": value_lambda} if value_lambda is not None else {}),
        **{key: getattr(agent, key) for key in overrides},  # as the model has them
        **({"query_flag_scale": query_flag_scale} if query_flag_scale != 1.0 else {}),
        success=success,
        curve=curve,
        train_s=train_s,
    )
    print(
        f"{model:>12} {task} seed {seed}: success {success:.2f}, readable at {first_step(curve, 'readable', READABLE)}, "
        f"answered at {first_step(curve, 'answers', ANSWERED)}",
        flush=True,
    )
    return row


def summary(rows: list[dict], models: list[str]) -> list[dict]:
    """One row per model: each seed's steps and last measures, in seed order."""

    def last_success(runs: list[dict]) -> str:
        return " ".join(format(run["success"], ".2f") for run in runs)

    def last_of(run: dict, measure: str) -> float:  # NaN in runs made before the measure existed
        return run["curve"][-1].get(measure, float("nan"))

    def last(runs: list[dict], measure: str) -> str:
        return " ".join(f"{run['curve'][-1][measure]:.2f}" for run in runs)

    table = []
    for model in models:
        runs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["seed"])
        if runs:
            table.append(
                dict(
                    model=model,
                    readable_at=" ".join(thousands(first_step(r["curve"], "readable", READABLE)) for r in runs),
                    answered_at=" ".join(thousands(first_step(r["curve"], "answers", ANSWERED)) for r in runs),
                    readable=last(runs, "readable"),
                    cue_share=last(runs, "cue_share"),
                    entropy=" ".join(
                        f"{r['curve'][-1]['entropy_query']:.2f}/{r['curve'][-1]['entropy_delay']:.2f}" for r in runs
                    ),
                    saturated=last(runs, "actor_saturated"),
                    input_selection=" ".join(f"{last_of(r, 'input_selection'):.1f}" for r in runs),
                    input_weights=" ".join(f"{last_of(r, 'cue_weights'):.3f}/{last_of(r, 'noise_weights'):.3f}" for r in runs),
                    success=f"{np.mean([r['success'] for r in runs]):.2f} ({last_success(runs)})",
                )
            )
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=[*MODELS, *VARIANTS], default=["AGaLiTe", "LSTM"])
    parser.add_argument("--task", choices=TASK_CHOICES, default=DEFAULT_TASK, help="a CueRecall task outside the test set")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=None, help="default: the task's budget in the memory suite")
    parser.add_argument("--every", type=int, default=10, help="rollouts between checks")
    parser.add_argument(
        "--gae-lambda", type=float, default=GAE_LAMBDA, help=f"GAE lambda of every run (default: RtxPPO's {GAE_LAMBDA})"
    )
    for key, kind in OVERRIDABLE.items():
        flag = "--" + key.replace("_", "-")
        parser.add_argument(flag, type=kind, default=None, help=f"{key} of every run (default: the suite's {PPO[key]})")
    parser.add_argument(
        "--query-flag-scale", type=float, default=1.0, help="the task's query flag reads this instead of 1 (a diagnostic)"
    )
    parser.add_argument(
        "--value-lambda", type=float, default=None, help="the critic's targets at this lambda (default: --gae-lambda's)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: two models, one seed, 2 rollouts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    overrides = {key: getattr(args, key) for key in OVERRIDABLE if getattr(args, key) is not None}
    steps, eval_episodes = args.steps or TASKS[args.task][2], EVAL_EPISODES
    if args.quick:
        args.models, args.seeds, steps, args.every, eval_episodes = ["AGaLiTe", "LSTM"], [0], 2 * N_ENVS * PPO["n_steps"], 1, 8
    settings_of_runs = (args.gae_lambda, overrides, args.query_flag_scale, args.value_lambda)
    runs = [(m, args.task, s, steps, args.every, eval_episodes, *settings_of_runs) for m in args.models for s in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run, *zip(*runs, strict=True)))
    name = "recall_phases_quick" if args.quick else "recall_phases"
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{name}_runs.jsonl", "w") as runs_file:
        for row in rows:
            runs_file.write(json.dumps(row) + "\n")
    n_cues = TASKS[args.task][1]["n_cues"]
    settings = dict(PPO, gae_lambda=args.gae_lambda, normalize_advantage="running")
    settings.update(overrides)
    if args.value_lambda is not None:
        settings["value_lambda"] = args.value_lambda  # the critic's targets' (split_lambdas)
    flag_note = "" if args.query_flag_scale == 1.0 else f"; its query flag reads {args.query_flag_scale:g} instead of 1"
    table = write_report(
        summary(rows, args.models),
        args.out,
        name,
        f"Noisy cue recall under PPO ({args.task}): when the cue becomes readable at the query, "
        "and when the actor answers with it",
        f"Made by `{command_line('benchmarks.probes.recall_phases', argv)}`. The memory suite's {args.task} "
        f"({TASKS[args.task][1]}{flag_note}), its settings ({N_ENVS} envs, {settings}, "
        f"heads {NET_ARCH}) and cells, {steps / 1000:g}k steps; checked every {args.every} rollouts on {HELD_OUT} "
        f"held-out episodes. Readable at: the first check at which a linear read-out of the cue from what the heads "
        f"read at the query names it in >= {READABLE} of held-out episodes; answered at: the first check at which "
        f"the deterministic policy's answer is the cue in >= {ANSWERED} of them; '-': never. At the last check: "
        f"readable (the read-out's accuracy; chance {1 / n_cues:.2f}), cue share (the fraction of the query "
        f"logits' variance across episodes that the cue explains), entropy of the policy at the query / averaged "
        f"over the unscored steps before it (uniform: {np.log(n_cues):.2f}), actor saturated (the actor's "
        f"first-layer tanh units beyond {SATURATED} at the query), input selection (the RMS of the memory's "
        f"first-layer input weights on the cue inputs over that on the noise inputs: AGaLiTe's values', the LSTM's "
        f"input weights; 1 at the start) and the two root mean squares apart "
        f"(input weights cue/noise). Success: the final policy, deterministic, "
        f"{eval_episodes} episodes (the suite's score). Seeds {', '.join(map(str, args.seeds))}, in order.",
        [
            ("model:", lambda r: r["model"]),
            ("readable at", lambda r: r["readable_at"]),
            ("answered at", lambda r: r["answered_at"]),
            ("readable", lambda r: r["readable"]),
            ("cue share", lambda r: r["cue_share"]),
            ("entropy query/delay", lambda r: r["entropy"]),
            ("actor saturated", lambda r: r["saturated"]),
            ("input selection", lambda r: r["input_selection"]),
            ("input weights cue/noise", lambda r: r["input_weights"]),
            ("success", lambda r: r["success"]),
        ],
    )
    print(table)
    return rows


if __name__ == "__main__":
    main()
