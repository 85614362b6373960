"""The running advantage scale (RtxPPO's default ``normalize_advantage="running"``) as a contract:
what it counts, what it leaves out, what it does to a minibatch, and when it is kept."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from sb3_rtx import RtxPPO
from sb3_rtx.advantages import SCALE_EPS, RunningAdvantageScale, scale_advantages


def rollout(std: float, mean: float = 0.0, n_steps: int = 64, n_envs: int = 4, seed: int = 0) -> np.ndarray:
    """A rollout's advantages ``(n_steps, n_envs)`` with exactly this mean and standard deviation."""
    x = np.random.default_rng(seed).standard_normal((n_steps, n_envs))
    return ((x - x.mean()) / x.std() * std + mean).astype(np.float32)


def test_scale_is_the_root_of_the_mean_rollout_variance():
    running = RunningAdvantageScale()
    assert running.scale == 1.0  # nothing counted yet: advantages only centred
    running.update(rollout(2.0, mean=5.0))
    assert running.scale == pytest.approx(2.0, rel=1e-5)  # the mean does not enter it
    running.update(rollout(4.0, n_envs=1))  # one env: a (n_steps, 1) rollout
    assert running.scale == pytest.approx(math.sqrt((4 + 16) / 2), rel=1e-5)
    assert running.rollouts == 2


def test_minibatch_is_centred_then_divided_by_the_running_scale():
    advantages = torch.tensor([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(scale_advantages(advantages, "running", 2.0), [-1.5, -0.5, 0.5, 1.5], rtol=1e-6)
    # SB3's per-minibatch normalisation, and raw advantages
    sb3 = scale_advantages(advantages, True, 2.0)
    np.testing.assert_allclose(sb3, (advantages - 4.0) / (advantages.std() + SCALE_EPS), rtol=1e-6)
    assert torch.equal(scale_advantages(advantages, False, 2.0), advantages)
    # a minibatch of one advantage has no mean to take off: it is left as it is
    assert torch.equal(scale_advantages(torch.tensor([3.0]), "running", 2.0), torch.tensor([3.0]))


def test_a_rollout_of_equal_advantages_is_not_counted():
    """A task that pays nothing at first gives a rollout of equal advantages: it says nothing about
    their scale, so it leaves the scale at 1 (not 0, which would divide the next minibatch by eps)."""
    running = RunningAdvantageScale()
    running.update(np.full((64, 4), -0.01, dtype=np.float32))
    assert running.rollouts == 0 and running.scale == 1.0
    centred = scale_advantages(torch.tensor([0.0, 2.0]), "running", running.scale)
    np.testing.assert_allclose(centred, [-1.0, 1.0])
    running.update(rollout(3.0))
    assert running.scale == pytest.approx(3.0, rel=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_rollout_is_left_out_with_a_warning(bad):
    running = RunningAdvantageScale()
    running.update(rollout(2.0))
    advantages = rollout(5.0)
    advantages[3, 1] = bad
    with pytest.warns(RuntimeWarning, match=r"advantages are not finite \(variance nan\).*leaves them out"):
        running.update(advantages)
    assert running.rollouts == 1 and running.scale == pytest.approx(2.0, rel=1e-5)


def test_reset_forgets_every_rollout():
    running = RunningAdvantageScale()
    running.update(rollout(2.0))
    running.reset()
    assert (running.rollouts, running.variance_sum, running.scale) == (0, 0.0, 1.0)


def tiny_model(**kwargs) -> RtxPPO:
    return RtxPPO(
        "MlpRtxPolicy", "sb3_rtx/CueRecall-v0", n_steps=16, batch_size=16, n_epochs=1, seed=0,
        policy_kwargs=dict(cell="lstm", cell_kwargs=dict(hidden_size=8)), **kwargs,
    )  # fmt: skip


def test_the_statistic_is_kept_by_set_env_and_by_a_new_learn_call_and_saved(tmp_path):
    """The statistic belongs to the model: one rollout per update is counted, a later ``learn``
    (also with ``reset_num_timesteps=True``) and ``set_env`` go on from it, and it is saved."""
    model = tiny_model()
    model.learn(32)  # two rollouts of 16 steps
    counted = model.advantage_scale.rollouts
    assert counted == model._n_updates == 2
    variance_sum = model.advantage_scale.variance_sum
    assert variance_sum > 0
    model.set_env(model.get_env())
    model.learn(32, reset_num_timesteps=True)
    assert model.advantage_scale.rollouts == counted + 2
    assert model.advantage_scale.variance_sum > variance_sum
    model.save(tmp_path / "model.zip")
    loaded = RtxPPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.advantage_scale.rollouts == model.advantage_scale.rollouts
    assert loaded.advantage_scale.scale == model.advantage_scale.scale


def test_training_logs_the_scale_it_used():
    model = tiny_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a healthy run counts every rollout silently
        model.learn(16)
    assert model.logger.name_to_value["train/advantage_scale"] == pytest.approx(model.advantage_scale.scale)


def test_a_horizon_makes_the_scale_forget_older_rollouts():
    """With ``horizon=h`` the first h rollouts are averaged as without one, then each new one moves
    the mean variance 1/h of the way to its own, so a long quiet stretch stops lowering the scale."""
    stds = [0.001] * 40 + [1.0] * 10
    cumulative, forgetting = RunningAdvantageScale(), RunningAdvantageScale(horizon=4)
    expected = 0.0
    for i, std in enumerate(stds):
        cumulative.update(rollout(std, seed=i))
        forgetting.update(rollout(std, seed=i))
        expected = expected + (std**2 - expected) / min(i + 1, 4)
        assert forgetting.scale == pytest.approx(math.sqrt(expected), rel=1e-4)
        if i < 4:
            assert forgetting.scale == pytest.approx(cumulative.scale, rel=1e-6)
    # ten unit rollouts after forty quiet ones: the cumulative scale is still about half of 1
    assert cumulative.scale == pytest.approx(math.sqrt((40 * 1e-6 + 10) / 50), rel=1e-4)
    assert forgetting.scale == pytest.approx(math.sqrt(1 - 0.75**10 * (1 - 1e-6)), rel=1e-4) and forgetting.scale > 0.97


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "20"])
def test_a_bad_horizon_is_named(bad):
    with pytest.raises(
        ValueError, match=rf"advantage_scale_horizon must be None or a whole number of rollouts >= 1, got {bad!r}"
    ):
        tiny_model(advantage_scale_horizon=bad)


def test_the_horizon_is_used_by_training_and_saved(tmp_path):
    model = tiny_model(advantage_scale_horizon=1)
    model.learn(48)  # three rollouts; horizon 1: the scale is the last rollout's own
    assert model.advantage_scale.rollouts == 1
    assert model.advantage_scale.scale == pytest.approx(float(np.std(model.rollout_buffer.advantages, dtype=np.float64)))
    model.save(tmp_path / "model.zip")
    loaded = RtxPPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.advantage_scale_horizon == loaded.advantage_scale.horizon == 1
