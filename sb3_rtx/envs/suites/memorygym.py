"""Mystery Path (Pleines et al., "Memory Gym", ICLR 2023; package ``memory-gym``) for SB3.

Memory Gym's envs are gymnasium envs already (84x84x3 uint8 images). The adapter fixes what does
not fit gymnasium 1.x and SB3 (read from memory-gym 1.0.2's ``mystery_path*.py``):

- *time limit*: memory-gym ends an episode that runs out of steps with ``terminated=True``; here it
  is ``truncated=True`` (the agent did not fail; PPO should bootstrap), reaching the goal stays
  ``terminated``;
- *success*: its episode-end ``info["success"]`` (0/1) is also given as ``info["is_success"]``
  (bool), which SB3's logger and rl_zoo3 report as a success rate;
- *image orientation*: it returns pygame's surface array, which is (x, y, colour); observations
  here are (row, column, colour) like every other image env (and like its own ``render()``);
- *reset parameters*: its task settings are ``reset(options=...)`` dicts; here they are the
  ``reset_params`` keyword, so ``gym.make`` / ``--env-kwargs reset_params:"dict(max_steps=256)"``
  set them once (a ``reset(options=...)`` still overrides them for one episode);
- *one pygame display per process*: all memory-gym envs of a process draw on the same pygame
  display, and its ``close()`` calls ``pygame.quit()``, which breaks every other env still open
  in that process (e.g. the other envs of a ``DummyVecEnv``); here the last one to close quits.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_rtx.envs.suites._common import require

_TASKS = {  # our id -> (memory_gym module, class)
    "MysteryPath-v0": ("memory_gym.mystery_path", "MysteryPathEnv"),
    "MysteryPath-Grid-v0": ("memory_gym.mystery_path_grid", "GridMysteryPathEnv"),
}
_open_envs = 0  # memory-gym envs open in this process (they share one pygame display)


class MemoryGymEnv(gym.Wrapper):
    """A Memory Gym task (``task``: ``"MysteryPath-v0"`` or ``"MysteryPath-Grid-v0"``) for SB3.

    :param task: which task
    :param reset_params: memory-gym reset parameters for every episode (e.g. ``max_steps``,
        ``show_origin``, ``reward_fall_off``); see memory-gym's ``default_reset_parameters``
    :param render_mode: ``None``, ``"rgb_array"`` or ``"debug_rgb_array"`` (memory-gym's)
    """

    def __init__(self, task: str, reset_params: dict[str, Any] | None = None, render_mode: str | None = None) -> None:
        global _open_envs
        if task not in _TASKS:
            raise ValueError(f"Memory Gym: unknown task {task!r}; known: {sorted(_TASKS)}")
        # no audio device on servers: keep SDL (pygame.init) from probing ALSA
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        module_name, class_name = _TASKS[task]
        # a missing memory_gym (the parent package) gets the same clear error from this require
        module = require(module_name, "memorygym", "Mystery Path (memory-gym)")
        cls = getattr(module, class_name)
        self.reset_params = dict(reset_params or {})
        unknown = sorted(set(self.reset_params) - set(cls.default_reset_parameters))
        if unknown:  # memory-gym would only assert at the first reset
            raise ValueError(
                f"Memory Gym {task}: unknown reset_params {unknown}; known: {sorted(cls.default_reset_parameters)}"
            )
        env = cls(render_mode=render_mode)
        _open_envs += 1
        self._closed = False
        super().__init__(env)
        width, height, channels = env.observation_space.shape  # pygame's (x, y, colour)
        self.observation_space = spaces.Box(0, 255, (height, width, channels), dtype=np.uint8)

    @staticmethod
    def _image(observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(observation, (1, 0, 2)))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = self.env.reset(seed=seed, options={**self.reset_params, **(options or {})})
        return self._image(observation), info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        if "success" in info:  # memory-gym's episode-end info
            info = {**info, "is_success": bool(info["success"])}
            inner = self.env.unwrapped
            if not info["is_success"] and getattr(inner, "t", None) == getattr(inner, "max_episode_steps", None):
                terminated, truncated = False, True
        return self._image(observation), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        global _open_envs
        if self._closed:
            return
        self._closed = True
        _open_envs -= 1
        if _open_envs == 0:
            self.env.close()  # pygame.quit(): only once no memory-gym env of this process is open
