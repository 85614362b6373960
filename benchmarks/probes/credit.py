"""Probe edit: the actor's advantages with tree-backup traces, the critic's targets as they are.

With GAE at lambda each step's advantage is ``delta_t + gamma lambda A_t+1``: it carries a share of
every later surprise, including the part of a later step's surprise that the later step's own action
caused (an answer sampled at random, right or wrong). Tree backup (Precup, Sutton and Singh 2000)
weighs what it carries back from a step by the probability of the action taken there,

    A_t = delta_t + gamma lambda pi(a_t+1 | s_t+1) A_t+1,

so the surprise of a step whose action was a long shot (one answer of 24, at the start) mostly stays
with that step, while the surprise after an action the policy takes almost surely (a step down a
corridor it has learned to walk) travels back as GAE's does. The critic keeps GAE's lambda-returns
(SB3's, from the same rollout). Edited into a built RtxPPO agent's rollout buffer; not an option of
the library.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def tree_backup_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    taken_probabilities: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """Advantages ``(n_steps, n_envs)`` by the recursion in the module docstring, laid out as SB3's
    rollout buffer lays them out (``episode_starts[t]``: step ``t`` began an episode; ``dones`` and
    ``last_values``: after the last step). With every probability 1 it is SB3's GAE."""
    advantages = np.zeros_like(values)
    advantage = np.zeros_like(last_values)
    for step in reversed(range(values.shape[0])):
        if step == values.shape[0] - 1:
            non_terminal, next_values, trace = 1.0 - dones.astype(np.float32), last_values, np.ones_like(last_values)
        else:
            non_terminal, next_values, trace = 1.0 - episode_starts[step + 1], values[step + 1], taken_probabilities[step + 1]
        delta = rewards[step] + gamma * next_values * non_terminal - values[step]
        advantage = delta + gamma * gae_lambda * non_terminal * trace * advantage
        advantages[step] = advantage
    return advantages


def tree_backup_advantages(agent: Any) -> None:
    """After each rollout, replace ``agent``'s advantages by :func:`tree_backup_gae`'s (the
    probabilities of the actions taken, under the rollout's policy, from the buffer's log-probabilities),
    keeping the returns SB3 computed (the critic's targets)."""
    buffer = agent.rollout_buffer
    compute = buffer.compute_returns_and_advantage

    def compute_tree_backup(last_values: Any, dones: Any) -> None:
        compute(last_values=last_values, dones=dones)
        buffer.advantages = tree_backup_gae(
            buffer.rewards,
            buffer.values,
            buffer.episode_starts,
            np.exp(buffer.log_probs),
            last_values.clone().cpu().numpy().flatten(),
            np.asarray(dones),
            buffer.gamma,
            buffer.gae_lambda,
        ).astype(np.float32)

    buffer.compute_returns_and_advantage = compute_tree_backup
