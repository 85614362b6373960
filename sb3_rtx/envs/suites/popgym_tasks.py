"""POPGym (Morad et al., ICLR 2023; package ``popgym``) as flat float32 observations for SB3.

POPGym's envs are already gymnasium envs, but many observe ``Discrete``, ``MultiDiscrete`` or
``Tuple`` spaces, which SB3's ``MlpPolicy`` does not take as they are (Tuple not at all). The
adapter one-hot encodes and concatenates them into one ``Box(float32)`` vector with
gymnasium's ``spaces.flatten``. Tasks whose class sets ``obs_requires_prev_action`` (Battleship,
Concentration, MineSweeper, MultiarmedBandit) get POPGym's own ``PreviousAction`` wrapper first,
as POPGym's baselines do: without the last action their observation does not say what it is
the answer to. Actions stay as POPGym defines them (``Discrete``, ``MultiDiscrete`` or ``Box``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_rtx.envs.suites._common import require


class FlattenToFloat32(gym.ObservationWrapper):
    """Any observation space as one flat ``Box(float32)``: discrete parts one-hot, parts concatenated."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.metadata = {**env.metadata, "render_modes": []}  # see make_popgym: no render_mode
        flat = spaces.flatten_space(env.observation_space)
        if not isinstance(flat, spaces.Box):  # POPGym's spaces are Box/Discrete/MultiDiscrete/Tuple
            raise TypeError(f"POPGym: cannot flatten {env.observation_space} to a Box, got {flat}")
        self.observation_space = spaces.Box(
            low=flat.low.astype(np.float32), high=flat.high.astype(np.float32), dtype=np.float32
        )

    def observation(self, observation: Any) -> np.ndarray:
        return np.asarray(spaces.flatten(self.env.observation_space, observation), dtype=np.float32)

    @staticmethod
    def _own(info: dict) -> dict:
        # some POPGym tasks (CountRecall) return the same array in every info: copy, so that the
        # infos SB3 keeps (Monitor, VecEnv buffers) are not changed by later steps
        return {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in info.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observation, info = super().reset(seed=seed, options=options)
        return observation, self._own(info)

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = super().step(action)
        # POPGym returns int 0 rewards at some steps (RepeatPrevious before k cards): always a float
        return observation, float(reward), bool(terminated), bool(truncated), self._own(info)


def make_popgym(task: str, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """POPGym's ``task`` class (e.g. ``"RepeatPreviousEasy"``), wrapped for SB3; ``kwargs`` go to it.

    POPGym's envs have no gymnasium ``render_mode`` (popgym 1.0 renders some tasks as text through
    its own ``render`` methods; the Easy/Medium/Hard classes take no keywords at all), so a
    ``render_mode`` (SB3's ``make_vec_env`` passes ``"rgb_array"``) is not passed on: the env
    declares no render modes, and gymnasium's ``make`` warns that the one asked for is not among them.
    """
    del render_mode
    envs = require("popgym.envs", "popgym", "POPGym")
    cls = getattr(envs, task, None)
    if cls is None:
        raise ValueError(f"POPGym: no task {task!r} in this popgym version ({getattr(envs, '__file__', '')})")
    env = cls(**kwargs)
    if getattr(env, "obs_requires_prev_action", False):
        from popgym.wrappers import PreviousAction

        env = PreviousAction(env)
    return FlattenToFloat32(env)
