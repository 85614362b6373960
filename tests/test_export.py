"""Export to ONNX, AOTInductor and TorchScript: the exported step must act as ``RtxPPO.predict(deterministic=True)``.

Each check runs several envs for several episodes (episodes end at different steps in each env, so
states are reset mid-batch) and compares, step by step, the exported graph in onnxruntime and in
TorchScript against ``predict``: discrete actions identical, Box actions, values and states within
``ATOL``. The models are barely trained: what is checked is that the graph computes what the
policy computes, which random weights exercise as well as trained ones.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from benchmarks import cpp_runner
from doc_blocks import ran_ok, run_shell, shell_block
from sb3_rtx import RtxPPO
from sb3_rtx.policies import DEFAULT_CELL_KWARGS
from sb3_rtx.export import (
    ExportError,
    export_aoti,
    export_onnx,
    export_torchscript,
    initial_state,
    load_aoti,
    load_torchscript,
    read_metadata,
)

#: values and states: float32 arithmetic in another runtime, in another order
ATOL = 1e-4


class SpacesEnv(gym.Env):
    """Observations sampled from any space, any action space, episodes of 3 to 14 steps."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self._left = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        self._left = int(self.np_random.integers(3, 15))
        return self.observation_space.sample(), {}

    def step(self, action):
        self._left -= 1
        return self.observation_space.sample(), 0.0, self._left <= 0, False, {}


class OnnxRunner:
    def __init__(self, path: Path) -> None:
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.metadata = read_metadata(self.session)

    def initial(self, n_envs: int) -> Any:
        return initial_state(self.session, n_envs)

    def step(self, obs: Any, starts: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        feeds = {**observation_feeds(self.metadata, obs), "episode_start": starts.astype(bool), **state}
        action, value, *new_state = self.session.run(None, feeds)
        return action, value, dict(zip(state, new_state, strict=True))


class TorchRunner:
    """A TorchScript module or an AOTInductor package: both called with tensors, in the graph's order."""

    def __init__(self, path: Path) -> None:
        self.module = load_torchscript(path) if path.suffix == ".pt" else load_aoti(path)
        self.metadata = read_metadata(path)

    def initial(self, n_envs: int) -> Any:
        return tuple(torch.as_tensor(a) for a in initial_state(self.metadata, n_envs).values())

    def step(self, obs: Any, starts: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        observations = [torch.as_tensor(a) for a in observation_feeds(self.metadata, obs).values()]
        with torch.no_grad():
            action, value, *new_state = self.module(*observations, torch.as_tensor(starts.astype(bool)), *state)
        return action.numpy(), value.numpy(), tuple(new_state)


def observation_feeds(metadata: dict, obs: Any) -> dict[str, np.ndarray]:
    """The observation inputs, in the dtypes the metadata names."""
    feeds = {}
    for spec in metadata["observation_inputs"]:
        value = obs if spec["key"] is None else obs[spec["key"]]
        feeds[spec["name"]] = np.asarray(value).astype(spec["dtype"])
    return feeds


def as_arrays(state: Any) -> list[np.ndarray]:
    return [np.asarray(s) for s in (state.values() if isinstance(state, dict) else state)]


def compare_with_predict(model: RtxPPO, venv: Any, runners: list[Any], n_steps: int,
                         vec_normalize: VecNormalize | None = None) -> dict[str, float]:  # fmt: skip
    """Step ``venv`` with ``predict``'s deterministic actions; at every step each runner, fed the raw
    observations (VecNormalize's are baked into its graph), must give the same actions, values and
    states. Returns the largest differences, the number of mid-rollout episode starts and, for Box
    actions, how many action entries the policy's mode put below, above and inside the bounds."""
    n_envs = venv.num_envs
    obs = venv.reset()
    starts = np.ones(n_envs, dtype=bool)
    state = None
    runner_states = [runner.initial(n_envs) for runner in runners]
    worst = {"action": 0.0, "value": 0.0, "state": 0.0}
    resets = 0
    box = model.action_space if isinstance(model.action_space, spaces.Box) else None
    bounds = {"below": 0, "above": 0, "inside": 0}
    for t in range(n_steps):
        raw = vec_normalize.get_original_obs() if vec_normalize is not None else obs
        obs_tensor, _ = model.policy.obs_to_tensor(obs)
        state_before = model.policy.initial_state(n_envs) if state is None else tuple(torch.as_tensor(s) for s in state)
        with torch.no_grad():
            values = model.policy.predict_values(obs_tensor, state_before, torch.as_tensor(starts, dtype=torch.float32))
            distribution, _ = model.policy.get_distribution(
                obs_tensor, state_before, torch.as_tensor(starts, dtype=torch.float32)
            )
        actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        if box is not None:  # what the policy proposes, before predict (and the graph) post-process it
            proposed = distribution.mode().numpy().reshape(actions.shape)
            below, above = proposed < box.low, proposed > box.high
            bounds["below"] += int(below.sum())
            bounds["above"] += int(above.sum())
            bounds["inside"] += int((~below & ~above).sum())
        for index, runner in enumerate(runners):
            action, value, runner_states[index] = runner.step(raw, starts, runner_states[index])
            where = f"{type(runner).__name__} at step {t}"
            if np.issubdtype(actions.dtype, np.integer):
                if not np.array_equal(np.asarray(action).reshape(actions.shape), actions):
                    # allowed only where float32 cannot order them: the policy finds both as likely
                    chosen = distribution.log_prob(torch.as_tensor(np.asarray(action).reshape(actions.shape)))
                    wanted = distribution.log_prob(torch.as_tensor(actions))
                    assert torch.allclose(chosen, wanted, atol=ATOL), f"{where}: {action} != {actions} ({chosen} {wanted})"
            else:
                np.testing.assert_allclose(action, actions, atol=ATOL, err_msg=where)
                worst["action"] = max(worst["action"], float(np.abs(action - actions).max()))
            np.testing.assert_allclose(value, values.numpy().reshape(-1), atol=ATOL, err_msg=where)
            worst["value"] = max(worst["value"], float(np.abs(value - values.numpy().reshape(-1)).max()))
            for got, want in zip(as_arrays(runner_states[index]), state, strict=True):
                np.testing.assert_allclose(got, want, atol=ATOL, err_msg=where)
                worst["state"] = max(worst["state"], float(np.abs(got - want).max()))
        obs, _, dones, _ = venv.step(actions)
        starts = dones.astype(bool)
        resets += int(starts.sum()) if t < n_steps - 1 else 0
    worst["resets"] = resets
    return {**worst, **bounds} if box is not None else worst


def export_both(model: Any, tmp_path: Path, **kwargs: Any) -> list[Any]:
    onnx_path = export_onnx(model, tmp_path / "policy.onnx", **kwargs)
    script_path = export_torchscript(model, tmp_path / "policy.pt", **kwargs)
    return [OnnxRunner(onnx_path), TorchRunner(script_path)]


# ------------------------------------------------------------------------ equivalence, every cell
@pytest.mark.parametrize(
    "cell",
    [
        "agalite",
        "galite",
        "gtrxl",
        "lstm",
        "agalite-paper",
        "gtrxl-observation",
        "agalite-actor-input",
        "agalite-standardised",
    ],
)
def test_every_cell_exports_and_acts_as_predict_for_1000_steps_with_resets(tmp_path, cell):
    venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    policy_kwargs: dict[str, Any] = dict(cell=cell)
    if cell == "agalite-paper":  # the paper's frequencies: equal key memories, read through a gather, not a slice
        policy_kwargs = dict(cell="agalite", cell_kwargs={**DEFAULT_CELL_KWARGS["agalite"], "variant": "paper"})
    if cell == "gtrxl-observation":  # a first layer with a state tensor of its own width
        policy_kwargs = dict(cell="gtrxl", cell_kwargs={**DEFAULT_CELL_KWARGS["gtrxl"], "memory_input": "observation"})
    if cell == "agalite-standardised":  # input statistics (updated by the 4 rollouts of learn) travel with the export
        policy_kwargs = dict(cell="agalite", cell_kwargs={**DEFAULT_CELL_KWARGS["agalite"], "memory_input": "standardised"})
    if cell == "agalite-actor-input":  # the actor's head reading a scaled output, the critic's not
        policy_kwargs = dict(cell="agalite", actor_input_scale=0.2)
    # SB3's value start (AGaLiTe's default starts it at zero): the exported value path is compared at full size
    policy_kwargs["value_init_scale"] = 1.0
    model = RtxPPO("MlpRtxPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, policy_kwargs=policy_kwargs, seed=0)
    model.learn(128)
    runners = export_both(model, tmp_path)
    worst = compare_with_predict(model, venv, runners, 1000)
    # episodes of a barely trained CartPole policy end every ~10-80 steps, at different steps per
    # env: dozens of resets, mid-batch, for the state handling to get right
    assert worst["resets"] > 20
    assert worst["value"] < ATOL and worst["state"] < ATOL


# ------------------------------------------------------------ AOTInductor: from Python and from C++
needs_compiler = pytest.mark.skipif(not cpp_runner.available(), reason="AOTInductor and the C++ runner need g++")


@needs_compiler
def test_aoti_package_acts_as_predict_from_python_and_from_cpp_without_python(tmp_path):
    """The default cell's package: in Python (load_aoti) it acts as predict for 300 steps with
    resets; a C++ program linked to libtorch alone runs the same package on the same observations
    and gives predict's actions and values."""
    venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    # SB3's value start (the default's is zero), so the value is compared at full size
    model = RtxPPO(
        "MlpRtxPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, policy_kwargs=dict(value_init_scale=1.0)
    )
    model.learn(128)
    path = export_aoti(model, tmp_path / "policy.pt2")
    metadata = read_metadata(path)
    assert metadata["runtime"] == "aoti" and metadata["cell"] == "agalite"
    worst = compare_with_predict(model, venv, [TorchRunner(path)], 300)
    assert worst["resets"] > 5

    # a rollout driven by predict, recorded for the C++ runner
    obs, starts, state = venv.reset(), np.ones(4, dtype=bool), None
    actions, values, steps = [], [], []
    for _ in range(60):
        steps.append((obs.astype(np.float32), starts))
        state_before = model.policy.initial_state(4) if state is None else tuple(torch.as_tensor(s) for s in state)
        obs_tensor, _ = model.policy.obs_to_tensor(obs)
        with torch.no_grad():
            values.append(model.policy.predict_values(obs_tensor, state_before, torch.as_tensor(starts, dtype=torch.float32)))
        action, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        actions.append(action)
        obs, _, dones, _ = venv.step(action)
        starts = dones.astype(bool)
    steps_file = cpp_runner.write_steps(tmp_path / "steps.bin", initial_state(metadata, 4).values(), steps)
    binary = cpp_runner.build(tmp_path)
    if shutil.which("ldd"):  # linked to libtorch, not to Python
        assert "libpython" not in subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    n_state = len(metadata["state_inputs"])
    lines = cpp_runner.run(binary, path, steps_file, 1, n_state).strip().splitlines()
    assert len(lines) == 60
    for t, line in enumerate(lines):
        numbers = np.array(line.split(), dtype=np.float64)
        np.testing.assert_array_equal(numbers[:4], actions[t], err_msg=f"step {t}")
        np.testing.assert_allclose(numbers[4:], values[t].numpy().reshape(-1), atol=ATOL, err_msg=f"step {t}")
    # its --time mode acts on the first step's inputs and prints one positive number (ms per step)
    assert 0 < cpp_runner.median_step_ms(binary, path, steps_file, 1, n_state, rounds=3, threads=1) < 1000


def test_an_aoti_package_must_be_a_pt2_file(tmp_path):
    model = RtxPPO("MlpRtxPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0)
    with pytest.raises(ExportError, match=r"an AOTInductor package is a \.pt2 file, got policy\.so"):
        export_aoti(model, tmp_path / "policy.so")


def test_separate_critic_cell_multidiscrete_actions_and_observations(tmp_path):
    # MultiDiscrete observations: one-hot of each component inside the graph
    venv = make_vec_env(lambda: SpacesEnv(spaces.MultiDiscrete([4, 3]), spaces.MultiDiscrete([3, 2, 4])), n_envs=3, seed=1)
    model = RtxPPO("MlpRtxPolicy", venv, n_steps=16, batch_size=48, n_epochs=1, seed=1,
                   policy_kwargs=dict(cell="galite", shared_cell=False, share_features_extractor=False))  # fmt: skip
    model.learn(48)
    runners = export_both(model, tmp_path)
    # GaLiTe: (C, s) and the value convolution's past values, per cell
    assert [spec["cell"] for spec in runners[0].metadata["state_inputs"]] == ["actor"] * 3 + ["critic"] * 3
    worst = compare_with_predict(model, venv, runners, 200)
    assert worst["resets"] > 20


def test_box_actions_are_clipped_and_vec_normalize_statistics_are_baked_in(tmp_path):
    env = lambda: SpacesEnv(spaces.Box(-5, 5, (3,), np.float32), spaces.Box(-0.2, 0.3, (2,), np.float32))  # noqa: E731
    venv = VecNormalize(make_vec_env(env, n_envs=3, seed=2), norm_obs=True, norm_reward=True, clip_obs=1.5)
    model = RtxPPO("MlpRtxPolicy", venv, n_steps=16, batch_size=48, n_epochs=1, seed=2, policy_kwargs=dict(cell="gtrxl"))
    model.learn(96)  # VecNormalize's statistics move away from (0, 1)
    venv.training = False
    # the deterministic action is the Gaussian's mean, within +-0.01 of 0 after SB3's small action
    # head initialisation: never outside [-0.2, 0.3]. With the head's weights 100 times larger and
    # its bias at 0.15, the mean leaves the box on both sides in a good share of steps (about a
    # fifth of the entries below, a sixth above) and stays inside in the rest
    with torch.no_grad():
        model.policy.action_net.weight.mul_(100.0)
        model.policy.action_net.bias.fill_(0.15)
    stats = tmp_path / "vecnormalize.pkl"
    venv.save(stats)
    runners = export_both(model, tmp_path, vec_normalize=stats)
    worst = compare_with_predict(model, venv, runners, 200, vec_normalize=venv)  # actions as predict's: clipped
    assert worst["resets"] > 20
    # of the 200 steps x 3 envs x 2 dims: clipped at the low bound, at the high bound, and not clipped
    assert min(worst["below"], worst["above"], worst["inside"]) > 100, worst
    # so the graph's actions reach both bounds exactly, and stay within them
    onnx = runners[0]
    obs = np.random.default_rng(0).uniform(-5, 5, (64, 3)).astype(np.float32)
    action, _, _ = onnx.step(obs, np.ones(64, dtype=bool), onnx.initial(64))
    assert action.min() == np.float32(-0.2) and action.max() == np.float32(0.3)
    assert onnx.metadata["vec_normalize"] is True


def test_dict_observations_with_an_image_and_multibinary_actions(tmp_path):
    observation_space = spaces.Dict(
        image=spaces.Box(0, 255, (3, 36, 36), np.uint8),
        vector=spaces.Box(-1, 1, (3,), np.float32),
        choice=spaces.Discrete(3),
    )
    venv = make_vec_env(lambda: SpacesEnv(observation_space, spaces.MultiBinary(3)), n_envs=2, seed=3)
    model = RtxPPO("MultiInputRtxPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=3, policy_kwargs=dict(cell="lstm"))
    runners = export_both(model, tmp_path)
    names = [spec["name"] for spec in runners[0].metadata["observation_inputs"]]
    assert names == ["obs.image", "obs.vector", "obs.choice"]
    assert runners[0].metadata["observation_inputs"][0]["dtype"] == "uint8"
    worst = compare_with_predict(model, venv, runners, 150)
    assert worst["resets"] > 10


def test_image_observations_with_the_cnn_policy_and_state_dependent_noise(tmp_path):
    env = lambda: SpacesEnv(spaces.Box(0, 255, (1, 36, 36), np.uint8), spaces.Box(-1, 1, (2,), np.float32))  # noqa: E731
    venv = make_vec_env(env, n_envs=2, seed=4)
    model = RtxPPO(
        "CnnRtxPolicy",
        venv,
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        seed=4,
        use_sde=True,
        policy_kwargs=dict(cell="agalite", features_extractor_kwargs=dict(features_dim=32), value_init_scale=1.0),
    )
    model.learn(32)
    worst = compare_with_predict(model, venv, export_both(model, tmp_path), 100)
    assert worst["resets"] > 5


# ------------------------------------------------------------------------------------ metadata
def test_metadata_names_every_input_and_output_with_its_shape_and_dtype(tmp_path):
    model = RtxPPO("MlpRtxPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0)
    path = export_onnx(model, tmp_path / "policy.onnx")
    session = ort.InferenceSession(str(path))
    metadata = read_metadata(path)
    assert metadata == read_metadata(session)
    graph_inputs = {i.name: i for i in session.get_inputs()}
    assert list(graph_inputs) == metadata["inputs"] and [o.name for o in session.get_outputs()] == metadata["outputs"]
    shapes = [tuple(t.shape[1:]) for t in model.policy.initial_state(1)]
    assert [tuple(spec["shape"][1:]) for spec in metadata["state_inputs"]] == shapes
    for spec in metadata["state_inputs"]:
        assert graph_inputs[spec["name"]].shape == spec["shape"] and spec["dtype"] == "float32"
    assert metadata["observation_space"] == {"type": "Box", "shape": [4], "dtype": "float32",
                                             "low": model.observation_space.low.tolist(),
                                             "high": model.observation_space.high.tolist()}  # fmt: skip
    assert metadata["action_space"]["type"] == "Discrete" and metadata["action_space"]["n"] == 2
    assert metadata["cell"] == "agalite" and metadata["cell_kwargs"]["variant"] == "default"
    state = initial_state(path, batch_size=5)
    assert [a.shape for a in state.values()] == [(5, *shape) for shape in shapes]


def test_a_fixed_batch_size_is_enforced_and_a_wrong_state_shape_is_named(tmp_path):
    model = RtxPPO("MlpRtxPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0)
    path = export_onnx(model, tmp_path / "policy.onnx", batch_size=2)
    session = ort.InferenceSession(str(path))
    with pytest.raises(ValueError, match="exported for batch_size=2"):
        initial_state(session, 3)
    feeds = {"obs": np.zeros((2, 4), np.float32), "episode_start": np.ones(2, bool), **initial_state(session, 2)}
    session.run(None, feeds)
    # a state of another model (or from before a change of cell size): onnxruntime names the input
    # and the dimension, and the metadata says what that input must be
    wrong = dict(feeds, state_1=np.zeros((2, 1, 4, 2, 32), np.float32))
    with pytest.raises(Exception, match=r"(?s)state_1.*index: 4 Got: 32 Expected: 64"):
        session.run(None, wrong)
    assert read_metadata(session)["state_inputs"][1]["shape"] == [2, 1, 4, 2, 64]


# ---------------------------------------------------------------------------------- bad input
def test_what_cannot_be_exported_fails_at_export_time_with_its_name(tmp_path):
    ppo = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16)
    with pytest.raises(ExportError, match=r"RtxPPO.*PPO"):
        export_onnx(ppo, tmp_path / "a.onnx")
    model = RtxPPO("MlpRtxPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0)
    with pytest.raises(ExportError, match="batch_size must be a positive int or None"):
        export_onnx(model, tmp_path / "a.onnx", batch_size=0)
    with pytest.raises(ExportError, match="opset must be an int >= 18"):
        export_onnx(model, tmp_path / "a.onnx", opset=11)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        export_torchscript(tmp_path / "missing.zip", tmp_path / "a.pt")
    # the same as files: a plain PPO's zip, and a file that is not a zip
    ppo.save(tmp_path / "ppo.zip")
    with pytest.raises(ExportError, match=r"needs an RtxPPO model .* policy is ActorCriticPolicy"):
        export_onnx(tmp_path / "ppo.zip", tmp_path / "a.onnx")
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(ExportError, match=r"junk.zip is not a saved Stable-Baselines3 model"):
        export_onnx(tmp_path / "junk.zip", tmp_path / "a.onnx")
    # VecNormalize statistics of another environment (Pendulum's 3 observations, CartPole's 4)
    other = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1))
    stats = tmp_path / "other.pkl"
    other.save(stats)
    with pytest.raises(ExportError, match=r"shape \(3,\).*\(4,\).*another environment"):
        export_onnx(model, tmp_path / "a.onnx", vec_normalize=stats)
    with pytest.raises(ExportError, match="vec_normalize must be a VecNormalize"):
        export_torchscript(model, tmp_path / "a.pt", vec_normalize=pickle)
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "a.pt").exists()


def test_a_missing_onnx_package_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a))
    model = RtxPPO("MlpRtxPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0)
    with pytest.raises(ImportError, match=r"needs onnxscript, which the \[export\] extra installs"):
        export_onnx(model, tmp_path / "a.onnx")


# --------------------------------------------------------------------------------------- the CLI
def test_the_docs_export_commands_on_a_zoo_run(tmp_path):
    """export.md's block, as a user pastes it: train with the zoo entry of CartPoleNoVel-v1 (which
    normalises observations), export to ONNX and TorchScript; both files bake in the zoo run's
    VecNormalize statistics, found beside the zip, and ``--no-vec-normalize`` leaves them out."""
    env_id = "CartPoleNoVel-v1"  # its zoo entry trains with normalize: True
    code = shell_block("export.md", "sb3-rtx export")
    output = ran_ok(run_shell(code, tmp_path), code)
    zip_path = tmp_path / "logs" / "ppo_rtx" / f"{env_id}_1" / f"{env_id}.zip"
    stats_path = zip_path.parent / env_id / "vecnormalize.pkl"
    assert "vecnormalize.pkl" in output and (tmp_path / "policy.onnx").exists()
    assert read_metadata(tmp_path / "policy.pt")["vec_normalize"] is True
    raw = run_shell(f"sb3-rtx export {zip_path} -o raw.pt --format torchscript --no-vec-normalize", tmp_path)
    assert raw.returncode == 0, raw.stderr[-3000:]
    assert read_metadata(tmp_path / "raw.pt")["vec_normalize"] is False

    # what rl_zoo3 enjoy runs: the model on VecNormalize's observations; the file on raw ones
    import rl_zoo3.import_envs  # noqa: F401  (registers CartPoleNoVel-v1)

    venv = VecNormalize.load(str(stats_path), make_vec_env(env_id, n_envs=2, seed=5))
    venv.training = False
    model = RtxPPO.load(zip_path, device="cpu")
    worst = compare_with_predict(model, venv, [OnnxRunner(tmp_path / "policy.onnx")], 300, vec_normalize=venv)
    assert worst["resets"] > 5

    missing = run_shell("sb3-rtx export nothing.zip -o policy.onnx", tmp_path)
    assert missing.returncode != 0 and "no saved model" in missing.stderr
    # a .pt2 output is an AOTInductor package: an ONNX option for it is named as one, in one line
    wrong = run_shell(f"sb3-rtx export {zip_path} -o policy.pt2 --opset 18 --no-vec-normalize", tmp_path)
    assert wrong.returncode != 0 and "--opset is an ONNX option; the aoti format has none" in wrong.stderr
    assert "Traceback" not in wrong.stderr
