"""What the memory's learning signal does on noisy cue recall: the measurements behind the fix of
AGaLiTe's and GaLiTe's learning (issue: cells at chance where the LSTM learns).

For each configuration it trains RtxPPO on ``sb3_rtx/CueRecall-v0`` (4 cues, delay 10, 4 uniform
noise dimensions) and records, besides the final success rate:

* ``grad_norm`` / ``grad_norm_max``: the policy's gradient norm before clipping (RtxPPO logs it as
  ``train/grad_norm``), mean and maximum over the run, against ``max_grad_norm``. A norm far above
  it means clipping shrinks every update, the heads' included;
* ``cue_probe``: the held-out accuracy of a linear probe that reads the cue from the memory's
  output at the query step (chance 0.25): whether the cue is there in a form a policy can use;
* ``cue_signal``: on fresh episodes, ``|d logits(query) / d obs(cue step)|`` over
  ``|d logits(query) / d obs(query step)|``: how much of the decision can reach back to the cue;
* for the linear-attention cells (first layer): ``write_gate_cue`` and ``write_gate_delay``, the mean
  key write gate ``gamma`` at the cue step and during the delay (1 - gamma is the decay), and
  ``cue_share``: the share of the query's normaliser mass ``s . q`` that comes from the cue's key;
  ``read_denominator``: the median over heads and episodes of the read's denominator at the query
  step before any floor (``s . q``, times ``2 r`` for AGaLiTe), and ``floor_binds``: the share of
  them under 1, where the bounded normaliser's ``max(., 1)`` leaves the read an unnormalised sum.

    python -m benchmarks.probes.recall_diagnostics            # every configuration, seeds 0-4 (about 25 min)
    python -m benchmarks.probes.recall_diagnostics --configs "AGaLiTe paper" "AGaLiTe default"
    python -m benchmarks.probes.recall_diagnostics --quick    # a smoke run

Writes ``recall_diagnostics.md`` / ``.csv`` under ``benchmarks/results/probes/``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.learning import SMALL
from benchmarks.memory_suite import TASKS
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, NET_ARCH, PPO

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
#: the memory suite's recall-10 task
TASK = TASKS["recall-10"][1]

#: (measured before the read norm existed: spelled out without it)
SOFTPLUS_SLOWER = dict(feature_map="softplus", gate_init="slower", read_norm="none")
#: label -> (cell, cell_kwargs): the paper's form, each of the default's three changes alone on top
#: of it, the default (all three), and the baselines
CONFIGS: dict[str, tuple[str, dict]] = {
    "AGaLiTe paper": ("agalite", dict(SMALL, eta=4, r=2, variant="paper")),
    "paper + bounded normaliser": ("agalite", dict(SMALL, eta=4, r=2, variant="paper", normaliser="bounded")),
    "paper + slow gates": ("agalite", dict(SMALL, eta=4, r=2, variant="paper", gate_init="slow")),
    "paper + dc frequencies": ("agalite", dict(SMALL, eta=4, r=2, variant="paper", frequencies="dc")),
    "AGaLiTe default": ("agalite", dict(SMALL, eta=4, r=2)),
    "GaLiTe paper": ("galite", dict(SMALL, eta=4, variant="paper")),
    "GaLiTe default": ("galite", dict(SMALL, eta=4)),
    "LSTM": ("lstm", dict(hidden_size=128)),
    # with softplus features and gate biases at -3: which normaliser (explicit, whatever the default)
    "AGaLiTe softplus, -3, bounded": ("agalite", dict(SMALL, eta=4, r=2, **SOFTPLUS_SLOWER, normaliser="bounded")),
    "AGaLiTe softplus, -3, sum": ("agalite", dict(SMALL, eta=4, r=2, **SOFTPLUS_SLOWER, normaliser="sum")),
    "GaLiTe softplus, -3, bounded": ("galite", dict(SMALL, eta=4, **SOFTPLUS_SLOWER, normaliser="bounded")),
    "GaLiTe softplus, -3, sum": ("galite", dict(SMALL, eta=4, **SOFTPLUS_SLOWER, normaliser="sum")),
}


def probe_accuracy(features: Any, labels: Any, steps: int = 300) -> float:
    """Held-out accuracy of a linear classifier (softmax regression) of ``labels`` from ``features``:
    whether the cue can be read from the memory's output at all, whatever its scale or sign."""
    import torch

    generator = torch.Generator().manual_seed(0)
    half = features.shape[0] // 2
    x = (features - features[:half].mean(0)) / (features[:half].std(0) + 1e-6)
    probe = torch.nn.Linear(x.shape[1], int(labels.max()) + 1)
    torch.nn.init.normal_(probe.weight, std=0.01, generator=generator)
    optimizer = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x[:half]), labels[:half]) + 1e-3 * probe.weight.square().sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float((probe(x[half:]).argmax(-1) == labels[half:]).float().mean())


def fresh_episodes(env_kwargs: dict, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` fresh CueRecall episodes as one batch ``(delay + 2, count, obs_dim)`` (actions are
    ignored before the query), and their cues ``(count,)``, read from the first step's cue bits."""
    from sb3_rtx.envs import CueRecallEnv

    env = CueRecallEnv(**env_kwargs)
    rng = np.random.default_rng(seed)
    obs = np.zeros((env.delay + 2, count, env.observation_space.shape[0]), dtype=np.float32)
    for b in range(count):
        obs[0, b] = env.reset(seed=int(rng.integers(1 << 30)))[0]
        for t in range(1, env.delay + 2):
            obs[t, b] = env.step(0)[0]
    return obs, obs[0, :, : env.n_cues].argmax(-1)


def measure(model: Any, seed: int, episodes: int = 256) -> dict[str, float]:
    """The signal measurements above on ``episodes`` fresh episodes, all in one batch."""
    import torch

    from sb3_rtx.cells.factored_attention import outer

    policy = model.policy
    length = TASK["delay"] + 2
    obs, cues = fresh_episodes(TASK, episodes, seed)
    obs_t = torch.as_tensor(obs.reshape(length * episodes, -1), device=policy.device).requires_grad_()
    starts = torch.zeros(length, episodes, device=policy.device)
    starts[0] = 1.0
    # the layer-normed input of the first layer's mixer, captured during the same forward pass
    captured: dict[str, Any] = {}
    mixer = policy.cell_actor.blocks[0].mixer if policy.cell_name in ("agalite", "galite") else None

    def keep_input(_module: Any, args: tuple) -> None:
        captured["h"] = args[0].detach()

    handle = mixer.register_forward_pre_hook(keep_input) if mixer is not None else None
    try:
        latent_pi, _, _ = policy._latents(obs_t, policy.initial_state(episodes), starts)
    finally:
        if handle is not None:
            handle.remove()
    logits = policy.action_net(policy.latent_actor(latent_pi)).view(length, episodes, -1)
    (grad,) = torch.autograd.grad(logits[-1].square().sum(), obs_t)
    grad = grad.view(length, episodes, -1).norm(dim=-1)
    result = {"cue_signal": float((grad[0] / grad[-1].clamp_min(1e-12)).mean())}
    result["cue_probe"] = probe_accuracy(latent_pi.detach().view(length, episodes, -1)[-1], torch.as_tensor(cues))
    if mixer is not None:
        with torch.no_grad():
            wk, wq, p1, p2, _v, _beta, g, p3 = mixer.features.factors(captured["h"])
            gamma = outer(p3, g)  # (T, B, H, F)
            keys, query = outer(p1, wk), outer(p2, wq)[-1]
            keep = torch.flip(torch.cumprod(torch.flip(1.0 - gamma[1:], [0]), 0), [0])  # decay from t to the end
            survive = torch.cat([keep, torch.ones_like(gamma[:1])])  # (T, B, H, F)
            mass = ((gamma * keys * survive) * query).sum(-1)  # (T, B, H): each step's share of s . q
            result["cue_share"] = float((mass[0] / mass.sum(0).clamp_min(1e-12)).mean())
            # the read's denominator at the query step (AGaLiTe scales s . q by its divisor, 2 r)
            denominator = mass.sum(0) * getattr(mixer, "divisor", 1.0)
            result["read_denominator"] = float(denominator.median())
            result["floor_binds"] = float((denominator < 1.0).float().mean())
            result["write_gate_cue"] = float(gamma[0].mean())
            result["write_gate_delay"] = float(gamma[1:-1].mean())
    return result


def run(spec: tuple[str, int, int]) -> dict[str, Any]:
    label, seed, timesteps = spec
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_rtx import RtxPPO

    torch.set_num_threads(1)
    cell, cell_kwargs = CONFIGS[label]
    env = make_vec_env("sb3_rtx/CueRecall-v0", n_envs=N_ENVS, seed=seed, env_kwargs=TASK)
    model = RtxPPO(
        "MlpRtxPolicy",
        env,
        sequence_length=PPO["n_steps"],
        seed=seed,
        **PPO,
        policy_kwargs=dict(net_arch=NET_ARCH, cell=cell, cell_kwargs=cell_kwargs),
    )
    norms: list[tuple[float, float]] = []

    class RecordGradNorm(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:  # the previous update's values are still in the logger
            values = self.model.logger.name_to_value
            if "train/grad_norm" in values:
                norms.append((values["train/grad_norm"], values["train/grad_norm_max"]))

    start = time.perf_counter()
    model.learn(timesteps, callback=RecordGradNorm())
    train_s = time.perf_counter() - start
    eval_env = make_vec_env("sb3_rtx/CueRecall-v0", n_envs=N_ENVS, seed=10_000 + seed, env_kwargs=TASK)
    rewards, _ = evaluate_policy(model, eval_env, n_eval_episodes=200, deterministic=True, return_episode_rewards=True)
    return {
        "label": label,
        "seed": seed,
        "timesteps": timesteps,
        "train_s": train_s,
        "success": float(np.mean(rewards)),
        "grad_norm": float(np.mean([n for n, _ in norms])) if norms else float("nan"),
        "grad_norm_max": float(np.max([m for _, m in norms])) if norms else float("nan"),
        **measure(model, seed),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="two configurations, one seed, 2 rollouts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.seeds, args.timesteps = ["AGaLiTe paper", "AGaLiTe default"], [0], 2048
    stem = "recall_diagnostics_quick" if args.quick else "recall_diagnostics"
    specs = [(label, seed, args.timesteps) for label in args.configs for seed in args.seeds]
    runs: list[dict] = []
    log = args.out / f"{stem}_runs.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(run, specs):
            print(json.dumps(result), flush=True)
            runs.append(result)
            with open(log, "a") as f:
                f.write(json.dumps(result) + "\n")

    def stat(label: str, key: str, fmt: str = "{:.2f}") -> str:
        values = [r[key] for r in runs if r["label"] == label and key in r]
        if not values:
            return "-"
        return fmt.format(float(np.mean(values))) + " (" + " ".join(fmt.format(v) for v in values) + ")"

    rows = [{"label": label} for label in args.configs]
    columns: list[tuple[str, Any]] = [("configuration:", lambda r: r["label"])]
    for key, fmt in [
        ("success", "{:.2f}"),
        ("cue_probe", "{:.2f}"),
        ("grad_norm", "{:.2g}"),
        ("grad_norm_max", "{:.2g}"),
        ("cue_signal", "{:.2g}"),
        ("cue_share", "{:.2f}"),
        ("write_gate_cue", "{:.2f}"),
        ("write_gate_delay", "{:.3f}"),
        ("read_denominator", "{:.2g}"),
        ("floor_binds", "{:.2f}"),
    ]:
        for row in rows:
            row[key] = stat(row["label"], key, fmt)
        columns.append((key, lambda r, k=key: r[k]))
    table = write_report(
        rows,
        args.out,
        stem,
        "Noisy cue recall: what the learning signal does",
        f"RtxPPO on sb3_rtx/CueRecall-v0 {TASK}, {args.timesteps} steps, {N_ENVS} envs, PPO {PPO}, max_grad_norm 0.5; "
        f"cells {SMALL}. Mean over seeds {args.seeds}, each seed in brackets. Measurements on 256 fresh "
        "episodes after training (see the module docstring). "
        f"Made by `{command_line('benchmarks.probes.recall_diagnostics', argv)}`",
        columns,
    )
    print(table)
    return runs


if __name__ == "__main__":
    main()
