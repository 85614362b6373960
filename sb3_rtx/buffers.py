"""Rollout buffers that keep each env's rollout as sequences and store cell state only where they start.

sb3-contrib's recurrent buffer stores the LSTM state at every step. A GaLiTe state is ~0.5 M floats
per env, so here the state is stored once per sequence of ``sequence_length`` steps: a rollout of
``n_steps`` holds ``n_steps / sequence_length`` states per env. Training replays whole sequences
through the cell's multi-step form, so minibatches are groups of (env, sequence) pairs, time-major.
Every sequence is exactly ``sequence_length`` steps of one env (no padding, no mask): episode
starts inside a sequence are handled by the cell.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, NamedTuple
from collections.abc import Generator

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer

from sb3_rtx.cells import CellState


class RtxRolloutBufferSamples(NamedTuple):
    """A minibatch of ``n_sequences`` sequences of ``T`` steps; per-step fields are flat ``(T * n_sequences, ...)``,
    time-major, as the policy's ``evaluate_actions`` expects."""

    observations: torch.Tensor | dict[str, torch.Tensor]
    actions: torch.Tensor
    old_values: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    episode_starts: torch.Tensor  # (T, n_sequences)
    cell_states: CellState  # each (n_sequences, ...): the state before each sequence's first step
    #: GAE's advantages at the buffer's ``cell_gae_lambda``, None when it has none (RtxPPO's ``cell_gae_lambda``)
    cell_advantages: torch.Tensor | None = None


class _SequenceStorage:
    """What both buffers add to SB3's: state at sequence starts and a sequence-wise ``get``."""

    buffer_size: int
    n_envs: int
    device: torch.device
    pos: int
    full: bool
    sequence_length: int
    sequences_per_env: int
    state_shapes: tuple[tuple[int, ...], ...]
    state_dtype: torch.dtype
    cell_states: tuple[torch.Tensor, ...]
    cell_gae_lambda: float | None
    cell_advantages: np.ndarray | None
    gae_lambda: float

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        sequence_length: int,
        state_shapes: tuple[tuple[int, ...], ...],
        device: torch.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        state_dtype: torch.dtype = torch.float32,
        cell_gae_lambda: float | None = None,
    ):
        if (
            isinstance(sequence_length, bool)
            or not isinstance(sequence_length, Integral)
            or sequence_length < 1
            or buffer_size % sequence_length
        ):
            raise ValueError(f"sequence_length={sequence_length!r} must be a positive divisor of n_steps={buffer_size}")
        self.sequence_length = int(sequence_length)
        self.sequences_per_env = buffer_size // sequence_length
        self.state_shapes = state_shapes
        self.state_dtype = state_dtype
        self.cell_gae_lambda = cell_gae_lambda
        self.cell_advantages = None
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)  # type: ignore[call-arg]

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self._reset_states()
        self.cell_advantages = None

    def compute_returns_and_advantage(self, last_values: torch.Tensor, dones: np.ndarray) -> None:
        """SB3's GAE (advantages and returns at ``gae_lambda``), and with a ``cell_gae_lambda`` the
        advantages at that lambda too, in ``cell_advantages`` (the same rewards and values)."""
        if self.cell_gae_lambda is not None:
            gae_lambda, self.gae_lambda = self.gae_lambda, self.cell_gae_lambda
            try:
                super().compute_returns_and_advantage(last_values, dones)  # type: ignore[misc]
            finally:
                self.gae_lambda = gae_lambda
            self.cell_advantages = self.advantages.copy()  # type: ignore[attr-defined]
        super().compute_returns_and_advantage(last_values, dones)  # type: ignore[misc]

    def add(self, *args: Any, cell_state: CellState, **kwargs: Any) -> None:
        """SB3's ``add`` plus ``cell_state``: the state the policy was given at this step."""
        self._store_state(cell_state)
        super().add(*args, **kwargs)  # type: ignore[misc]

    def _reset_states(self) -> None:
        self.cell_states = tuple(
            torch.zeros((self.sequences_per_env, self.n_envs, *shape), dtype=self.state_dtype, device=self.device)
            for shape in self.state_shapes
        )

    def _store_state(self, cell_state: CellState) -> None:
        """Keep the state the step at ``self.pos`` starts from, if a sequence starts there."""
        if self.pos % self.sequence_length == 0:
            index = self.pos // self.sequence_length
            for stored, state in zip(self.cell_states, cell_state, strict=True):
                stored[index].copy_(state)

    def _per_step_tensors(self) -> dict[str, Any]:
        raise NotImplementedError

    def get(self, batch_size: int | None = None) -> Generator[RtxRolloutBufferSamples, None, None]:  # type: ignore[override]
        """Yield minibatches of ``batch_size`` steps (``batch_size / sequence_length`` whole sequences)."""
        assert self.full, "the rollout buffer must be full before sampling from it"
        n_sequences = self.sequences_per_env * self.n_envs
        if batch_size is None:
            batch_size = self.buffer_size * self.n_envs
        if batch_size % self.sequence_length:
            raise ValueError(f"batch_size={batch_size} must be a multiple of sequence_length={self.sequence_length}")
        per_batch = batch_size // self.sequence_length
        tensors = self._per_step_tensors()
        order = torch.as_tensor(np.random.permutation(n_sequences), device=self.device)
        offsets = torch.arange(self.sequence_length, device=self.device).unsqueeze(1)  # (T, 1)
        for start in range(0, n_sequences, per_batch):
            chosen = order[start : start + per_batch]
            sequence, env = chosen // self.n_envs, chosen % self.n_envs
            steps = sequence.unsqueeze(0) * self.sequence_length + offsets  # (T, n)

            # (steps and env bound as defaults: each minibatch's gather must use its own)
            def gather(x: torch.Tensor, steps: torch.Tensor = steps, env: torch.Tensor = env) -> torch.Tensor:
                picked = x[steps, env.unsqueeze(0)]  # (T, n, ...)
                return picked.reshape(-1, *picked.shape[2:])

            obs = tensors["observations"]
            yield RtxRolloutBufferSamples(
                observations={k: gather(v) for k, v in obs.items()} if isinstance(obs, dict) else gather(obs),
                actions=gather(tensors["actions"]),
                old_values=gather(tensors["values"]),
                old_log_prob=gather(tensors["log_probs"]),
                advantages=gather(tensors["advantages"]),
                returns=gather(tensors["returns"]),
                episode_starts=tensors["episode_starts"][steps, env.unsqueeze(0)],
                # stored states may be half precision (RtxPPO state_dtype): cells compute in float32
                cell_states=tuple(s[sequence, env].float() for s in self.cell_states),
                cell_advantages=gather(tensors["cell_advantages"]) if "cell_advantages" in tensors else None,
            )

    def all_observations(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """Every stored observation as one batch, ``(buffer_size * n_envs, *obs_shape)`` (per key for
        dict observations), in no particular order."""
        obs = self._per_step_tensors()["observations"]

        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, *x.shape[2:])

        return {k: flat(v) for k, v in obs.items()} if isinstance(obs, dict) else flat(obs)

    def _common_tensors(self) -> dict[str, torch.Tensor]:
        to = self.to_torch  # type: ignore[attr-defined]
        tensors = {
            # float32 like SB3 (MultiBinary's int8 would break Bernoulli.log_prob); Discrete is .long()ed in train
            "actions": to(self.actions.astype(np.float32, copy=False)),  # type: ignore[attr-defined]
            "values": to(self.values),  # type: ignore[attr-defined]
            "log_probs": to(self.log_probs),  # type: ignore[attr-defined]
            "advantages": to(self.advantages),  # type: ignore[attr-defined]
            "returns": to(self.returns),  # type: ignore[attr-defined]
            "episode_starts": to(self.episode_starts),  # type: ignore[attr-defined]
        }
        if self.cell_gae_lambda is not None:
            assert self.cell_advantages is not None, "compute_returns_and_advantage makes the cell's advantages"
            tensors["cell_advantages"] = to(self.cell_advantages)
        return tensors


# (add takes cell_state and get yields sequence minibatches: both differ from SB3's on purpose, as
# in sb3-contrib's RecurrentRolloutBuffer)
class RtxRolloutBuffer(_SequenceStorage, RolloutBuffer):  # type: ignore[misc]
    """SB3's ``RolloutBuffer`` plus cell states at sequence starts and sequence minibatches.

    :param sequence_length: steps per training sequence (truncated BPTT length); divides ``buffer_size``
    :param state_shapes: shape of each cell-state tensor for one env
    :param cell_gae_lambda: with a value, GAE's advantages at this lambda are kept too, as
        ``cell_advantages`` (RtxPPO's ``cell_gae_lambda``)
    """

    def _per_step_tensors(self) -> dict[str, Any]:
        return {"observations": self.to_torch(self.observations), **self._common_tensors()}


class RtxDictRolloutBuffer(_SequenceStorage, DictRolloutBuffer):  # type: ignore[misc]
    """The dict-observation twin of :class:`RtxRolloutBuffer`."""

    def _per_step_tensors(self) -> dict[str, Any]:
        return {"observations": {k: self.to_torch(v) for k, v in self.observations.items()}, **self._common_tensors()}


__all__ = ["RtxDictRolloutBuffer", "RtxRolloutBuffer", "RtxRolloutBufferSamples"]
