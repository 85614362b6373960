"""The exported step: one ``torch.nn.Module`` that does everything ``RtxPPO.predict(deterministic=True)``
does for one step, with the memory as explicit inputs and outputs.

    inputs:  obs (one tensor per Dict key, in the observation space's dtype), episode_start (B,) bool,
             the state tensors (actor cell's, then the critic cell's)
    outputs: action (deterministic), value (B,), the new state tensors

Inside the graph, in the order ``predict`` applies them: VecNormalize's observation statistics (when
given), SB3's preprocessing (image scaling, one-hot of Discrete / MultiDiscrete, Dict features), the
features extractor, the cell's acting step, the heads, the distribution's mode, and the clipping (or
unscaling, for squashed policies) of Box actions. The mode is taken from the action head's output
directly (argmax, mean, ...) rather than through ``torch.distributions``, whose argument checks
are data-dependent branches that an exporter cannot trace.

This module knows SB3's policy layout; the cells know nothing of it (they run their ``_forward``).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    SquashedDiagGaussianDistribution,
    StateDependentNoiseDistribution,
)
from torch import nn

from sb3_rtx.cells import RecurrentCell
from sb3_rtx.policies import RtxActorCriticPolicy

#: observation spaces the exported graph takes (inside a Dict too)
OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
#: action spaces whose deterministic action the graph computes
ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class ExportError(ValueError):
    """A model, space or option that cannot be exported; the message names it."""


def observation_keys(observation_space: spaces.Space) -> list[str | None]:
    """The graph's observation inputs: a Dict's keys in the space's order, or ``[None]`` for one tensor."""
    if isinstance(observation_space, spaces.Dict):
        return list(observation_space.spaces)
    return [None]


def check_exportable(policy: RtxActorCriticPolicy) -> None:
    """Raise :class:`ExportError` naming the first space or option the exported step cannot carry."""
    if not isinstance(policy, RtxActorCriticPolicy):
        raise ExportError(f"export needs an RtxPPO model (RtxActorCriticPolicy), got a {type(policy).__name__}")
    observation_space = policy.observation_space
    parts = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {"observation": observation_space}
    for key, space in parts.items():
        if not isinstance(space, OBSERVATION_SPACES):
            raise ExportError(
                f"cannot export observation space {key!r}: {space} ({type(space).__name__}); "
                f"supported: {', '.join(t.__name__ for t in OBSERVATION_SPACES)} and a Dict of them"
            )
    if not isinstance(policy.action_space, ACTION_SPACES):
        raise ExportError(
            f"cannot export action space {policy.action_space} ({type(policy.action_space).__name__}); "
            f"supported: {', '.join(t.__name__ for t in ACTION_SPACES)}"
        )


class ObservationNormalizer(nn.Module):
    """VecNormalize's observation normalisation, ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``,
    in float64 as VecNormalize computes it (numpy), for the keys it normalises."""

    def __init__(self, vec_normalize: Any, observation_space: spaces.Space) -> None:
        super().__init__()
        keys = observation_keys(observation_space)
        self.clip = float(vec_normalize.clip_obs)
        self.keys: list[str | None] = []
        statistics = vec_normalize.obs_rms
        normalised = getattr(vec_normalize, "norm_obs_keys", None)
        if isinstance(statistics, dict) != (keys != [None]):
            kind = "per-key" if isinstance(statistics, dict) else "one array of"
            raise ExportError(
                f"the VecNormalize statistics do not fit this policy: {kind} statistics for observations {observation_space}"
            )
        for index, key in enumerate(keys):
            if key is None:
                rms, space = statistics, observation_space
            elif normalised is None or key not in normalised:
                continue
            else:
                rms, space = statistics[key], cast(spaces.Dict, observation_space)[key]
            if np.shape(rms.mean) != space.shape:
                where = "" if key is None else f" of key {key!r}"
                raise ExportError(
                    f"the VecNormalize statistics{where} have shape {np.shape(rms.mean)}, the policy's observations"
                    f"{where} {space.shape}: are they from another environment?"
                )
            self.keys.append(key)
            self.register_buffer(f"mean_{index}", torch.as_tensor(np.asarray(rms.mean), dtype=torch.float64))
            std = np.sqrt(np.asarray(rms.var) + vec_normalize.epsilon)
            self.register_buffer(f"std_{index}", torch.as_tensor(std, dtype=torch.float64))
        self._index = {key: keys.index(key) for key in self.keys}

    def forward(self, key: str | None, obs: torch.Tensor) -> torch.Tensor:
        if key not in self._index:
            return obs
        index = self._index[key]
        mean, std = getattr(self, f"mean_{index}"), getattr(self, f"std_{index}")
        return ((obs.double() - mean) / std).clamp(-self.clip, self.clip).float()


class PolicyStep(nn.Module):
    """One acting step of an :class:`~sb3_rtx.policies.RtxActorCriticPolicy` on flat tensors.

    ``forward(*observations, episode_start, *state) -> (action, value, *new_state)``, with the
    observations in :func:`observation_keys` order.
    """

    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(self, policy: RtxActorCriticPolicy, vec_normalize: Any = None) -> None:
        super().__init__()
        check_exportable(policy)
        self.policy = policy
        self.keys = observation_keys(policy.observation_space)
        self.normalizer = None if vec_normalize is None else ObservationNormalizer(vec_normalize, policy.observation_space)
        self.n_actor_state = len(policy.cell_actor.state_shapes())
        action_space = policy.action_space
        self.action_shape = tuple(action_space.shape or ())
        if isinstance(action_space, spaces.Box):
            self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n_obs = len(self.keys)
        observations, episode_start, state = inputs[:n_obs], inputs[n_obs], inputs[n_obs + 1 :]
        obs: Any = dict(zip(self.keys, observations, strict=True)) if self.keys != [None] else observations[0]
        if self.normalizer is not None:
            obs = (
                {key: self.normalizer(key, value) for key, value in obs.items()}
                if isinstance(obs, dict)
                else self.normalizer(None, obs)
            )
        policy = self.policy
        features = policy.extract_features(obs)
        if policy.share_features_extractor:
            pi_features = vf_features = cast(torch.Tensor, features)
        else:
            pi_features, vf_features = cast(tuple[torch.Tensor, torch.Tensor], features)
        starts = episode_start.to(torch.float32).unsqueeze(0)  # (1, B): one step of B envs
        actor_state, critic_state = state[: self.n_actor_state], state[self.n_actor_state :]
        latent_pi, new_state = self._cell_step(policy.cell_actor, pi_features, actor_state, starts)
        latent_vf = latent_pi
        if policy.cell_critic is not None:
            latent_vf, new_critic = self._cell_step(policy.cell_critic, vf_features, critic_state, starts)
            new_state = new_state + new_critic
        value = cast(nn.Module, policy.value_net)(policy.mlp_extractor.forward_critic(latent_vf)).reshape(-1)
        action = self._deterministic_action(policy.latent_actor(latent_pi))
        return (action, value, *new_state)

    @staticmethod
    def _cell_step(
        cell: RecurrentCell, features: torch.Tensor, state: tuple, starts: torch.Tensor
    ) -> tuple[torch.Tensor, tuple]:
        # the cell's own computation: its input checks are for Python callers, and the exported
        # graph's input shapes are fixed by the export (and checked by the runtime)
        latent, new_state = cell._forward(features.unsqueeze(0), tuple(state), starts)
        return latent[0], tuple(new_state)

    def _deterministic_action(self, latent_pi: torch.Tensor) -> torch.Tensor:
        """The mode of the policy's action distribution, post-processed as ``predict`` does."""
        policy = self.policy
        distribution = policy.action_dist
        out = policy.action_net(latent_pi)
        if isinstance(distribution, CategoricalDistribution):
            return out.argmax(dim=-1)
        if isinstance(distribution, MultiCategoricalDistribution):
            splits = torch.split(out, list(distribution.action_dims), dim=-1)
            return torch.stack([logits.argmax(dim=-1) for logits in splits], dim=-1)
        if isinstance(distribution, BernoulliDistribution):
            return (out > 0).to(torch.int64)  # probs > 0.5, the mode SB3 rounds to
        if isinstance(distribution, SquashedDiagGaussianDistribution):
            action = torch.tanh(out)
        elif isinstance(distribution, StateDependentNoiseDistribution):
            action = torch.tanh(out) if distribution.bijector is not None else out
        elif isinstance(distribution, DiagGaussianDistribution):
            action = out
        else:  # pragma: no cover - every SB3 distribution of the supported spaces is handled above
            raise ExportError(f"cannot export the action distribution {type(distribution).__name__}")
        action = action.reshape((-1, *self.action_shape))
        if policy.squash_output:  # predict unscales [-1, 1] to [low, high]
            return self.action_low + 0.5 * (action + 1.0) * (self.action_high - self.action_low)
        return torch.maximum(torch.minimum(action, self.action_high), self.action_low)


def example_inputs(step: PolicyStep, batch_size: int) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes and dtypes for ``batch_size`` envs (zeros; episodes starting)."""
    policy = step.policy
    observation_space = policy.observation_space
    observations = []
    for key in step.keys:
        space = observation_space if key is None else cast(spaces.Dict, observation_space)[key]
        observations.append(torch.zeros((batch_size, *(space.shape or ())), dtype=torch_dtype(space.dtype)))
    episode_start = torch.ones(batch_size, dtype=torch.bool)
    state = tuple(t.cpu() for t in policy.initial_state(batch_size))
    return (*observations, episode_start, *state)


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a numpy dtype (``np.float32`` -> ``torch.float32``)."""
    return torch.from_numpy(np.zeros((), dtype=np.dtype(dtype))).dtype
