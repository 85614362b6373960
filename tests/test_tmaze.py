"""The T-Maze task: its rules, its observation layout, its seeding, and why it needs memory."""

import itertools
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sb3_rtx  # noqa: F401  (registers sb3_rtx/TMaze-v0)
from sb3_rtx.envs import TMazeEnv

FORWARD, BACKWARD, UP, DOWN = 0, 1, 2, 3


def make(**kwargs) -> gym.Env:
    return gym.make("sb3_rtx/TMaze-v0", **kwargs)


def cued_arm(first_obs: np.ndarray) -> int:
    assert first_obs[:2].sum() == 1.0  # exactly one cue bit in the first observation
    return UP if first_obs[0] == 1.0 else DOWN


def junction(env: gym.Env, obs: np.ndarray) -> bool:
    return bool(obs[2 + env.unwrapped.position_bits])


def position(env: gym.Env, obs: np.ndarray) -> int:
    """Decode the Gray-coded position bits (most significant first)."""
    gray = 0
    for bit in obs[2 : 2 + env.unwrapped.position_bits]:
        gray = 2 * gray + int(bit)
    binary = 0
    while gray:
        binary ^= gray
        gray >>= 1
    return binary


def test_check_env():
    env = make(corridor_len=5, num_distractors=3)
    check_env(env.unwrapped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    # the only complaint about the made env is that it is wrapped (OrderEnforcing, PassiveEnvChecker)
    messages = [str(w.message) for w in caught]
    assert all("different from the unwrapped version" in message for message in messages), messages
    check_env(make(corridor_len=2, render_mode="rgb_array").unwrapped)


@pytest.mark.parametrize("corridor_len,bits", [(2, 2), (3, 2), (4, 3), (7, 3), (8, 4), (10, 4)])
def test_observation_layout(corridor_len, bits):
    env = make(corridor_len=corridor_len, num_distractors=3)
    assert env.observation_space.shape == (2 + bits + 1 + 3,)
    assert env.observation_space.dtype == np.float32
    assert env.action_space == gym.spaces.Discrete(4)
    obs, _ = env.reset(seed=0)
    codes = [tuple(obs[2 : 2 + bits])]
    for step in range(corridor_len):
        obs, *_ = env.step(FORWARD)
        codes.append(tuple(obs[2 : 2 + bits]))
        assert position(env, obs) == step + 1
        assert junction(env, obs) == (step + 1 == corridor_len)
    assert codes[0] == (0.0,) * bits and len(set(codes)) == corridor_len + 1
    # Gray code: neighbouring cells differ in exactly one bit
    assert all(np.abs(np.subtract(a, b)).sum() == 1 for a, b in itertools.pairwise(codes))


def test_walk_to_junction_and_cue_only_first():
    env = make(corridor_len=6, num_distractors=2)
    obs, info = env.reset(seed=3)
    assert info == {} and position(env, obs) == 0 and not junction(env, obs)
    cued_arm(obs)
    for _ in range(6):
        obs, reward, terminated, truncated, info = env.step(FORWARD)
        assert reward == pytest.approx(-0.1) and not terminated and not truncated and "is_success" not in info
        assert obs[:2].sum() == 0.0  # the cue is gone after the first observation
    assert junction(env, obs) and position(env, obs) == 6
    obs, reward, terminated, truncated, _ = env.step(FORWARD)  # forward at the junction stays there
    assert junction(env, obs) and position(env, obs) == 6
    assert reward == pytest.approx(-0.1) and not terminated and not truncated
    obs, reward, *_ = env.step(BACKWARD)
    assert position(env, obs) == 5 and not junction(env, obs) and reward == pytest.approx(-0.1)


@pytest.mark.parametrize("correct", [True, False])
def test_turn_at_junction(correct):
    arms = set()
    for seed in range(4):
        env = make(corridor_len=3)
        obs, _ = env.reset(seed=seed)
        arm = cued_arm(obs)
        arms.add(arm)
        for _ in range(3):
            env.step(FORWARD)
        choice = arm if correct else (DOWN if arm == UP else UP)
        _, reward, terminated, truncated, info = env.step(choice)
        assert terminated and not truncated
        assert reward == (4.0 if correct else -1.0)
        assert info["is_success"] is correct
    assert arms == {UP, DOWN}  # both cues came up, so both turns were scored


def test_corridor_moves():
    env = make(corridor_len=4)
    obs, _ = env.reset(seed=0)
    for action in (BACKWARD, UP, DOWN):  # at position 0 none of these moves the agent or ends the episode
        obs, reward, terminated, truncated, info = env.step(action)
        assert position(env, obs) == 0 and reward == pytest.approx(-0.1)
        assert not terminated and not truncated and info == {}
    env.step(FORWARD)
    env.step(FORWARD)
    for cell in (2, 3):  # up/down elsewhere in the corridor, next to the junction too, do nothing either
        for action in (UP, DOWN):
            obs, reward, terminated, _, _ = env.step(action)
            assert position(env, obs) == cell and not terminated and reward == pytest.approx(-0.1)
        env.step(FORWARD)
    with pytest.raises(ValueError, match="action"):
        env.unwrapped.step(4)


def test_truncation_at_time_limit():
    env = make(corridor_len=5, time_limit=3)
    env.reset(seed=0)
    for step in range(1, 4):
        _, reward, terminated, truncated, info = env.step(FORWARD)
        assert not terminated and reward == pytest.approx(-0.1)
        assert truncated == (step == 3)
    assert info == {"is_success": False}
    # a turn at the junction on the very last allowed step ends the episode as a success, not a truncation
    env = make(corridor_len=2, time_limit=3)
    obs, _ = env.reset(seed=0)
    env.step(FORWARD)
    env.step(FORWARD)
    _, reward, terminated, truncated, info = env.step(cued_arm(obs))
    assert terminated and not truncated and reward == 4.0 and info["is_success"] is True
    # with the default time_limit, an agent that never turns is truncated after 1000 steps
    env = make(corridor_len=2)
    env.reset(seed=0)
    truncated_at = next(t for t in range(1, 1001) if env.step(FORWARD)[3])
    assert truncated_at == 1000


def rollout(seed: int, actions: list[int], **kwargs) -> np.ndarray:
    env = make(**kwargs)
    obs, _ = env.reset(seed=seed)
    observations = [obs]
    for action in actions:
        obs, *_ = env.step(action)
        observations.append(obs)
    return np.stack(observations)


def test_seeding():
    actions = [FORWARD, UP, BACKWARD, FORWARD, FORWARD, DOWN, FORWARD, FORWARD]
    kwargs = dict(corridor_len=5, num_distractors=4)
    first = rollout(7, actions, **kwargs)
    np.testing.assert_array_equal(first, rollout(7, actions, **kwargs))
    distractors = first[:, -4:]
    assert set(np.unique(distractors)) == {0.0, 1.0}  # distractors are random bits, not constant
    assert any(not np.array_equal(first, rollout(seed, actions, **kwargs)) for seed in range(8, 11))
    # the distractors alone differ between seeds too (not only the cue)
    assert any(not np.array_equal(distractors, rollout(seed, actions, **kwargs)[:, -4:]) for seed in range(8, 11))
    # resets without a seed continue the generator: the cue varies across the episodes of one env
    env = make(**kwargs)
    env.reset(seed=7)
    assert {cued_arm(env.reset()[0]) for _ in range(20)} == {UP, DOWN}


def test_junction_hides_the_cue():
    """After the first observation, nothing the agent sees depends on the cue."""
    up_seed = next(s for s in range(20) if cued_arm(rollout(s, [], corridor_len=4)[0]) == UP)
    down_seed = next(s for s in range(20) if cued_arm(rollout(s, [], corridor_len=4)[0]) == DOWN)
    actions = [FORWARD, BACKWARD, FORWARD, FORWARD, UP, FORWARD, FORWARD, FORWARD]
    up, down = rollout(up_seed, actions, corridor_len=4), rollout(down_seed, actions, corridor_len=4)
    assert not np.array_equal(up[0], down[0])
    np.testing.assert_array_equal(up[1:], down[1:])


def run_episode(env: gym.Env, seed: int, remember: bool) -> tuple[bool, float]:
    """Forward until the junction flag, then turn: up (memoryless) or into the remembered cued arm."""
    obs, _ = env.reset(seed=seed)
    arm = cued_arm(obs) if remember else UP
    total, done = 0.0, False
    while not done:
        action = arm if junction(env, obs) else FORWARD
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return info["is_success"], total


def test_memoryless_policy_is_bounded_memory_policy_is_not():
    corridor_len, episodes = 10, 400
    env = make(corridor_len=corridor_len, num_distractors=2)
    memoryless = [run_episode(env, seed, remember=False) for seed in range(episodes)]
    success_rate = np.mean([success for success, _ in memoryless])
    assert 0.4 <= success_rate <= 0.6, success_rate
    memory = [run_episode(env, seed, remember=True) for seed in range(episodes)]
    assert all(success for success, _ in memory)
    np.testing.assert_allclose([total for _, total in memory], 4 - 0.1 * corridor_len, atol=1e-9)


@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")  # gym.make's own note on 'ansi'
@pytest.mark.parametrize(
    "kwargs,keyword",
    [
        (dict(corridor_len=1), "corridor_len"),
        (dict(corridor_len=2.5), "corridor_len"),
        (dict(corridor_len=True), "corridor_len"),
        (dict(num_distractors=-1), "num_distractors"),
        (dict(num_distractors=1.0), "num_distractors"),
        (dict(num_distractors=True), "num_distractors"),
        (dict(time_limit=0), "time_limit"),
        (dict(render_mode="ansi"), "render_mode"),
    ],
)
def test_bad_keywords(kwargs, keyword):
    with pytest.raises(ValueError, match=rf"{keyword}.*{re.escape(repr(kwargs[keyword]))}"):
        make(**kwargs)


def test_numpy_int_keywords():
    env = make(corridor_len=np.int64(3), num_distractors=np.int32(1), time_limit=np.int64(5))
    assert env.unwrapped.corridor_len == 3 and type(env.unwrapped.corridor_len) is int
    assert env.observation_space.shape == (2 + 2 + 1 + 1,)


def test_render():
    env = make()
    env.reset(seed=0)
    assert env.unwrapped.render() is None  # no render_mode: nothing to draw
    env = TMazeEnv(corridor_len=4, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    green = (first == (60, 200, 60)).all(axis=2)
    rows = np.nonzero(green.any(axis=1))[0]
    # the cued arm is lit at the first step: above the corridor for up, below it for down
    height = first.shape[0]
    assert green.any() and (rows.max() < height / 3 if cued_arm(obs) == UP else rows.min() > 2 * height / 3)
    env.step(FORWARD)
    second = env.render()
    assert not (second == (60, 200, 60)).all(axis=2).any()  # the cue is not shown any more
    agent_columns = [np.nonzero((image == 255).all(axis=2).any(axis=0))[0].mean() for image in (first, second)]
    assert agent_columns[1] > agent_columns[0]  # the agent moved right
