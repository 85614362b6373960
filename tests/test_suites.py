"""The memory suites' adapters (sb3_rtx/envs/suites/), on the real packages where they are installed.

Each suite's tests skip, with the reason, where its package is absent (CI installs popgym through
``[dev]`` and memory-gym in .ci/run; memory-maze and craftax are large and tested where a user
installs them). The missing-package error is tested on a suite that really is absent, and by
hiding an installed package's modules where none is.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.registration import registry
from gymnasium.utils.env_checker import check_env

import sb3_rtx  # noqa: F401  (registers the ids)
from sb3_rtx import RtxPPO
from sb3_rtx.envs import SuiteNotInstalledError, suite_ids
from sb3_rtx.envs.suites import craftax_symbolic

# JAX (Craftax) would otherwise start a thread per core next to pytest's workers
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

# extra -> (top-level modules the suite needs, the module whose absence the error names)
PACKAGES = {
    "popgym": (["popgym"], "popgym"),
    "memorygym": (["memory_gym", "pygame"], "memory_gym"),
    "memorymaze": (["memory_maze", "dm_control"], "memory_maze"),
    "craftax": (["craftax", "jax"], "craftax"),
}


def installed(extra: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in PACKAGES[extra][0])


def needs(extra: str):
    missing = ", ".join(m for m in PACKAGES[extra][0] if importlib.util.find_spec(m) is None)
    return pytest.mark.skipif(
        bool(missing), reason=f"{missing} not installed (extra [{extra}]; docs 'Memory tasks and suites')"
    )


# one representative id per kind of space / semantics; every registered id is checked to make below
API_CASES = [
    pytest.param("sb3_rtx/POPGym-RepeatPrevious-Easy-v0", marks=needs("popgym")),  # Discrete -> one-hot
    pytest.param("sb3_rtx/POPGym-Autoencode-Medium-v0", marks=needs("popgym")),  # Tuple obs
    pytest.param("sb3_rtx/POPGym-Battleship-Easy-v0", marks=needs("popgym")),  # + previous action, MultiDiscrete
    pytest.param("sb3_rtx/POPGym-CountRecall-Hard-v0", marks=needs("popgym")),  # MultiDiscrete obs, shared info array
    pytest.param("sb3_rtx/POPGym-PositionOnlyPendulum-Easy-v0", marks=needs("popgym")),  # Box actions
    pytest.param("sb3_rtx/MysteryPath-Grid-v0", marks=needs("memorygym")),
    pytest.param("sb3_rtx/MysteryPath-v0", marks=needs("memorygym")),
    pytest.param("sb3_rtx/MemoryMaze-9x9-v0", marks=needs("memorymaze")),
    pytest.param("sb3_rtx/Craftax-Classic-Symbolic-v0", marks=needs("craftax")),
    pytest.param("sb3_rtx/Craftax-Symbolic-v0", marks=needs("craftax")),
]
# (id, policy, make kwargs) for the tiny real RtxPPO run
LEARN_CASES = [
    pytest.param("sb3_rtx/POPGym-RepeatPrevious-Easy-v0", "MlpRtxPolicy", {}, marks=needs("popgym")),
    pytest.param("sb3_rtx/POPGym-Battleship-Easy-v0", "MlpRtxPolicy", {}, marks=needs("popgym")),
    pytest.param("sb3_rtx/MysteryPath-Grid-v0", "CnnRtxPolicy", {"reset_params": {"max_steps": 32}}, marks=needs("memorygym")),
    pytest.param("sb3_rtx/MemoryMaze-9x9-v0", "CnnRtxPolicy", {}, marks=needs("memorymaze")),
    pytest.param("sb3_rtx/Craftax-Symbolic-v0", "MlpRtxPolicy", {"max_timesteps": 40}, marks=needs("craftax")),
]


def make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **kwargs)


# ---------------------------------------------------------------------------------- registration
def test_every_suite_id_is_registered_and_importing_sb3_rtx_imports_no_suite_package():
    ids = suite_ids()
    assert set(ids) == set(PACKAGES)
    for extra_ids in ids.values():
        assert extra_ids and all(env_id in registry for env_id in extra_ids)
    assert "sb3_rtx/POPGym-RepeatPrevious-Easy-v0" in ids["popgym"] and len(ids["popgym"]) == 14 * 3
    registered = {env_id for group in ids.values() for env_id in group}
    assert {"sb3_rtx/MysteryPath-v0", "sb3_rtx/MemoryMaze-9x9-v0", "sb3_rtx/Craftax-Symbolic-v0"} <= registered
    # in a fresh interpreter: registering imported none of the packages
    code = (
        "import sys, sb3_rtx\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('popgym', 'memory_gym', 'pygame', 'memory_maze', 'dm_control', 'mujoco', 'craftax', 'jax'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def hide(monkeypatch, package: str) -> None:
    """Make ``package`` unimportable in this process (``None`` in sys.modules: import raises
    ModuleNotFoundError), as if it were not installed."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(craftax_symbolic, "_SHARED", {})  # no Craftax env already built


@pytest.mark.parametrize("extra", list(PACKAGES))
def test_a_missing_package_raises_an_error_naming_the_extra(extra, monkeypatch):
    if installed(extra):  # none absent here for this suite: hide its package
        hide(monkeypatch, PACKAGES[extra][1])
    env_id = suite_ids()[extra][0]
    with pytest.raises(SuiteNotInstalledError) as error:
        make(env_id)
    message = str(error.value)
    assert f'pip install "sb3-rtx[{extra}]"' in message, message
    if extra == "memorygym":  # its pins keep it out of the extra: the message says how to install it
        assert 'pip install --no-deps "memory-gym==1.0.2"' in message and "gymnasium==0.29.0" in message
    assert isinstance(error.value, ModuleNotFoundError)  # code catching ImportError still works


# ---------------------------------------------------------------------------------- the envs
@pytest.mark.parametrize("env_id", API_CASES)
def test_check_env_spaces_and_random_steps(env_id):
    env = make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    complaints = [
        str(w.message)
        for w in caught
        if "different from the unwrapped version" not in str(w.message)  # check_env on a gym.make'd env
        and "symmetric and normalized space" not in str(w.message)  # POPGym's pendulum: Box(-2, 2) actions
    ]
    assert not complaints, complaints

    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.dtype in (np.float32, np.uint8)
    if space.dtype == np.uint8:  # images: channel-last, as SB3's CNN policies expect
        assert len(space.shape) == 3 and space.shape[-1] == 3
    assert isinstance(env.action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.Box))
    obs, _ = env.reset(seed=0)
    assert obs.dtype == space.dtype and space.contains(obs)
    env.action_space.seed(0)
    for _ in range(30):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.dtype == space.dtype and space.contains(obs) and isinstance(reward, float)
        if terminated or truncated:
            obs, _ = env.reset()
    # seeded resets reproduce the first observation
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    env.close()


@pytest.mark.parametrize("env_id, stand_still", [("sb3_rtx/MysteryPath-Grid-v0", 0), ("sb3_rtx/MysteryPath-v0", [0, 0])])
@needs("memorygym")
def test_mystery_path_time_limit_truncates_and_is_no_success(env_id, stand_still):
    """An agent that stands still on the start never reaches the goal: memory-gym ends the episode
    at max_steps with terminated=True; here it is truncated, and not a success."""
    env = make(env_id, reset_params={"max_steps": 6})
    env.reset(seed=0)
    for step in range(1, 7):
        _, _, terminated, truncated, info = env.step(stand_still)
        assert (terminated, truncated) == ((False, True) if step == 6 else (False, False)), step
    assert info["is_success"] is False and info["success"] == 0
    env.close()


@needs("memorygym")
def test_mystery_path_goal_terminates_and_is_a_success():
    """Walking the (hidden) path from start to goal: the episode terminates at the goal, before the
    time limit, and is a success. (Grid moves: 0 stay, 1 turn left, 2 turn right, 3 forward; the
    agent starts facing north.)"""
    env = make("sb3_rtx/MysteryPath-Grid-v0", reset_params={"max_steps": 64})
    env.reset(seed=0)
    inner = env.unwrapped
    path = [(node.x, node.y) for node in inner.mystery_path.path]
    path = path if path[0] == tuple(inner.start) else path[::-1]
    assert path[-1] == tuple(inner.end)
    headings = {(0, -1): 0, (-1, 0): 1, (0, 1): 2, (1, 0): 3}  # north, west, south, east: 90 degrees left each
    facing, actions = 0, []
    for (x, y), (next_x, next_y) in itertools.pairwise(path):
        heading = headings[next_x - x, next_y - y]
        actions += [1] * ((heading - facing) % 4) + [3]
        facing = heading
    for step, action in enumerate(actions, start=1):
        _, reward, terminated, truncated, info = env.step(action)
        assert not truncated and terminated == (step == len(actions)), step
    assert len(actions) < 64 and info["is_success"] is True and reward > 0
    env.close()


@needs("memorygym")
def test_mystery_path_envs_of_one_process_survive_each_others_close():
    # memory-gym's close() quits pygame for the whole process; the adapter quits with the last env
    first, second = make("sb3_rtx/MysteryPath-Grid-v0"), make("sb3_rtx/MysteryPath-Grid-v0")
    first.reset(seed=0)
    second.reset(seed=1)
    first.close()
    obs, *_ = second.step(0)
    assert obs.shape == (84, 84, 3)
    second.close()


@needs("memorygym")
def test_mystery_path_rejects_unknown_reset_params():
    with pytest.raises(ValueError, match="unknown reset_params \\['max_step'\\]"):
        make("sb3_rtx/MysteryPath-v0", reset_params={"max_step": 10})


@needs("craftax")
def test_craftax_time_limit_truncates_and_reports_achievements():
    env = make("sb3_rtx/Craftax-Classic-Symbolic-v0", max_timesteps=5)
    env.reset(seed=0)
    for _ in range(5):
        _obs, _reward, terminated, truncated, info = env.step(0)  # noop: nothing can kill the agent in 5 steps
    assert (terminated, truncated) == (False, True)
    assert isinstance(info["achievements"], dict) and all(isinstance(v, bool) for v in info["achievements"].values())
    with pytest.raises(ValueError, match="max_timesteps must be an int >= 1"):
        make("sb3_rtx/Craftax-Classic-Symbolic-v0", max_timesteps=0)


@needs("popgym")
def test_popgym_one_hot_observations():
    env = make("sb3_rtx/POPGym-RepeatPrevious-Easy-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs.sum() == 1.0  # the card's suit, one-hot


# ---------------------------------------------------------------------------------- training
@pytest.mark.parametrize("env_id, policy, env_kwargs", LEARN_CASES)
def test_a_tiny_rtx_ppo_trains_on_it(env_id, policy, env_kwargs):
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=env_kwargs)
    model = RtxPPO(
        policy,
        env,
        n_steps=64,
        batch_size=64,
        sequence_length=32,
        n_epochs=1,
        seed=0,
        # an entropy bonus: a rollout without any reward gives AGaLiTe's zero-start value no loss and
        # the policy no advantage, so without it nothing would move (rightly) and the test could not tell
        ent_coef=0.01,
        policy_kwargs=dict(
            cell="agalite", cell_kwargs=dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_ffc=16, eta=2, r=2)
        ),
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(128)
    assert (model.num_timesteps, model._n_updates) == (128, 1)  # one rollout of 64 steps x 2 envs, one epoch
    # the suite's observations filled the buffer (images channel-first), and the update moved the policy
    assert model.rollout_buffer.observations.shape == (64, 2, *model.observation_space.shape)
    assert model.rollout_buffer.observations.any()
    assert not all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    assert np.isfinite([model.logger.name_to_value[k] for k in ("train/value_loss", "train/policy_gradient_loss")]).all()
    obs = env.reset()
    actions, _ = model.predict(obs, episode_start=np.ones(2, dtype=bool))
    assert len(actions) == 2 and all(env.action_space.contains(action) for action in actions)
    env.close()


@needs("popgym")
def test_popgym_trains_through_the_zoo_cli(tmp_path):
    env_id = "sb3_rtx/POPGym-RepeatPrevious-Easy-v0"
    result = subprocess.run(
        [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo_rtx", "--env", env_id, "-n", "256", "-f", "logs",
         "--seed", "0", "--hyperparams", "n_envs:2"],
        cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (model_path,) = (tmp_path / "logs" / "ppo_rtx").rglob("*.zip")  # the shipped yml entry was used
    assert RtxPPO.load(model_path, device="cpu").observation_space.shape == (4,)
