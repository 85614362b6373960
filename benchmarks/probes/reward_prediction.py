"""Probe edit: an auxiliary head that predicts each step's reward from the memory and the action taken.

What teaches AGaLiTe's memory T-Maze's cue within the budget is the critic's gradient (docs, "T-Maze
40: where the budget goes"), and that gradient carries the cue only as far as the policy already
depends on it: while the agent guesses at the junction, ``V`` there is the same for either cue (the
mean of a right and a wrong turn), so the value's error is uncorrelated with the cue and its expected
gradient does not ask the memory to keep it. A prediction of the reward *given the action taken*,
``r(h_t, a_t)``, does from the first rollout: a turn up is rewarded under one cue and punished under
the other, so fitting it needs the cue at the junction whatever the policy does. The same holds for
every task whose reward depends on the action and on something past (an answer to a recalled cue,
an item seen some steps ago) and, for control, on what the observation leaves out (a pendulum's
reward is a function of its velocity).

The idea of a reward prediction as an auxiliary task that shapes an agent's features is UNREAL's
(Jaderberg et al. 2017, there a classification of the next reward from recent frames, through the
encoder); here it is a regression on the memory's output, conditioned on the action, as a one-step
model of the reward is. The head is a small MLP on the cell's output and the action (one-hot for
``Discrete`` actions, the raw values otherwise), fitted by the Huber loss (DQN's, so that a rare
large reward does not fill the clipped gradient) to the rewards as the environment returned them
(without the bootstrap RtxPPO adds at a truncation), standardised by their running mean and
variance (SB3's ``RunningMeanStd``, updated once per rollout before its update), so that its weight
in the loss does not depend on the task's reward scale; its loss, times :data:`COEF`, joins each
minibatch's PPO loss. Nothing else changes: the actor's advantages and the critic's targets are
GAE's, and the head never acts. Edited into a built RtxPPO agent; not an option of the library.

The rewards reach the minibatches through the samples' ``cell_advantages`` field, which RtxPPO
reads only with ``cell_gae_lambda`` set, so the edit refuses an agent that sets it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the head's weight in the loss (SB3's vf_coef: the other regression on the shared cell) and its
#: hidden width (the suite's heads' net_arch); fixed before any run, not chosen on a task
COEF, HIDDEN = 0.5, 64
#: the probes' variant with the auxiliary head: label -> (the memory suite's model, policy keywords added)
REWARD_PREDICTION = "AGaLiTe (reward prediction)"
REWARD_PREDICTION_VARIANTS: dict[str, tuple[str, dict]] = {REWARD_PREDICTION: ("AGaLiTe", {})}


def action_inputs(action_space: Any, actions: Any) -> Any:
    """The actions as the head reads them: one-hot for ``Discrete``, the raw values as floats otherwise."""
    import torch
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        return torch.nn.functional.one_hot(actions.long().flatten(), int(action_space.n)).float()
    return actions.reshape(actions.shape[0], -1).float()


def standardised(rewards: np.ndarray, running: Any) -> np.ndarray:
    """``rewards`` after ``running`` (a ``RunningMeanStd``) has taken them in, standardised by it."""
    running.update(rewards.reshape(-1))
    return ((rewards - running.mean) / np.sqrt(running.var + 1e-8)).astype(np.float32)


def predict_rewards(agent: Any, coef: float = COEF) -> None:
    """Give ``agent`` (RtxPPO, ``cell_gae_lambda`` unset) the auxiliary reward head of the module
    docstring. Rebuilds the optimiser, so apply it before any edit of the optimiser's groups."""
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    from benchmarks.probes.tmaze_phases import rebuild_optimizer

    if agent.cell_gae_lambda is not None:
        raise ValueError("the reward-prediction edit carries its targets in cell_advantages: unset cell_gae_lambda")
    policy, buffer = agent.policy, agent.rollout_buffer
    space = policy.action_space
    action_dim = int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))
    head = torch.nn.Sequential(
        torch.nn.Linear(policy.cell_actor.output_dim + action_dim, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1)
    )
    policy.add_module("reward_net", head.to(policy.device))
    rebuild_optimizer(agent)
    running = RunningMeanStd(shape=())

    # the rewards as the env returned them: RtxPPO adds gamma * V(final observation) to a truncated
    # step's reward before the buffer stores it (SB3's bootstrap), which is a value, not a reward
    raw = np.zeros((buffer.buffer_size, buffer.n_envs), dtype=np.float32)
    latest: list[np.ndarray] = []
    targets: list[Any] = []
    env_step, add, compute, common = agent.env.step, buffer.add, buffer.compute_returns_and_advantage, buffer._common_tensors

    def step_keeping_rewards(actions: Any) -> Any:
        out = env_step(actions)
        latest[:] = [np.array(out[1], dtype=np.float32)]  # a copy: the bootstrap edits the array in place
        return out

    def add_with_raw_reward(*args: Any, **kwargs: Any) -> None:
        raw[buffer.pos] = latest[0]
        add(*args, **kwargs)

    def compute_and_standardise(*args: Any, **kwargs: Any) -> None:
        compute(*args, **kwargs)
        # once per rollout (each epoch's ``get`` reads the same targets)
        targets[:] = [buffer.to_torch(standardised(raw, running))]

    def with_reward_targets() -> dict:
        return {**common(), "cell_advantages": targets[0]}

    agent.env.step = step_keeping_rewards
    buffer.add, buffer.compute_returns_and_advantage = add_with_raw_reward, compute_and_standardise
    buffer._common_tensors = with_reward_targets

    def evaluate_minibatch(rollout_data: Any, actions: Any, running_scale: float, clip_range: float) -> tuple:
        # evaluate_actions' computation, with the cell's output kept for the head
        latent_pi, latent_vf, _ = policy._latents(
            rollout_data.observations, rollout_data.cell_states, rollout_data.episode_starts
        )
        distribution = policy._get_action_dist_from_latent(policy.latent_actor(latent_pi))
        values = policy.value_net(policy.mlp_extractor.forward_critic(latent_vf))
        log_prob, entropy = distribution.log_prob(actions), distribution.entropy()
        policy_loss, ratio = agent._policy_loss(rollout_data, log_prob, running_scale, clip_range)
        predicted = head(torch.cat([latent_pi, action_inputs(space, actions)], dim=-1)).flatten()
        # Huber: a sparse reward standardised is heavy-tailed (a rare junction's reward lies ~20 SDs from
        # the corridor's), and a squared error on it would fill the clipped gradient's norm
        reward_loss = torch.nn.functional.smooth_l1_loss(predicted, rollout_data.cell_advantages.flatten())
        # a second term in the list: RtxPPO sums them into the loss (and logs it as the cell's term)
        return values, log_prob, entropy, [policy_loss, coef * reward_loss], ratio

    agent._evaluate_minibatch = evaluate_minibatch
