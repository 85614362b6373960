"""How RtxPPO scales its advantages before the policy loss.

SB3's PPO (``normalize_advantage=True``) divides each minibatch's advantages by their standard
deviation, so every policy step has the same size whatever the advantages hold. When a task pays
no differences at all, as a sparse-reward task does before the first reward (T-Maze's constant
step cost), they hold only the critic's residual error, which shrinks as the critic fits; divided
by its own size it becomes unit-sized noise, and the policy drifts on it, away from ever finding the
reward (docs, "Learning memory"). Raw advantages (``False``) do not drift, but then the step size
follows the task's reward scale, and a task with small rewards learns slowly.

``"running"`` (RtxPPO's default) centres each minibatch as SB3 does and divides by the task's
advantage scale, the root of the mean of every rollout's advantage variance so far
(:class:`RunningAdvantageScale`): a task whose signal is steady is normalised as SB3 would, and a
signal that vanishes stays small instead of being blown up to unit size. The statistic is
cumulative, without a horizon to choose, as SB3's ``VecNormalize`` keeps its running statistics
(reward scaling in PPO: Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients").
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

#: RtxPPO's ``normalize_advantage``: SB3's per-minibatch normalisation, raw advantages, or the running scale
ADVANTAGE_NORMALISATIONS = (True, False, "running")
#: keeps the division finite when every advantage so far was the same
SCALE_EPS = 1e-8


def check_normalize_advantage(value: Any) -> bool | str:
    """``value`` if it is one of :data:`ADVANTAGE_NORMALISATIONS`, else an error that names it."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value == "running":
        return "running"
    raise ValueError(f"RtxPPO: normalize_advantage must be True, False or 'running', got {value!r}")


def check_horizon(value: Any) -> int | None:
    """``value`` if it is None or a positive whole number of rollouts, else an error that names it."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"RtxPPO: advantage_scale_horizon must be None or a whole number of rollouts >= 1, got {value!r}")
    return int(value)


class RunningAdvantageScale:
    """The root of the mean, over the rollouts so far, of the variance of each rollout's advantages.

    Rules (each tested with values in tests/test_advantages.py):

    * before any rollout is counted the scale is 1.0 (advantages are only centred);
    * a rollout whose advantages are all equal (variance 0) says nothing about their scale and is
      not counted, so a task that pays nothing at first does not start from a scale of 0;
    * a rollout with a non-finite advantage, or whose variance overflows, is not counted, with a
      warning: one bad rollout must not leave the scale NaN for every later update (the update's own
      finite check then names the loss);
    * the statistic belongs to the model: saved and loaded with it, kept by ``set_env`` and by
      ``learn(reset_num_timesteps=True)``, which go on training the same policy; :meth:`reset` starts
      it afresh (a new task);
    * with a ``horizon`` of ``h`` rollouts it is the plain mean of the first ``h`` counted rollouts'
      variances, then an exponential average with weight ``1 / h`` on each new one: rollouts older
      than about ``h`` are forgotten. ``None`` (the default) never forgets.
    """

    #: rollouts after which the mean becomes an exponential average (None: cumulative); a class
    #: attribute too, so that a statistic saved before it existed loads as the cumulative one
    horizon: int | None = None

    def __init__(self, horizon: int | None = None) -> None:
        self.horizon = check_horizon(horizon)
        self.variance_sum = 0.0
        self.rollouts = 0

    def update(self, advantages: np.ndarray) -> None:
        """Count one rollout's advantages (see the class docstring for what is not counted)."""
        with np.errstate(over="ignore", invalid="ignore"):
            variance = float(np.var(advantages, dtype=np.float64))
        if not math.isfinite(variance):
            warnings.warn(
                f"RtxPPO: this rollout's advantages are not finite (variance {variance}); the running "
                "advantage scale leaves them out",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if variance == 0.0:
            return
        if self.horizon is not None and self.rollouts >= self.horizon:
            # sum / rollouts moves 1 / horizon of the way to this variance: an exponential average
            self.variance_sum *= (self.horizon - 1) / self.horizon
            self.rollouts = self.horizon
            self.variance_sum += variance
            return
        self.variance_sum += variance
        self.rollouts += 1

    def reset(self) -> None:
        """Forget every rollout counted so far."""
        self.variance_sum, self.rollouts = 0.0, 0

    @property
    def scale(self) -> float:
        """The running scale (1.0 before any rollout is counted)."""
        return math.sqrt(self.variance_sum / self.rollouts) if self.rollouts else 1.0


def scale_advantages(advantages: torch.Tensor, normalize_advantage: bool | str, running_scale: float) -> torch.Tensor:
    """One minibatch's advantages as the policy loss takes them (see the module docstring)."""
    if not normalize_advantage or len(advantages) < 2:
        return advantages
    centred = advantages - advantages.mean()
    if normalize_advantage == "running":
        return centred / (running_scale + SCALE_EPS)
    return centred / (advantages.std() + SCALE_EPS)
