"""How many episodes does each cell need to learn noisy cue recall, by delay and by learning signal?

PPO's budget is counted in environment steps; a memory task's learning is counted in episodes that
show the cue and ask for it. This benchmark takes PPO's machinery away and measures the cell: the
real :class:`~sb3_rtx.policies.RtxActorCriticPolicy` that RtxPPO builds (its cell, its actor and
critic heads with SB3's initialisation, its Adam optimiser, gradients clipped to PPO's
``max_grad_norm``) is trained on batches of fresh episodes of noisy cue recall (the memory suite's
task) with one of two signals at the query step:

* ``supervised``: cross-entropy of the actor's logits against the cue, the most a label can tell;
* ``policy gradient``: the policy samples its answer and is told only whether it was right (reward 1
  or 0), REINFORCE with the critic's value as baseline (advantages normalised per batch), the
  critic regressing every step's discounted return, PPO's entropy bonus: the signal PPO estimates,
  without its rollouts, clipping or epochs;
* ``policy gradient, every step`` (opt-in): the same, but the policy samples an action at every step
  and every step's log-probability is weighted by its own advantage (the query's reward discounted
  back to it, less the critic's value), as PPO's loss takes every step though only the query's
  action is scored: the difference is what the unscored actions' noise costs.

Every ``EVAL_EVERY`` updates the deterministic policy answers 1024 held-out episodes; the score is the
number of training episodes seen when it first reaches 0.9 (``>N`` where it had not by the cap).
Compare with PPO's budgets: the memory suite's recall-30 (150k steps, episodes of 32 steps) shows
4.7k episodes, 200k steps 6.25k.

    python -m benchmarks.probes.signal_budget --jobs 2          # every cell, delays 10 and 30, both signals
    python -m benchmarks.probes.signal_budget --configs AGaLiTe LSTM --delays 30 --signals "policy gradient"
    python -m benchmarks.probes.signal_budget --configs AGaLiTe LSTM --task gauss-recall --delays 8   # Gaussian noise
    python -m benchmarks.probes.signal_budget --configs AGaLiTe LSTM --task gauss-recall --delays 8 --n-cues 4 8 32
    python -m benchmarks.probes.signal_budget --quick           # a smoke run

``--advantages running`` divides the policy gradient's advantages by RtxPPO's running scale
instead of their batch's standard deviation, which turns a batch without any reward into noise.
``--n-cues`` adds an axis: the task's number of cues (its observation's one-hot and its action
space), the rest of the task as given, so a cell's budget can be read as the answer's choices grow.

Writes ``signal_budget.md`` / ``.csv`` under ``benchmarks/results/probes/``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.probes.init_probe import CONFIGS
from benchmarks.memory_suite import NOISY_RECALL, TASKS
from benchmarks.probes.recall_diagnostics import fresh_episodes
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, NET_ARCH, PPO

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
#: the memory suite's CueRecall tasks (``--task``)
RECALL_TASKS = [name for name, (env_id, *_) in TASKS.items() if env_id == "sb3_rtx/CueRecall-v0"]
SIGNALS = ("supervised", "policy gradient")
#: an opt-in signal: the policy gradient through every step's action, as PPO takes it, though only the
#: query's action is scored (the others' terms are noise whose mean is zero)
EVERY_STEP = "policy gradient, every step"
#: ``--advantages``: the policy gradient's advantages divided by their batch's SD (the probe's first
#: form), or by RtxPPO's running advantage scale
ADVANTAGES = ("batch", "running")
#: episodes per gradient step, by default (a PPO minibatch of the memory suite holds 8 delay-30 episodes)
BATCH = 16
#: held-out episodes scored every ``EVAL_EVERY`` updates, and the success rate that counts as learned
HELD_OUT, EVAL_EVERY, LEARNED = 1024, 25, 0.9
#: the pool of training episodes is drawn from the real env in chunks of this many
CHUNK = 2048
#: gradients clipped as RtxPPO clips them in the memory suite (SB3's default)
MAX_GRAD_NORM = 0.5


class EpisodeStream:
    """Fresh CueRecall episodes ``(delay + 2, n, obs_dim)`` and their cues, drawn from the env in chunks."""

    def __init__(self, delay: int, seed: int, task_kwargs: dict = NOISY_RECALL) -> None:
        self.env_kwargs = dict(task_kwargs, delay=delay)
        self.rng = np.random.default_rng(seed)
        self.obs, self.cues = np.zeros((delay + 2, 0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
        self.used = 0

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        if self.used + count > self.obs.shape[1]:
            self.obs, self.cues = fresh_episodes(self.env_kwargs, CHUNK, int(self.rng.integers(1 << 30)))
            self.used = 0
        taken = slice(self.used, self.used + count)
        self.used += count
        return self.obs[:, taken], self.cues[taken]


def train(
    label: str,
    delay: int,
    signal: str,
    seed: int,
    max_episodes: int,
    batch: int = BATCH,
    task_kwargs: dict = NOISY_RECALL,
    advantages: str = "batch",
) -> dict[str, Any]:
    """Train one freshly built policy, ``batch`` fresh episodes per update, until it names the cue in
    90% of held-out episodes, or the cap (CueRecall with ``task_kwargs`` at ``delay``). The policy
    gradient's advantages are centred and divided by their batch's standard deviation
    (``advantages="batch"``) or by RtxPPO's running scale (``"running"``, see :mod:`sb3_rtx.advantages`)."""
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_rtx import RtxPPO
    from sb3_rtx.advantages import RunningAdvantageScale, scale_advantages

    torch.set_num_threads(1)
    cell, cell_kwargs = CONFIGS[label]
    env = make_vec_env("sb3_rtx/CueRecall-v0", n_envs=N_ENVS, seed=seed, env_kwargs=dict(task_kwargs, delay=delay))
    # built as the memory suite builds it, only for its policy (and coefficients): no rollouts are run
    model = RtxPPO(
        "MlpRtxPolicy", env, sequence_length=PPO["n_steps"], max_grad_norm=MAX_GRAD_NORM, seed=seed, device="cpu", **PPO,
        policy_kwargs=dict(net_arch=NET_ARCH, cell=cell, cell_kwargs=cell_kwargs),
    )  # fmt: skip
    policy, length = model.policy, delay + 2
    stream = EpisodeStream(delay, seed, task_kwargs)
    held_out_obs, held_out_cues = EpisodeStream(delay, 10_000 + seed, task_kwargs).take(HELD_OUT)
    discount = model.gamma ** torch.arange(length - 1, -1, -1, dtype=torch.float32).unsqueeze(1)  # (T, 1)

    def heads(obs: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """The action distribution at every step and the values ``(T, n)`` of ``n`` whole episodes."""
        n = obs.shape[1]
        episode_starts = torch.zeros(length, n)
        episode_starts[0] = 1.0
        latent_pi, latent_vf, _ = policy._latents(obs.reshape(length * n, -1), policy.initial_state(n), episode_starts)
        values = policy.value_net(policy.mlp_extractor.forward_critic(latent_vf)).view(length, n)
        distribution = policy._get_action_dist_from_latent(policy.latent_actor(latent_pi))
        return distribution, values

    def held_out_success() -> float:
        with torch.no_grad():
            distribution, _ = heads(torch.as_tensor(held_out_obs))
            logits = distribution.distribution.logits.view(length, HELD_OUT, -1)[-1]
            return float((logits.argmax(-1).numpy() == held_out_cues).mean())

    running_scale = RunningAdvantageScale()
    policy.set_training_mode(True)
    start, episodes, updates, success, learned_at = time.perf_counter(), 0, 0, held_out_success(), None
    while episodes < max_episodes:
        obs, cues = stream.take(batch)
        distribution, values = heads(torch.as_tensor(obs))
        logits = distribution.distribution.logits.view(length, batch, -1)
        target = torch.as_tensor(cues)
        if signal == "supervised":
            loss = torch.nn.functional.cross_entropy(logits[-1], target)
        else:
            every_step = signal == EVERY_STEP
            acting = torch.distributions.Categorical(logits=logits if every_step else logits[-1])
            actions = acting.sample()  # (T, n) every step's (ignored before the query), or (n,)
            reward = ((actions[-1] if every_step else actions) == target).float()
            # each scored action's return (the query's reward, discounted back) less the critic's value
            advantage = (discount * reward if every_step else reward) - (values if every_step else values[-1]).detach()
            if advantages == "running":
                # as RtxPPO: the batch centred, divided by the root mean of every batch's variance so far,
                # so a batch without any reward is not blown up to unit size
                running_scale.update(advantage.numpy().ravel())
                advantage = scale_advantages(advantage.flatten(), "running", running_scale.scale).view_as(advantage)
            else:
                advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            log_prob = acting.log_prob(actions)
            value_loss = (values - discount * reward).square().mean()
            entropy = distribution.entropy().mean()
            loss = -(advantage * log_prob).mean() + model.vf_coef * value_loss - model.ent_coef * entropy
        policy.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
        policy.optimizer.step()
        episodes, updates = episodes + batch, updates + 1
        if updates % EVAL_EVERY == 0:
            success = held_out_success()
            if success >= LEARNED:
                learned_at = episodes
                break
    return {
        "config": label, "delay": delay, "n_cues": task_kwargs["n_cues"], "signal": signal, "seed": seed,
        "batch": batch, "advantages": advantages,
        "episodes_to_learn": learned_at, "updates_to_learn": None if learned_at is None else learned_at // batch,
        "final_success": success, "episodes_seen": episodes, "cap": max_episodes,
        "train_s": time.perf_counter() - start,
    }  # fmt: skip


def _train(spec: tuple) -> dict[str, Any]:
    return train(*spec)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["AGaLiTe", "GaLiTe", "GTrXL", "LSTM"], choices=list(CONFIGS))
    parser.add_argument("--delays", nargs="+", type=int, default=[10, 30])
    parser.add_argument(
        "--task", choices=RECALL_TASKS, default=None,
        help="a memory-suite CueRecall task whose cues and noise to use (at --delays); default: recall-10's",
    )  # fmt: skip
    parser.add_argument(
        "--n-cues", nargs="+", type=int, default=None, help="numbers of cues to run the task with (default: the task's)"
    )
    parser.add_argument("--signals", nargs="+", default=list(SIGNALS), choices=[*SIGNALS, EVERY_STEP])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-episodes", type=int, default=32_000, help="cap on training episodes per run")
    parser.add_argument("--batch", type=int, default=BATCH, help="fresh episodes per update")
    parser.add_argument(
        "--advantages", choices=ADVANTAGES, default="batch",
        help="the policy gradient's advantages divided by their batch's SD, or by RtxPPO's running scale",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="smoke run: AGaLiTe and LSTM, delay 10, 1 seed, 800 episodes")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.delays, args.seeds, args.max_episodes, args.jobs = ["AGaLiTe", "LSTM"], [10], [0], 800, 1
    stem = "signal_budget_quick" if args.quick else "signal_budget"
    task_kwargs = NOISY_RECALL if args.task is None else {k: v for k, v in TASKS[args.task][1].items() if k != "delay"}
    if args.n_cues is not None and min(args.n_cues) < 2:
        parser.error(f"--n-cues must each be at least 2, got {args.n_cues}")
    cue_counts = [task_kwargs["n_cues"]] if args.n_cues is None else args.n_cues
    specs = [
        (label, delay, signal, seed, args.max_episodes, args.batch, dict(task_kwargs, n_cues=n_cues), args.advantages)
        for label in args.configs for n_cues in cue_counts for delay in args.delays for signal in args.signals
        for seed in args.seeds
    ]  # fmt: skip
    runs: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(_train, specs):
            print(json.dumps(result), flush=True)
            runs.append(result)

    def episodes(run: dict) -> str:
        if run["episodes_to_learn"] is None:
            return f">{run['cap'] / 1000:g}k ({run['final_success']:.2f})"
        return f"{run['episodes_to_learn'] / 1000:.1f}k"

    def column(n_cues: int, delay: int, signal: str) -> str:
        """A column's name: the cue count only where ``--n-cues`` made it an axis (older tables keep theirs)."""
        return f"{signal}, delay {delay}" + ("" if args.n_cues is None else f", {n_cues} cues")

    keys = [(n, d, s) for n in cue_counts for d in args.delays for s in args.signals]
    rows = []
    for label in args.configs:
        row: dict[str, Any] = {"config": label}
        for n_cues, delay, signal in keys:
            mine = [r for r in runs if (r["config"], r["n_cues"], r["delay"], r["signal"]) == (label, n_cues, delay, signal)]
            row[column(n_cues, delay, signal)] = " ".join(episodes(r) for r in sorted(mine, key=lambda r: r["seed"]))
        rows.append(row)
    scaled = "; advantages divided by RtxPPO's running scale, not their batch's SD" if args.advantages == "running" else ""
    shown_task = task_kwargs if args.n_cues is None else {k: v for k, v in task_kwargs.items() if k != "n_cues"}
    columns: list[tuple[str, Any]] = [("config:", lambda r: r["config"])]
    names = [column(*key) for key in keys]
    columns += [(f"{name}:", lambda r, k=name: r[k]) for name in names]
    table = write_report(
        rows,
        args.out,
        stem,
        "Episodes a cell needs to learn noisy cue recall",
        f"Training episodes until the deterministic policy names the cue in {LEARNED:.0%} of {HELD_OUT} held-out "
        f"episodes (checked every {EVAL_EVERY} updates), each seed (seeds {args.seeds}); `>N (s)`: not by "
        f"the cap of N episodes, held-out success s. Task: CueRecall {shown_task} at each delay"
        f"{'' if args.n_cues is None else ' and number of cues'}. RtxPPO's policy (cells at "
        f"the memory suite's sizes, heads {NET_ARCH}, Adam lr {PPO['learning_rate']}, gradients clipped to "
        f"{MAX_GRAD_NORM}) trained on batches of {args.batch} fresh episodes (updates = episodes / {args.batch}) by "
        f"a supervised or a policy-gradient signal at the query step, no PPO (module docstring){scaled}. "
        "PPO's recall-30 "
        "budget of 150k (200k) steps is 4.7k (6.25k) episodes and 2.3k (3.1k) updates. "
        f"Made by `{command_line('benchmarks.probes.signal_budget', argv)}`",
        columns,
    )
    print()
    print(table)
    return runs


if __name__ == "__main__":
    main()
