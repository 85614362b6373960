"""Deploy a memory policy: train RtxPPO briefly, export it to ONNX, play it with onnxruntime alone.

    python examples/export_onnx.py [--timesteps 30000] [--out policy.onnx]

The task is CartPole without its velocities (only cart position and pole angle are observed): a
policy must infer them from successive observations, so it needs its memory. The play loop,
:func:`play_episode`, is the part that ships: it uses numpy, gymnasium and onnxruntime only. The
script runs it in a fresh Python process (``--play policy.onnx``), which checks that neither torch
nor Stable-Baselines3 was imported, and compares its reward with PyTorch's ``predict`` on the same
episode.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np


class NoVelocity(gym.ObservationWrapper):
    """CartPole's observation without the two velocities: (cart position, pole angle)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        box = env.observation_space
        self.observation_space = gym.spaces.Box(box.low[[0, 2]], box.high[[0, 2]], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[[0, 2]].astype(np.float32)


def make_env() -> gym.Env:
    return NoVelocity(gym.make("CartPole-v1"))


# --------------------------------------------------------------- what ships: numpy + onnxruntime
def play_episode(path: str, seed: int) -> float:
    """One episode with the exported policy; the memory is carried in ``state`` between steps."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    # the file says what its state inputs are (names, shapes with the batch first, dtypes)
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["sb3_rtx"])
    state = {spec["name"]: np.zeros([1, *spec["shape"][1:]], dtype=spec["dtype"]) for spec in metadata["state_inputs"]}

    env = make_env()
    obs, _ = env.reset(seed=seed)
    episode_start, total = True, 0.0
    while True:
        feeds = {"obs": obs[None], "episode_start": np.array([episode_start]), **state}
        action, _value, *next_state = session.run(None, feeds)
        state = dict(zip(state, next_state, strict=True))  # next_state_i becomes state_i
        obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        total += float(reward)
        episode_start = False
        if terminated or truncated:
            return total


# ------------------------------------------------------------------- train and export (torch, SB3)
def train_and_export(timesteps: int, out: str) -> float:
    """Train, export, and return PyTorch's reward on the episode that ``play_episode`` replays."""
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_rtx import RtxPPO
    from sb3_rtx.export import export_onnx

    torch.set_num_threads(1)
    venv = make_vec_env(make_env, n_envs=8, seed=0)
    model = RtxPPO("MlpRtxPolicy", venv, n_steps=64, batch_size=128, n_epochs=10, gamma=0.98, gae_lambda=0.8,
                   learning_rate=5e-4, ent_coef=0.0, seed=0)  # fmt: skip
    model.learn(timesteps)
    export_onnx(model, out)

    env = make_env()
    obs, _ = env.reset(seed=123)
    state, episode_start, total = None, np.array([True]), 0.0
    while True:
        action, state = model.predict(obs[None], state=state, episode_start=episode_start, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        total += float(reward)
        episode_start = np.array([False])
        if terminated or truncated:
            return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=30_000)
    parser.add_argument("--out", default="policy.onnx", help="the ONNX file to write")
    parser.add_argument("--play", metavar="FILE", help="only play an episode with FILE (no torch, no SB3)")
    args = parser.parse_args()
    if args.play:
        reward = play_episode(args.play, seed=123)
        heavy = sorted(name for name in ("torch", "stable_baselines3", "sb3_rtx") if name in sys.modules)
        print(f"onnxruntime episode: reward {reward:.0f}; imported of torch / stable_baselines3 / sb3_rtx: {heavy or 'none'}")
        if heavy:
            raise SystemExit(f"the play loop imported {heavy}")
        return

    torch_reward = train_and_export(args.timesteps, args.out)
    print(f"trained for {args.timesteps} steps and exported to {args.out}; PyTorch episode: reward {torch_reward:.0f}")
    played = subprocess.run([sys.executable, __file__, "--play", args.out], capture_output=True, text=True, check=True)
    print(played.stdout.strip())
    onnx_reward = float(played.stdout.split("reward ")[1].split(";")[0])
    print("same episode as PyTorch" if onnx_reward == torch_reward else "DIFFERENT from PyTorch")


if __name__ == "__main__":
    main()
