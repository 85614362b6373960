"""T-Maze: walk down a corridor, then turn into the arm that the first observation cued.

The memory task of Bakker (2001), as used in AGaLiTe (Pramanik et al., TMLR 2024). The cue (up or
down) is shown only in the observation returned by ``reset``; at the junction, at the end of the
corridor, the agent must turn into the cued arm. The junction looks the same whichever the cue, so
a memoryless policy succeeds at most half the time; a policy that remembers the cue always does.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_rtx.envs._checks import check_int_keyword

FORWARD, BACKWARD, UP, DOWN = 0, 1, 2, 3


class TMazeEnv(gym.Env):
    """Observation (``Box(0, 1, float32)``), in this order:

    - 2 cue bits, one-hot ``[up, down]``, set only in the observation returned by ``reset``;
    - the position ``0..corridor_len`` in Gray code, most significant bit first,
      ``corridor_len.bit_length()`` (= ``ceil(log2(corridor_len + 1))``) bits;
    - 1 junction flag, set at position ``corridor_len``;
    - ``num_distractors`` bits, drawn uniformly from ``np_random`` at every observation.

    Actions (``Discrete(4)``): 0 forward, 1 backward (clipped at 0), 2 up, 3 down. Up and down do
    nothing in the corridor; at the junction they end the episode with +4 (the cued arm,
    ``info["is_success"] = True``) or -1 (``False``). Every other step gives -0.1. After
    ``time_limit`` steps without a turn at the junction the episode is truncated
    (``is_success = False``).

    :param corridor_len: number of corridor cells before the junction (>= 2)
    :param num_distractors: random distractor bits per observation (>= 0)
    :param time_limit: steps before truncation (>= 1)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        corridor_len: int = 10,
        num_distractors: int = 0,
        time_limit: int = 1000,
        render_mode: str | None = None,
    ) -> None:
        self.corridor_len = check_int_keyword("TMaze", "corridor_len", corridor_len, 2)
        self.num_distractors = check_int_keyword("TMaze", "num_distractors", num_distractors, 0)
        self.time_limit = check_int_keyword("TMaze", "time_limit", time_limit, 1)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"TMaze: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.position_bits = self.corridor_len.bit_length()
        self.obs_size = 2 + self.position_bits + 1 + self.num_distractors
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.obs_size,), dtype=np.float32)
        self.action_space = spaces.Discrete(4)
        self._cue = 0  # 0: up, 1: down
        self._position = 0
        self._t = 0

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.obs_size, dtype=np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        gray = self._position ^ (self._position >> 1)  # neighbouring cells differ in one bit
        for i in range(self.position_bits):
            obs[2 + i] = (gray >> (self.position_bits - 1 - i)) & 1
        obs[2 + self.position_bits] = float(self._position == self.corridor_len)
        obs[3 + self.position_bits :] = self.np_random.integers(0, 2, size=self.num_distractors)
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(2))
        self._position = 0
        self._t = 0
        return self._observation(), {}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise ValueError(f"TMaze: action {action!r} is not in {self.action_space}")
        action = int(action)
        self._t += 1
        if self._position == self.corridor_len and action in (UP, DOWN):
            success = action - UP == self._cue
            return self._observation(), 4.0 if success else -1.0, True, False, {"is_success": success}
        if action == FORWARD:
            self._position = min(self._position + 1, self.corridor_len)
        elif action == BACKWARD:
            self._position = max(self._position - 1, 0)
        if self._t >= self.time_limit:
            return self._observation(), -0.1, False, True, {"is_success": False}
        return self._observation(), -0.1, False, False, {}

    def render(self) -> np.ndarray | None:
        """The corridor as a row of cells with the two arms at the junction; the agent lit white,
        the cued arm green while the cue is shown (the first step)."""
        if self.render_mode != "rgb_array":
            return None
        cell = 16
        image = np.full((3 * cell, (self.corridor_len + 1) * cell, 3), 40, dtype=np.uint8)
        image[cell + 1 : 2 * cell - 1, 1:-1] = 120  # corridor floor
        junction = slice(self.corridor_len * cell + 1, (self.corridor_len + 1) * cell - 1)
        image[1 : cell - 1, junction] = 120  # up arm
        image[2 * cell + 1 : -1, junction] = 120  # down arm
        if self._t == 0:
            arm = slice(1, cell - 1) if self._cue == 0 else slice(2 * cell + 1, 3 * cell - 1)
            image[arm, junction] = (60, 200, 60)
        x = self._position * cell
        image[cell + 3 : 2 * cell - 3, x + 3 : x + cell - 3] = 255
        return image
