"""Writes the saved-model fixtures that tests/test_saved_format.py loads: for each cell, a tiny RtxPPO
trained for two rollouts, saved (the model's zip and the policy alone), and its deterministic
actions and values on fixed observations.

    python tests/data/make_saved_models.py tests/data/saved_models format2

Run by the release whose save format the fixtures stand for (format 1: a checkout of the commit
named in tests/data/saved_models/README.md, on PYTHONPATH); the fixtures are committed, never
remade by a later release (what they hold is what that release saved and computed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import sb3_rtx  # noqa: F401  (registers the envs)
from sb3_rtx import RtxPPO

#: one tiny model per cell (GaLiTe and AGaLiTe with the library's default variant of the release)
CELLS = {
    "agalite": dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_ffc=16, eta=2, r=2),
    "galite": dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_ffc=16, eta=2),
    "gtrxl": dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_ffc=16, memory_len=4),
    "lstm": dict(hidden_size=16),
}
STEPS, N_ENVS = 12, 2


def fixed_inputs(observation_space) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``(STEPS, N_ENVS, obs_dim)`` and episode starts ``(STEPS, N_ENVS)``, the same every run."""
    rng = np.random.default_rng(0)
    observations = rng.uniform(-1.0, 1.0, (STEPS, N_ENVS, *observation_space.shape)).astype(np.float32)
    starts = np.zeros((STEPS, N_ENVS), dtype=bool)
    starts[0] = True
    starts[7, 1] = True  # a new episode in the second env
    return observations, starts


def replay(model, observations: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic actions and values along the fixed observations, carrying the state."""
    policy, state = model.policy, None
    actions, values = [], []
    for obs, start in zip(observations, starts, strict=True):
        state_tensors = policy.initial_state(N_ENVS) if state is None else tuple(torch.as_tensor(s) for s in state)
        with torch.no_grad():
            value = policy.predict_values(torch.as_tensor(obs), state_tensors, torch.as_tensor(start, dtype=torch.float32))
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        actions.append(action)
        values.append(value.numpy().reshape(-1))
    return np.stack(actions), np.stack(values)


def main(out: Path, label: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for cell, cell_kwargs in CELLS.items():
        model = RtxPPO(
            "MlpRtxPolicy",
            "sb3_rtx/CueRecall-v0",
            n_steps=16,
            batch_size=16,
            n_epochs=1,
            seed=0,
            policy_kwargs=dict(cell=cell, cell_kwargs=dict(cell_kwargs), net_arch=dict(pi=[8], vf=[8])),
        )
        model.learn(2 * 16)
        stem = out / f"{cell}_{label}"
        model.save(stem.with_suffix(".zip"))
        model.policy.save(str(stem) + "_policy.pth")  # the policy alone (SB3's policy.save)
        observations, starts = fixed_inputs(model.observation_space)
        actions, values = replay(model, observations, starts)
        np.savez(stem.with_suffix(".npz"), observations=observations, starts=starts, actions=actions, values=values)
        print(f"{stem}.zip: actions {actions.reshape(-1).tolist()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
