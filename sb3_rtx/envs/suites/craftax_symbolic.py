"""Craftax (Matthews et al., ICML 2024; package ``craftax``, JAX) as a gymnasium env for SB3.

Craftax is a pure-JAX environment with a gymnax-style functional API (``reset(key, params) ->
(obs, state)``, ``step(key, state, action, params) -> (obs, state, reward, done, info)``). The
adapter keeps one env's JAX state and PRNG key in a gymnasium env, so SB3 vectorises it like any
other env (one env per ``DummyVecEnv`` / ``SubprocVecEnv`` slot, on the CPU):

- observations: the symbolic observation, ``Box(0, 1, float32)`` of 8,268 values (Craftax) or
  1,345 (Craftax-Classic); actions: ``Discrete(43)`` / ``Discrete(17)``;
- episode end: death, the final boss beaten (Craftax) or lava (Classic) are ``terminated``;
  reaching ``max_timesteps`` (100,000 / 10,000 by default; the ``max_timesteps`` keyword changes
  it) is ``truncated``;
- ``info["achievements"]`` at the last step of an episode: the achievements unlocked in it
  (name -> bool), from Craftax's ``Achievements/<name>`` info;
- compilation: JAX compiles ``reset`` and ``step`` on first use, once per process and task
  (tens of seconds for Craftax on a CPU, about 15 s for Classic): every env of the same task in a
  process shares one Craftax env object, so the compiled functions are reused.

Craftax on a GPU (``jax[cuda]``) with thousands of envs vectorised in JAX is how the paper ran
it; through SB3 each step crosses from Python to JAX, a few milliseconds per step on a CPU.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_rtx.envs._checks import check_int_keyword
from sb3_rtx.envs.suites._common import require

_SUITE = "Craftax (craftax, JAX)"
_SHARED: dict[str, Any] = {}  # craftax name -> its env object, shared so JAX compiles once per process


def _craftax_env(name: str) -> Any:
    if name not in _SHARED:
        require("jax", "craftax", _SUITE)
        craftax_env = require("craftax.craftax_env", "craftax", _SUITE)
        _SHARED[name] = craftax_env.make_craftax_env_from_name(name, auto_reset=False)
    return _SHARED[name]


class CraftaxSymbolicEnv(gym.Env):
    """Craftax's symbolic task ``name`` (``"Craftax-Symbolic-v1"`` or ``"Craftax-Classic-Symbolic-v1"``).

    :param max_timesteps: steps before an episode is truncated (default: Craftax's own)
    """

    metadata = {"render_modes": []}

    def __init__(self, name: str = "Craftax-Symbolic-v1", max_timesteps: int | None = None) -> None:
        if name not in ("Craftax-Symbolic-v1", "Craftax-Classic-Symbolic-v1"):
            raise ValueError(f"Craftax: name must be 'Craftax-Symbolic-v1' or 'Craftax-Classic-Symbolic-v1', got {name!r}")
        if max_timesteps is not None:  # before the env is built: that compiles for tens of seconds
            max_timesteps = check_int_keyword("Craftax", "max_timesteps", max_timesteps, 1)
        self._env = _craftax_env(name)
        import jax  # after _craftax_env's require, so a missing jax gets the clear error

        self._jax = jax
        self._params = self._env.default_params
        if max_timesteps is not None:
            self._params = self._params.replace(max_timesteps=max_timesteps)
        self.max_timesteps = int(self._params.max_timesteps)
        space = self._env.observation_space(self._params)
        self.observation_space = spaces.Box(0.0, 1.0, shape=tuple(space.shape), dtype=np.float32)
        self.action_space = spaces.Discrete(int(self._env.action_space(self._params).n))
        self._state: Any = None
        self._key: Any = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._key = self._jax.random.PRNGKey(int(self.np_random.integers(2**31 - 1)))
        self._key, key = self._jax.random.split(self._key)
        observation, self._state = self._env.reset(key, self._params)
        return np.asarray(observation, dtype=np.float32), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("Craftax: call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"Craftax: action {action!r} is not in {self.action_space}")
        self._key, key = self._jax.random.split(self._key)
        observation, self._state, reward, done, info = self._env.step(key, self._state, int(action), self._params)
        observation, reward, done = self._jax.device_get((observation, reward, done))
        info_out: dict[str, Any] = {}
        terminated = truncated = False
        if done:
            timestep, health = self._jax.device_get((self._state.timestep, self._state.player_health))
            truncated = bool(timestep >= self.max_timesteps and health > 0)
            terminated = not truncated
            achievements = self._jax.device_get({k: v for k, v in info.items() if k.startswith("Achievements/")})
            info_out["achievements"] = {k.split("/", 1)[1]: bool(v > 0) for k, v in achievements.items()}
        return np.asarray(observation, dtype=np.float32), float(reward), terminated, truncated, info_out
