"""The recurrent predict loop of the SB3 / sb3-contrib docs, with RtxPPO on vectorised envs.

    python examples/custom_loop.py

`state` holds every env's memory; `episode_starts` tells the policy which envs just reset, so their
memory is cleared before the next step (the VecEnv resets finished envs by itself).
"""

from __future__ import annotations

import argparse

import numpy as np
from stable_baselines3.common.env_util import make_vec_env

from sb3_rtx import RtxPPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=100, help="episodes to score after training")
    args = parser.parse_args()
    vec_env = make_vec_env("sb3_rtx/CueRecall-v0", n_envs=4, seed=0, env_kwargs=dict(delay=3))
    model = RtxPPO(
        "MlpRtxPolicy",
        vec_env,
        n_steps=32,
        batch_size=64,
        sequence_length=16,
        policy_kwargs=dict(
            cell="agalite", cell_kwargs=dict(n_layers=1, d_model=64, n_heads=4, d_head=16, d_ffc=64, eta=4, r=2)
        ),
        seed=0,
    )
    model.learn(args.timesteps)

    obs = vec_env.reset()
    state = None  # None: every env starts with a fresh memory
    episode_starts = np.ones((vec_env.num_envs,), dtype=bool)
    successes = []
    while len(successes) < args.episodes:
        actions, state = model.predict(obs, state=state, episode_start=episode_starts, deterministic=True)
        obs, _rewards, dones, infos = vec_env.step(actions)
        episode_starts = dones
        successes += [info["is_success"] for info, done in zip(infos, dones, strict=True) if done]
    print(f"success rate over {len(successes)} episodes: {np.mean(successes):.2f} (0.5 = chance)")


if __name__ == "__main__":
    main()
