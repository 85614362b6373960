"""Probe edit: a critic of action values, whose advantages carry no later step's surprise.

What washes a faint cue out of the memory under PPO (docs, "Many cues: whose updates wash the trace
out") is the actor's credit for its unscored actions: with GAE at lambda 0.8 each step's advantage
carries a share of a later step's surprise (whether the sampled answer was right), which has nothing to
do with that step's action, and its gradient reaches the memory through every read. T-Maze's corridor
needs the long credit (with the advantages at lambda 0 it is not learned), so lambda cannot separate
the two.

An advantage from action values does: the critic's head gives one value per action, ``Q(s, a)``,
fitted to GAE's lambda-returns of the action taken; ``V(s) = sum_a pi(a|s) Q(s, a)`` bootstraps those
returns; and the actor's advantage is ``Q(s, a_t) - V(s)``, from the rollout's network. Where the
action does not matter, the returns of every action average to the same value, so the advantage is
near zero whatever the sampled future did; where it does (an answer, a step down the corridor), the
regression carries the long returns' signal. The idea of an advantage from a learned action value
beside the policy's own expectation of it is Mean Actor-Critic's (Allen et al. 2017) and Expected
Policy Gradients' (Ciosek and Whiteson 2018), which sum the gradient over all actions; here one sampled
action keeps PPO's clipped ratio. Discrete actions only. Edited into a built RtxPPO agent; not an option
of the library.

With ``dueling`` the head gives a state value ``v(s)`` and one advantage per action ``u(s, a)``, and
``Q(s, a) = v(s) + u(s, a) - sum_b pi(b|s) u(s, b)`` (the dueling split of Wang et al. 2016, centred by
the policy rather than the mean, so that ``V(s) = v(s)``): every sample fits ``v``, so the action
values of actions the policy has stopped taking follow the state's value instead of staying where they
were last fitted (which, with plain action values, rewards whichever action is taken most: a few
actions' values are fitted to positive returns while the rest stay at their start).
"""

from __future__ import annotations

from typing import Any

import numpy as np


#: the phases probes' variants with an action-value critic: label -> ``dueling``
DUELING = {"AGaLiTe (action-value advantages)": False, "AGaLiTe (dueling action values)": True}
#: the same as the phases probes list variants: label -> (the memory suite's model, policy keywords added: none)
ACTION_VALUE_VARIANTS: dict[str, tuple[str, dict]] = {label: ("AGaLiTe", {}) for label in DUELING}


def action_value_critic(agent: Any, dueling: bool = False, advantages_from_q: bool = True) -> list[np.ndarray]:
    """Replace ``agent``'s value output (hidden -> 1) by one of hidden -> ``n_actions`` action values
    (``dueling``: ``1 + n_actions``, a value and the actions' advantages), started as the policy starts
    its value output (SB3's orthogonal start times ``value_init_scale``), and rewire the policy and
    rollout buffer as the module docstring says (with ``advantages_from_q`` False the actor keeps GAE's
    advantages from ``V``: the action values are only fitted and read). Rebuilds the optimiser, so apply
    it before any edit of the optimiser's groups.

    Returns the list the rollout fills, one ``(n_envs,)`` array per step: how much the action matters
    at that step by the action values, their standard deviation about ``V`` under the policy,
    ``sqrt(sum_a pi(a|s) (Q(s, a) - V(s))^2)`` (the size of an action's advantage there)."""
    import torch
    from gymnasium import spaces

    from benchmarks.probes.tmaze_phases import rebuild_optimizer

    policy = agent.policy
    if not isinstance(policy.action_space, spaces.Discrete):
        raise ValueError(f"an action-value critic needs a discrete action space, got {policy.action_space}")
    n_actions = int(policy.action_space.n)
    q_net = torch.nn.Linear(policy.value_net.in_features, n_actions + int(dueling))
    torch.nn.init.orthogonal_(q_net.weight, gain=1.0)
    torch.nn.init.zeros_(q_net.bias)
    with torch.no_grad():
        q_net.weight.mul_(policy.value_init_scale)
    policy.value_net = q_net
    rebuild_optimizer(agent)
    taken: list[np.ndarray] = []  # Q(s_t, a_t) of each rollout step, in the buffer's order
    spreads: list[np.ndarray] = []  # the action values' spread of each rollout step (returned)

    def distribution_and_values(obs: Any, state: Any, episode_starts: Any) -> tuple[Any, torch.Tensor, Any]:
        latent_pi, latent_vf, new_state = policy._latents(obs, state, episode_starts)
        distribution = policy._get_action_dist_from_latent(policy.latent_actor(latent_pi))
        q = q_net(policy.mlp_extractor.forward_critic(latent_vf))
        if dueling:
            value, advantages = q[..., :1], q[..., 1:]
            # centred by the policy's probabilities as constants: the value loss does not move the actor
            q = value + advantages - expected(distribution.distribution.probs.detach(), advantages)
        return distribution, q, new_state

    def expected(probabilities: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (probabilities * q).sum(dim=-1, keepdim=True)

    def of_action(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return q.gather(-1, actions.long().reshape(-1, 1))

    def forward(obs: Any, state: Any, episode_starts: Any, deterministic: bool = False) -> tuple:
        distribution, q, new_state = distribution_and_values(obs, state, episode_starts)
        actions = distribution.get_actions(deterministic=deterministic)
        taken.append(of_action(q, actions).reshape(-1).cpu().numpy())
        probabilities = distribution.distribution.probs
        value = expected(probabilities, q)
        spreads.append(torch.sqrt(expected(probabilities, (q - value) ** 2)).reshape(-1).cpu().numpy())
        log_prob = distribution.log_prob(actions)
        return (
            actions.reshape((-1, *policy.action_space.shape)),
            value,
            log_prob,
            new_state,
        )

    def evaluate_actions(obs: Any, actions: Any, state: Any, episode_starts: Any) -> tuple:
        distribution, q, _ = distribution_and_values(obs, state, episode_starts)
        return of_action(q, actions), distribution.log_prob(actions), distribution.entropy()

    def predict_values(obs: Any, state: Any, episode_starts: Any) -> torch.Tensor:
        distribution, q, _ = distribution_and_values(obs, state, episode_starts)
        return expected(distribution.distribution.probs, q)

    policy.forward = forward
    policy.evaluate_actions = evaluate_actions
    policy.predict_values = predict_values

    buffer = agent.rollout_buffer
    reset, compute = buffer.reset, buffer.compute_returns_and_advantage

    def reset_with_values() -> None:
        taken.clear()
        spreads.clear()
        reset()

    def advantages_from_action_values(last_values: Any, dones: Any) -> None:
        compute(last_values=last_values, dones=dones)  # the lambda-returns Q(s_t, a_t) is fitted to
        if len(taken) != buffer.buffer_size:
            raise RuntimeError(f"{len(taken)} action values for a rollout of {buffer.buffer_size} steps")
        buffer.advantages = (np.stack(taken) - buffer.values).astype(np.float32)

    buffer.reset = reset_with_values
    if advantages_from_q:
        buffer.compute_returns_and_advantage = advantages_from_action_values
    return spreads
