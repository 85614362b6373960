"""Quick start: train RtxPPO with an AGaLiTe memory on a memory task, save, load, and play an episode.

    python examples/quickstart.py [--timesteps 40000] [--cell agalite]

CueRecall shows a cue on the first step only and asks for it `delay` steps later: a memoryless
policy is right half of the time, a policy with memory always. Training takes about a minute on
one CPU thread.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_rtx import RtxPPO  # importing sb3_rtx registers the sb3_rtx/ tasks

#: a small AGaLiTe: the paper's sizes (4 layers, d_model 128) are for harder tasks
SMALL_AGALITE = dict(n_layers=1, d_model=64, n_heads=4, d_head=16, d_ffc=64, eta=4, r=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=40_000)
    parser.add_argument("--cell", default="agalite", help="agalite, galite, gtrxl or lstm")
    parser.add_argument("--delay", type=int, default=6, help="steps between cue and question")
    args = parser.parse_args()
    # one torch thread: a model this small runs as fast on one, and it is the setting
    # tests/test_ppo.py checks learns this task with seed 0 (float rounding differs with the thread
    # count, and a different rounding is a different training run)
    torch.set_num_threads(1)

    env = make_vec_env("sb3_rtx/CueRecall-v0", n_envs=8, seed=0, env_kwargs=dict(delay=args.delay))
    model = RtxPPO(
        "MlpRtxPolicy",
        env,
        n_steps=32,
        batch_size=64,
        sequence_length=16,  # truncated BPTT: the rollout is replayed as 16-step sequences
        n_epochs=10,
        learning_rate=3e-4,
        policy_kwargs=dict(cell=args.cell, cell_kwargs=SMALL_AGALITE if args.cell == "agalite" else {}),
        seed=0,
        verbose=1,
    )
    model.learn(total_timesteps=args.timesteps, progress_bar=False)
    mean_reward, std_reward = evaluate_policy(model, env, n_eval_episodes=100)
    print(f"evaluate_policy: mean reward {mean_reward:.2f} +/- {std_reward:.2f} (1.0 = always right, 0.5 = chance)")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rtx_cue_recall.zip"
        model.save(path)
        model = RtxPPO.load(path)

    # one episode by hand, carrying the recurrent state exactly as with sb3-contrib's RecurrentPPO
    single = gym.make("sb3_rtx/CueRecall-v0", delay=args.delay)
    obs, _ = single.reset(seed=42)
    state, episode_start, done = None, np.array([True]), False
    while not done:
        action, state = model.predict(obs, state=state, episode_start=episode_start, deterministic=True)
        obs, reward, terminated, truncated, info = single.step(action)
        episode_start = np.array([False])
        done = terminated or truncated
    print(f"hand-run episode: reward {reward}, success {info['is_success']}")


if __name__ == "__main__":
    main()
