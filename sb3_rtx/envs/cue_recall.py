"""CueRecall: the smallest memory task. Remember the cue of the first step, recall it at the end.

Step 0 shows one of ``n_cues`` cues (one-hot). The next ``delay`` steps show no cue. At the last
step (``delay + 1``) a query flag is set and the action chosen there is scored: reward 1 if it
names the cue, else 0. Actions before the query are ignored. A memoryless policy can do no better
than ``1 / n_cues``; a policy with memory reaches 1.

Harder variants, each a keyword:

* ``noise_dims`` extra observation dimensions of fresh noise at every step (``noise="uniform"`` in
  [-1, 1], ``"normal"`` with unit variance, or ``"binary"`` in {0, 1}): a memory must learn what
  to keep and what to let pass, as in any real observation stream;
* ``decoys`` later steps of the delay (chosen at random, never the query step) that show another
  random cue on the same cue bits: only the *first* cue counts, so a memory that keeps the latest
  cue, or a blend of all of them, fails.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_rtx.envs._checks import check_int_keyword

#: noise distributions of the ``noise_dims`` observation dimensions, and their bounds
NOISE_BOUNDS = {"uniform": (-1.0, 1.0), "normal": (-np.inf, np.inf), "binary": (0.0, 1.0)}
NOISE_KINDS = tuple(NOISE_BOUNDS)


class CueRecallEnv(gym.Env):
    """Observation: ``n_cues`` cue bits, a query flag, then ``noise_dims`` noise values.
    Action: ``Discrete(n_cues)``.

    :param n_cues: number of distinct cues (>= 2)
    :param delay: steps between the cue and the query (>= 0)
    :param noise_dims: observation dimensions of noise, redrawn every step (>= 0)
    :param noise: their distribution: ``"uniform"`` (in [-1, 1]), ``"normal"`` or ``"binary"``
    :param decoys: steps of the delay that show a random decoy cue (0 <= decoys <= delay)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        n_cues: int = 2,
        delay: int = 8,
        noise_dims: int = 0,
        noise: str = "uniform",
        decoys: int = 0,
        render_mode: str | None = None,
    ) -> None:
        self.n_cues = check_int_keyword("CueRecall", "n_cues", n_cues, 2)
        self.delay = check_int_keyword("CueRecall", "delay", delay, 0)
        self.noise_dims = check_int_keyword("CueRecall", "noise_dims", noise_dims, 0)
        self.decoys = check_int_keyword("CueRecall", "decoys", decoys, 0)
        if self.decoys > self.delay:
            raise ValueError(f"CueRecall: decoys must be <= delay={self.delay} (one per delay step at most), got {decoys!r}")
        if noise not in NOISE_KINDS:
            raise ValueError(f"CueRecall: noise must be one of {NOISE_KINDS}, got {noise!r}")
        self.noise = noise
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"CueRecall: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        low, high = NOISE_BOUNDS[noise]
        lows = np.array([0.0] * (self.n_cues + 1) + [low] * self.noise_dims, dtype=np.float32)
        highs = np.array([1.0] * (self.n_cues + 1) + [high] * self.noise_dims, dtype=np.float32)
        self.observation_space = spaces.Box(lows, highs, dtype=np.float32)
        self.action_space = spaces.Discrete(self.n_cues)
        self._cue = 0
        self._t = 0
        self._decoy_cues: dict[int, int] = {}

    def _noise(self) -> np.ndarray:
        if self.noise == "uniform":
            return self.np_random.uniform(-1.0, 1.0, self.noise_dims)
        if self.noise == "normal":
            return self.np_random.standard_normal(self.noise_dims)
        return self.np_random.integers(0, 2, self.noise_dims).astype(np.float64)

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.n_cues + 1 + self.noise_dims, dtype=np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        elif self._t in self._decoy_cues:
            obs[self._decoy_cues[self._t]] = 1.0
        if self._t == self.delay + 1:
            obs[self.n_cues] = 1.0
        if self.noise_dims:
            obs[self.n_cues + 1 :] = self._noise()
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(self.n_cues))
        self._t = 0
        steps: Any = []  # the delay steps that show a decoy
        if self.decoys:
            steps = self.np_random.choice(np.arange(1, self.delay + 1), size=self.decoys, replace=False)
        self._decoy_cues = {int(t): int(self.np_random.integers(self.n_cues)) for t in steps}
        return self._observation(), {}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise ValueError(f"CueRecall: action {action!r} is not in {self.action_space}")
        if self._t == self.delay + 1:  # the query step: score and end
            success = int(action) == self._cue
            return self._observation(), float(success), True, False, {"is_success": success}
        self._t += 1
        return self._observation(), 0.0, False, False, {}

    def render(self) -> np.ndarray | None:
        """A strip of cells (one per step, the current one lit; the cue shown at step 0 as its shade)."""
        if self.render_mode != "rgb_array":
            return None
        cell = 16
        image = np.full((cell, cell * (self.delay + 2), 3), 40, dtype=np.uint8)
        shade = int(80 + 175 * self._cue / max(1, self.n_cues - 1))
        image[:, :cell] = (shade, 60, 255 - shade)
        image[2:-2, self._t * cell + 2 : (self._t + 1) * cell - 2] = 230
        return image
