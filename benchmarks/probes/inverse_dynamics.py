"""Probe helper: how much each step's action shows in the next observation, by an inverse model.

The memory's share of GAE's credit for an action whose effect nothing later depends on (an answer
in a recall's delay) is noise that washes a faint cue out; along T-Maze's corridor the same share
carries the junction's outcome back through actions that matter (forward and back decide when the
junction is reached), and T-Maze's memory learns its cue from it early, while the corridor is
walked at random (docs, "The cell's share of the actor's credit, apart"). What tells the two apart
from the first rollout, before any critic knows the cue or the corridor's values, is whether the
action shows in what follows: a step forward moves the position, an answer in the delay changes
nothing. An inverse model ``p(a_t | o_t, o_t+1)`` (a small MLP, trained on each rollout's
observation pairs after it has weighed them, so that no weight comes from a pair it was fitted to)
measures it per step as the share of the taken action's surprise that the next observation
explains,

    w_t = 1 - log p(a_t | o_t, o_t+1) / log pi(a_t | h_t),

1 where the next observation names the action, 0 where it says nothing of it (clipped to [0, 1]; 1
where the policy was sure, whose credit moves nothing). The idea of an inverse model as a measure of
what an action controls is the inverse-dynamics features of Pathak et al. (2017, curiosity) and
Agrawal et al. (2016); here it only weighs credit. Discrete actions, flat ``Box`` observations.

A weight that depends on the action taken biases the policy gradient: where the credit it scales is
not centred on each action, it pushes the policy toward the actions it weighs more (T-Maze's
diagnostics, docs). With ``per_state`` the weight is a function of the step's observation only, a
second small MLP ``g(o_t)`` fitted (squared error, after weighing, as the inverse model) to the
per-action weights above: the expected share at that step under the policy, the same for every
action (a state-dependent trace parameter, as in White and White 2016's adaptive lambda).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: the inverse model's hidden width, learning rate, and passes over each rollout's pairs
HIDDEN, LEARNING_RATE, EPOCHS, BATCH = 64, 1e-3, 4, 256


def action_shown_weights(agent: Any, seed: int = 0, per_state: bool = False) -> Callable[[Any], np.ndarray]:
    """A function of ``agent``'s full rollout buffer that returns each step's weight ``w_t``
    ``(n_steps, n_envs)`` (module docstring) and then fits the inverse model on that rollout's pairs.
    The next observation of the buffer's last step is ``agent._last_obs`` (what the rollout ended on);
    a step that ended its episode pairs with the next episode's first observation, a pair the model
    is neither fitted to nor asked about (its weight 1: GAE carries nothing past an episode's end).
    ``per_state``: each step's weight is ``g(o_t)`` (module docstring)."""
    import torch
    from gymnasium import spaces

    if not isinstance(agent.action_space, spaces.Discrete):
        raise ValueError(f"the inverse model needs a discrete action space, got {agent.action_space}")
    n_actions = int(agent.action_space.n)
    size = int(np.prod(agent.observation_space.shape))
    generator = torch.Generator().manual_seed(seed)

    def mlp(inputs: int, outputs: int) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Linear(inputs, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, outputs),
        )  # fmt: skip

    # g only where asked: its start draws from torch's global generator, which the training run shares
    model, expected = mlp(3 * size, n_actions), mlp(size, 1) if per_state else None
    parameters = [*model.parameters(), *([] if expected is None else expected.parameters())]
    optimizer = torch.optim.Adam(parameters, lr=LEARNING_RATE)

    def pairs_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, y, y - x], dim=-1)

    def weigh_then_fit(buffer: Any) -> np.ndarray:
        n_steps, n_envs = buffer.values.shape
        observations = torch.as_tensor(buffer.observations.reshape(n_steps, n_envs, size), dtype=torch.float32)
        last = torch.as_tensor(np.asarray(agent._last_obs).reshape(1, n_envs, size), dtype=torch.float32)
        following = torch.cat([observations[1:], last])
        continues = np.ones((n_steps, n_envs), dtype=bool)
        continues[:-1] = buffer.episode_starts[1:] < 0.5
        actions = torch.as_tensor(buffer.actions.reshape(n_steps, n_envs), dtype=torch.long)
        inputs = pairs_of(observations, following)
        with torch.no_grad():
            explained = torch.log_softmax(model(inputs), dim=-1).gather(-1, actions[..., None])[..., 0].numpy()
        surprise = buffer.log_probs.reshape(n_steps, n_envs)
        sure = surprise > -1e-6
        weights = np.where(sure, 1.0, 1.0 - explained / np.where(sure, -1.0, surprise))
        weights = np.clip(weights, 0.0, 1.0).astype(np.float32)
        used = weights
        if expected is not None:  # g's weights, from before it is fitted to this rollout
            with torch.no_grad():
                used = expected(observations)[..., 0].clamp(0.0, 1.0).numpy()
        chosen = torch.as_tensor(continues.reshape(-1))
        flat_inputs, flat_actions = inputs.reshape(-1, inputs.shape[-1])[chosen], actions.reshape(-1)[chosen]
        flat_observations = observations.reshape(-1, size)[chosen]
        flat_weights = torch.as_tensor(weights.reshape(-1))[chosen]
        for _ in range(EPOCHS):
            for batch in torch.randperm(len(flat_actions), generator=generator).split(BATCH):
                loss = torch.nn.functional.cross_entropy(model(flat_inputs[batch]), flat_actions[batch])
                if expected is not None:
                    loss = loss + torch.nn.functional.mse_loss(expected(flat_observations[batch])[:, 0], flat_weights[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return np.where(continues, used, 1.0).astype(np.float32)

    return weigh_then_fit
