"""CueRecall: the smallest memory task. Remember the cue of the first step, recall it at the end.

Step 0 shows one of ``n_cues`` cues (one-hot). The next ``delay`` steps show nothing. At the last
step (``delay + 1``) a query flag is set and the action chosen there is scored: reward 1 if it
names the cue, else 0. Actions before the query are ignored. A memoryless policy can do no better
than ``1 / n_cues``; a policy with memory reaches 1.
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_rtx.envs._checks import check_int_keyword


class CueRecallEnv(gym.Env):
    """Observation: ``n_cues`` cue bits, then a query flag. Action: ``Discrete(n_cues)``.

    :param n_cues: number of distinct cues (>= 2)
    :param delay: steps between the cue and the query (>= 0)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, n_cues: int = 2, delay: int = 8, render_mode: Optional[str] = None) -> None:
        self.n_cues = check_int_keyword("CueRecall", "n_cues", n_cues, 2)
        self.delay = check_int_keyword("CueRecall", "delay", delay, 0)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"CueRecall: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.n_cues + 1,), dtype=np.float32)
        self.action_space = spaces.Discrete(self.n_cues)
        self._cue = 0
        self._t = 0

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.n_cues + 1, dtype=np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        if self._t == self.delay + 1:
            obs[-1] = 1.0
        return obs

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(self.n_cues))
        self._t = 0
        return self._observation(), {}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise ValueError(f"CueRecall: action {action!r} is not in {self.action_space}")
        if self._t == self.delay + 1:  # the query step: score and end
            success = int(action) == self._cue
            return self._observation(), float(success), True, False, {"is_success": success}
        self._t += 1
        return self._observation(), 0.0, False, False, {}

    def render(self) -> Optional[np.ndarray]:
        """A strip of cells (one per step, the current one lit; the cue shown at step 0 as its shade)."""
        if self.render_mode != "rgb_array":
            return None
        cell = 16
        image = np.full((cell, cell * (self.delay + 2), 3), 40, dtype=np.uint8)
        shade = int(80 + 175 * self._cue / max(1, self.n_cues - 1))
        image[:, :cell] = (shade, 60, 255 - shade)
        image[2:-2, self._t * cell + 2 : (self._t + 1) * cell - 2] = 230
        return image
