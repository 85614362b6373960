"""Memory Maze (Pasukonis et al., ICLR 2023; package ``memory-maze``) as a gymnasium env for SB3.

Memory Maze is a dm_env built on dm_control and MuJoCo. Its own gym registration (``import
memory_maze``) targets the old ``gym`` package, and in memory-maze 1.0.3 ``import memory_maze``
*fails* when ``gym`` is absent (its ``__init__`` re-raises the ImportError). The adapter therefore
loads ``memory_maze.tasks`` without running that ``__init__`` when ``gym`` is missing, builds the
task (``memory_maze_9x9`` ... ``memory_maze_15x15``) and converts dm_env to gymnasium:

- observations: the 64x64x3 uint8 egocentric image (``image_only_obs=True``, the benchmark's
  standard setting, target colour drawn as the image border); with ``image_only_obs=False`` or
  ``global_observables=True`` a ``Dict`` space (use ``MultiInputRtxPolicy``);
- actions: ``Discrete(6)`` (noop, forward, left, right, forward+left, forward+right);
- episode end: Memory Maze only ends at its time limit (1000 steps at 9x9, 4,000 at 15x15), which
  dm_env reports as a last step with discount 1: that is ``truncated=True`` here; a discount of
  0 would be ``terminated``;
- seeding: Memory Maze seeds a task when it is built, so ``reset(seed=s)`` builds it anew with
  seed ``s`` (a few seconds); unseeded resets continue the current task's random stream.

Rendering needs MuJoCo's OpenGL: ``MUJOCO_GL`` defaults to ``egl`` here as in memory_maze (on a
machine without a GPU, Mesa's EGL renders in software: slower, but it works);
``MUJOCO_GL=osmesa`` needs the OSMesa library (Debian: ``libosmesa6``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_rtx.envs.suites._common import SuiteNotInstalledError, require

_SUITE = "Memory Maze (memory-maze)"
_TASKS = {"9x9": "memory_maze_9x9", "11x11": "memory_maze_11x11", "13x13": "memory_maze_13x13", "15x15": "memory_maze_15x15"}


def _memory_maze_tasks() -> types.ModuleType:
    """``memory_maze.tasks``, importable with or without the old ``gym`` package."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # what memory_maze's __init__ does
    try:
        return require("memory_maze.tasks", "memorymaze", _SUITE)
    except SuiteNotInstalledError:
        raise
    except ModuleNotFoundError as error:
        if error.name != "gym":
            raise
    # memory_maze/__init__.py only registers old-gym ids after `from . import tasks`, then re-raises
    # the ImportError for `gym`: load the package as a bare module (its __path__ only) instead.
    spec = importlib.util.find_spec("memory_maze")
    if spec is None or spec.submodule_search_locations is None:
        raise SuiteNotInstalledError(
            f"memory_maze was found but is not a package (spec {spec}); reinstall the [memorymaze] extra"
        )
    package = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("memory_maze", None, is_package=True))
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["memory_maze"] = package
    return importlib.import_module("memory_maze.tasks")


def _space(spec: Any) -> spaces.Space:
    """A dm_env spec as a gymnasium space (the inverse of acme's spec conversion, as memory_maze's own
    ``gym_wrappers._convert_to_space``)."""
    from dm_env import specs

    if isinstance(spec, specs.DiscreteArray):
        return spaces.Discrete(spec.num_values)
    if isinstance(spec, specs.BoundedArray):
        low = np.broadcast_to(spec.minimum, spec.shape).astype(spec.dtype)
        high = np.broadcast_to(spec.maximum, spec.shape).astype(spec.dtype)
        return spaces.Box(low=low, high=high, shape=spec.shape, dtype=spec.dtype)
    if isinstance(spec, specs.Array):
        dtype = np.float32 if np.issubdtype(spec.dtype, np.floating) else spec.dtype
        return spaces.Box(-np.inf, np.inf, shape=spec.shape, dtype=dtype)
    if isinstance(spec, dict):
        return spaces.Dict({key: _space(value) for key, value in spec.items()})
    raise TypeError(f"Memory Maze: unexpected dm_env spec {spec!r}")


class MemoryMazeEnv(gym.Env):
    """Memory Maze of ``size`` (``"9x9"``, ``"11x11"``, ``"13x13"``, ``"15x15"``) as a gymnasium env.

    Other keywords go to memory_maze's task function (e.g. ``good_visibility``, ``control_freq``,
    ``camera_resolution``, ``randomize_colors``, ``global_observables``, ``image_only_obs``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, size: str = "9x9", render_mode: str | None = None, **task_kwargs: Any) -> None:
        if size not in _TASKS:
            raise ValueError(f"Memory Maze: size must be one of {sorted(_TASKS)}, got {size!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"Memory Maze: render_mode must be None or 'rgb_array', got {render_mode!r}")
        if "seed" in task_kwargs:
            raise ValueError("Memory Maze: seed through reset(seed=...), not as a keyword")
        self.render_mode = render_mode
        self._task = getattr(_memory_maze_tasks(), _TASKS[size])
        self._task_kwargs = {"image_only_obs": True, **task_kwargs}
        # an unseeded env gets a fresh random task (as gymnasium's unseeded np_random); reset(seed=)
        # rebuilds it with that seed
        self._env = self._task(seed=int(np.random.default_rng().integers(2**31 - 1)), **self._task_kwargs)
        self.observation_space = _space(self._env.observation_spec())
        self.action_space = _space(self._env.action_spec())
        self._last_image: np.ndarray | None = None

    def _observation(self, observation: Any) -> Any:
        if isinstance(self.observation_space, spaces.Dict):
            out = {key: np.asarray(value, dtype=self.observation_space[key].dtype) for key, value in observation.items()}
            self._last_image = out.get("image")
            return out
        self._last_image = np.asarray(observation, dtype=self.observation_space.dtype)
        return self._last_image

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.close()
            self._env = self._task(seed=int(self.np_random.integers(2**31 - 1)), **self._task_kwargs)
        timestep = self._env.reset()
        return self._observation(timestep.observation), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"Memory Maze: action {action!r} is not in {self.action_space}")
        timestep = self._env.step(int(action) if isinstance(self.action_space, spaces.Discrete) else action)
        last = timestep.last()
        terminated = bool(last and timestep.discount == 0.0)
        truncated = bool(last and not terminated)
        return self._observation(timestep.observation), float(timestep.reward or 0.0), terminated, truncated, {}

    def render(self) -> np.ndarray | None:
        return None if self.render_mode is None else self._last_image

    def close(self) -> None:
        if self._env is not None:  # dm_control's close is not idempotent
            self._env.close()
            self._env = None
